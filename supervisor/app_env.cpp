#include "supervisor/app_env.hpp"

#include <cstdlib>

namespace rotor {

void AppEnv::apply(const std::vector<std::string>& assignments) {
  if (assignments.empty() && set_.empty()) return;  // the usual case, on every fork
  std::set<std::string> now;
  for (const std::string& item : assignments) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string key = item.substr(0, eq);
    setenv(key.c_str(), item.c_str() + eq + 1, 1);
    now.insert(std::move(key));
  }
  for (const std::string& key : set_) {
    if (now.count(key)) continue;
    auto it = original_.find(key);
    if (it != original_.end()) {
      setenv(key.c_str(), it->second.c_str(), 1);
    } else {
      unsetenv(key.c_str());
    }
  }
  set_ = std::move(now);
}

}  // namespace rotor
