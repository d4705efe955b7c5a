#include "supervisor/pid_file.hpp"

#include <signal.h>

#include <cerrno>
#include <fstream>

namespace rotor {

pid_t pid_file_owner(const std::string& path, pid_t self) {
  std::ifstream f(path);
  long pid = 0;
  if (!(f >> pid) || pid <= 0 || pid == self) return 0;
  // EPERM: alive, but another user's.
  if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) return static_cast<pid_t>(pid);
  return 0;
}

bool write_pid_file(const std::string& path, pid_t pid) {
  std::ofstream f(path, std::ios::trunc);
  f << pid << "\n";
  f.flush();
  return static_cast<bool>(f);
}

}  // namespace rotor
