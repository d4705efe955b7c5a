#include "supervisor/notify.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace rotor {

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) ::close(fd_);
}

bool NotifySocket::open(const std::string& address, std::string* error) {
  if (address.size() < 2 || (address[0] != '/' && address[0] != '@')) {
    *error = "not a unix socket path or an abstract name (@NAME)";
    return false;
  }
  if (address.size() >= sizeof addr_.sun_path) {
    *error = "the path is too long for a unix socket";
    return false;
  }
  addr_.sun_family = AF_UNIX;
  std::memcpy(addr_.sun_path, address.data(), address.size());
  if (address[0] == '@') addr_.sun_path[0] = '\0';  // abstract: the name is not NUL-terminated
  addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() +
                                     (address[0] == '@' ? 0 : 1));
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    *error = std::strerror(errno);
    return false;
  }
  return true;
}

bool NotifySocket::send(const std::string& message, std::string* error) const {
  if (fd_ < 0) return false;
  ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
  if (n == static_cast<ssize_t>(message.size())) return true;
  *error = n < 0 ? std::strerror(errno) : "short write";
  return false;
}

}  // namespace rotor
