#include "conf/python_plugins.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "conf/self_path.hpp"

namespace rotor::conf {

namespace {

constexpr const char* kPrefix = "rotor-python";
constexpr const char* kSuffix = ".so";

// The version a plugin's file name says: "rotor-python3.12.so" is 3.12.
std::optional<PythonVersion> version_of(const std::string& name) {
  std::string_view prefix(kPrefix), suffix(kSuffix);
  if (!name.starts_with(prefix) || !name.ends_with(suffix)) return std::nullopt;
  std::string_view middle(name);
  middle = middle.substr(prefix.size(), middle.size() - prefix.size() - suffix.size());
  auto v = parse_python_version(middle);
  if (!v || v->text != std::to_string(v->major) + "." + std::to_string(v->minor))
    return std::nullopt;
  return v;
}

}  // namespace

std::string plugin_file_name(int major, int minor) {
  return kPrefix + std::to_string(major) + "." + std::to_string(minor) + kSuffix;
}

std::vector<std::string> plugin_dirs(const std::string& env_dir, const std::string& exe,
                                     const std::string& install_dir) {
  std::vector<std::string> dirs;
  auto add = [&dirs](const std::string& dir) {
    if (!dir.empty() && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  };
  add(env_dir);
  if (!exe.empty()) {
    std::string bin = parent_dir(exe);
    add(parent_dir(bin) + (parent_dir(bin) == "/" ? "" : "/") + "lib/rotor");
    add(bin);
  }
  add(install_dir);
  return dirs;
}

std::vector<std::string> plugin_dirs(const std::map<std::string, std::string>& env) {
  auto it = env.find("ROTOR_PLUGIN_DIR");
  return plugin_dirs(it == env.end() ? "" : it->second, self_executable(),
                     ROTOR_PLUGIN_INSTALL_DIR);
}

std::string find_plugin(const std::vector<std::string>& dirs, int major, int minor) {
  for (const std::string& dir : dirs) {
    std::string path = dir + "/" + plugin_file_name(major, minor);
    if (access(path.c_str(), R_OK) == 0) return path;
  }
  return "";
}

std::vector<PythonVersion> plugin_versions(const std::vector<std::string>& dirs) {
  std::vector<PythonVersion> found;
  for (const std::string& dir : dirs) {
    DIR* d = opendir(dir.c_str());
    if (!d) continue;
    while (dirent* entry = readdir(d)) {
      auto v = version_of(entry->d_name);
      bool known = std::any_of(found.begin(), found.end(), [&v](const PythonVersion& f) {
        return v && f.major == v->major && f.minor == v->minor;
      });
      if (v && !known) found.push_back(*v);
    }
    closedir(d);
  }
  std::sort(found.begin(), found.end(), [](const PythonVersion& a, const PythonVersion& b) {
    return a.major != b.major ? a.major < b.major : a.minor < b.minor;
  });
  return found;
}

}  // namespace rotor::conf
