#include "supervisor/leak_trace.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace rotor {

bool traces_leaks(bool enabled, int64_t every, uint64_t spawn) {
  if (!enabled || spawn == 0) return false;
  uint64_t n = every > 1 ? static_cast<uint64_t>(every) : 1;
  return (spawn - 1) % n == 0;
}

std::string leak_report_dir_refusal(const std::string& dir, bool give, uid_t owner, gid_t group) {
  if (dir.empty()) return "";
  if (::mkdir(dir.c_str(), 0755) == 0) {
    if (give && ::chown(dir.c_str(), owner, group) != 0) return dir + ": " + std::strerror(errno);
  } else if (errno != EEXIST) {
    return dir + ": " + std::strerror(errno);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return dir + ": " + std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return dir + ": not a directory";
  std::string probe = dir + "/.rotor-leak-probe-XXXXXX";
  int fd = ::mkstemp(probe.data());
  if (fd < 0) return dir + ": cannot write in it: " + std::strerror(errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return "";
}

}  // namespace rotor
