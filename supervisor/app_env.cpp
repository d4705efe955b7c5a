#include "supervisor/app_env.hpp"

#include <cstdlib>

namespace rotor {

void export_app_env(const std::vector<std::string>& assignments) {
  for (const std::string& item : assignments) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    setenv(item.substr(0, eq).c_str(), item.c_str() + eq + 1, 1);
  }
}

}  // namespace rotor
