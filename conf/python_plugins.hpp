// Where the per-version Python plugins (rotor-python3.X.so) are and which versions they serve:
// files on disk only; nothing here loads one (the master never holds Python).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "conf/python_version.hpp"

namespace rotor::conf {

// "rotor-python3.12.so".
std::string plugin_file_name(int major, int minor);

// The directories searched, in order: `env_dir` ($ROTOR_PLUGIN_DIR) when not empty, then
// <dir of exe>/../lib/rotor, <dir of exe> (the build tree), `install_dir`. Pure.
std::vector<std::string> plugin_dirs(const std::string& env_dir, const std::string& exe,
                                     const std::string& install_dir);

// As above for this process: $ROTOR_PLUGIN_DIR from `env`, /proc/self/exe, the install prefix.
std::vector<std::string> plugin_dirs(const std::map<std::string, std::string>& env);

// The first plugin for major.minor in `dirs`, "" when there is none.
std::string find_plugin(const std::vector<std::string>& dirs, int major, int minor);

// The versions the plugins in `dirs` serve, each once, in ascending order.
std::vector<PythonVersion> plugin_versions(const std::vector<std::string>& dirs);

}  // namespace rotor::conf
