#include "conf/python_version.hpp"

#include <algorithm>
#include <cctype>

namespace rotor::conf {

namespace {

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

// The leading decimal number of `text` (at most 4 digits), consumed; nullopt when none.
std::optional<int> take_number(std::string_view& text) {
  size_t n = 0;
  while (n < text.size() && n < 5 && std::isdigit(static_cast<unsigned char>(text[n]))) ++n;
  if (n == 0 || n > 4) return std::nullopt;
  int value = std::stoi(std::string(text.substr(0, n)));
  text.remove_prefix(n);
  return value;
}

// The value of the first line whose key (before '=', trimmed, any case) is `key`.
std::optional<std::string_view> cfg_value(std::string_view cfg, std::string_view key) {
  while (!cfg.empty()) {
    size_t end = cfg.find('\n');
    std::string_view line = cfg.substr(0, end);
    cfg = end == std::string_view::npos ? std::string_view() : cfg.substr(end + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name(trimmed(line.substr(0, eq)));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name == key) return trimmed(line.substr(eq + 1));
  }
  return std::nullopt;
}

std::string major_minor(const PythonVersion& v) {
  return std::to_string(v.major) + "." + std::to_string(v.minor);
}

}  // namespace

std::optional<PythonVersion> parse_python_version(std::string_view text) {
  text = trimmed(text);
  std::string_view rest = text;
  std::optional<int> major = take_number(rest);
  if (!major || rest.empty() || rest.front() != '.') return std::nullopt;
  rest.remove_prefix(1);
  std::optional<int> minor = take_number(rest);
  if (!minor) return std::nullopt;
  bool printable = std::all_of(rest.begin(), rest.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '+';
  });
  if (!printable) return std::nullopt;
  return PythonVersion{*major, *minor, std::string(text)};
}

std::optional<PythonVersion> pyvenv_cfg_version(std::string_view cfg) {
  for (std::string_view key : {"version", "version_info"}) {
    if (auto value = cfg_value(cfg, key)) return parse_python_version(*value);
  }
  return std::nullopt;
}

std::string version_refusal(const std::string& who, const std::string& source,
                            const PythonVersion& app, const std::vector<PythonVersion>& available,
                            const std::vector<std::string>& dirs,
                            const std::string& build_pythons) {
  std::string names, places;
  for (const PythonVersion& v : available) names += (names.empty() ? "" : ", ") + major_minor(v);
  for (const std::string& dir : dirs) places += (places.empty() ? "" : ":") + dir;
  std::string line = "the app's Python " + who + " is CPython " + app.text + " (" + source +
                     "), and this rotor has no plugin for CPython " + major_minor(app) +
                     " (it has " + (names.empty() ? "none" : names) + ", looked in " + places +
                     "): it never runs one Python with another's environment. Build the plugin " +
                     "with cmake -DROTOR_PYTHONS=\"" + build_pythons + "\" and install it";
  if (!names.empty())
    line += ", or run the app in a CPython " + names + " interpreter or virtualenv (--python, " +
            "VIRTUAL_ENV)";
  return line;
}

}  // namespace rotor::conf
