#include "conf/python_executable.hpp"

#include <unistd.h>

#include "conf/self_path.hpp"

namespace rotor::conf {

namespace {

// A rotor that pip installed as VENV/bin/rotor serves with VENV's python, as a console script
// would, whether or not the virtualenv is activated.
std::string own_venv_python() {
  std::string exe = self_executable();
  return exe.empty() ? "" : venv_python_in(parent_dir(exe));
}

}  // namespace

std::string venv_python_in(const std::string& bin_dir) {
  std::string python = bin_dir + "/python";
  std::string home = parent_dir(bin_dir);
  std::string cfg = (home == "/" ? "" : home) + "/pyvenv.cfg";
  if (access(cfg.c_str(), F_OK) != 0 || access(python.c_str(), X_OK) != 0) return "";
  return python;
}

std::string python_executable(const std::string& python_option, const char* virtual_env) {
  if (!python_option.empty()) return python_option;
  if (virtual_env && *virtual_env) return std::string(virtual_env) + "/bin/python";
  if (std::string own = own_venv_python(); !own.empty()) return own;
  return ROTOR_PYTHON_EXECUTABLE;
}

std::string python_source(const std::string& python_option, const char* virtual_env) {
  if (!python_option.empty()) return "--python";
  if (virtual_env && *virtual_env) return "VIRTUAL_ENV";
  return "the virtualenv rotor is in";
}

}  // namespace rotor::conf
