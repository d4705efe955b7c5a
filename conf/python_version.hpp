// Which CPython an app's environment was made for, told apart without loading any Python: the
// version a virtualenv's pyvenv.cfg records, or the one an interpreter prints when asked. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rotor::conf {

struct PythonVersion {
  int major = 0;
  int minor = 0;
  std::string text;  // as written: "3.12.1", "3.12.1.final.0", or "3.11" for an embedded one
};

// "3.12.1", "3.12", "3.12.1.final.0", "3.13.0rc1": the major and minor lead; nullopt otherwise.
std::optional<PythonVersion> parse_python_version(std::string_view text);

// The version a pyvenv.cfg records: `version = 3.12.1` (python -m venv), else `version_info =
// 3.12.1.final.0` (virtualenv, uv). Keys are read as site.py reads them (trimmed, any case);
// nullopt when neither is there or its value is no version.
std::optional<PythonVersion> pyvenv_cfg_version(std::string_view cfg);

// The line that refuses an app whose Python rotor has no plugin for. `who` names the
// interpreter and what chose it, `source` how its version was learnt, `available` the versions
// of the plugins found in `dirs`, `build_pythons` what a -DROTOR_PYTHONS adding it would list.
std::string version_refusal(const std::string& who, const std::string& source,
                            const PythonVersion& app, const std::vector<PythonVersion>& available,
                            const std::vector<std::string>& dirs, const std::string& build_pythons);

}  // namespace rotor::conf
