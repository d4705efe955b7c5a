#include "conf/python_executable.hpp"

namespace rotor::conf {

std::string python_executable(const std::string& python_option, const char* virtual_env) {
  if (!python_option.empty()) return python_option;
  if (virtual_env && *virtual_env) return std::string(virtual_env) + "/bin/python";
  return ROTOR_PYTHON_EXECUTABLE;
}

}  // namespace rotor::conf
