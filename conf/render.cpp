// Text derived from the option table: the effective config as TOML (--print-config) and the
// documented option table (--help-options-markdown).
#include <toml++/toml.h>
#include <charconv>
#include <sstream>
#include <type_traits>

#include "conf/load.hpp"
#include "conf/options.hpp"

namespace rotor::conf {
namespace {

std::string toml_string(const std::string& text) {
  std::ostringstream out;
  // toml++ knows the escaping rules; plain "basic" strings read most familiarly.
  out << toml::toml_formatter(toml::value<std::string>(text),
                              toml::format_flags::allow_unicode_strings);
  return out.str();
}

std::string toml_float(double v) {
  char buf[32];
  std::string text(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);  // shortest round trip
  if (text.find_first_of(".en") == std::string::npos) text += ".0";    // "30" would be an integer
  return text;
}

std::string toml_octal(int64_t v) {
  char buf[32];
  return "0o" + std::string(buf, std::to_chars(buf, buf + sizeof buf, v, 8).ptr);
}

std::string toml_value(const Option& option, const Config& config) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& v = config.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          for (auto [word, value] : option.words)
            if (v == value) return toml_string(std::string(word));  // as given: workers = "auto"
          return option.kind == Kind::kOctal ? toml_octal(v) : std::to_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return toml_float(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return toml_string(v);
        } else {
          std::string items;
          for (const std::string& item : v)
            items += (items.empty() ? "" : ", ") + toml_string(item);
          return "[" + items + "]";
        }
      },
      option.member);
}

std::string cell(std::string_view text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string code_list(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "`" : ", `") + cell(item) + "`";
  return out;
}

// The option's flags and its negation (--preload, --no-preload).
std::vector<std::string> all_flag_names(const Option& option) {
  std::vector<std::string> names = flag_names(option.flags);
  if (!option.negation.empty()) names.emplace_back(option.negation);
  return names;
}

}  // namespace

std::string to_toml(const Config& config) {
  std::string out = "# rotor configuration; load it with: rotor -c FILE\n";
  for (const Option& option : options()) {
    if (!option.in_file) continue;
    out += "\n# " + help_text(option) + "\n";
    out += std::string(option.name) + " = " + toml_value(option, config) + "\n";
  }
  return out;
}

std::string options_markdown() {
  std::string out =
      "| Option | Flags | Env | Default | Description |\n"
      "|---|---|---|---|---|\n";
  for (const Option& option : options()) {
    std::vector<std::string> env{env_name(option)};
    if (!option.env_alias.empty()) env.emplace_back(option.env_alias);
    std::string name = option.in_file ? "`" + std::string(option.name) + "`" : "—";
    std::string value =
        option.default_value.empty() ? "" : code_list({std::string(option.default_value)});
    out += "| " + name + " | " + code_list(all_flag_names(option)) + " | " + code_list(env) +
           " | " + value + " | " + cell(help_text(option)) + " |\n";
  }
  for (const ActionFlag& flag : action_flags()) {
    if (flag.hidden) continue;
    out += "| — | " + code_list(flag_names(flag.flags)) + " | — | — | " + cell(flag.help) + " |\n";
  }
  return out;
}

}  // namespace rotor::conf
