#include "supervisor/statsd_sink.hpp"

#include <netdb.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rotor {

StatsdSink& StatsdSink::operator=(StatsdSink&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.fd_;
    to_ = other.to_;
    to_len_ = other.to_len_;
    address_ = std::move(other.address_);
    other.fd_ = -1;
  }
  return *this;
}

std::string StatsdSink::open(const std::string& address) {
  close();
  address_ = address;
  if (address.starts_with("unix:")) {
    std::string path = address.substr(5);
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof un.sun_path) return "expected a socket path";
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    std::memcpy(&to_, &un, sizeof un);
    to_len_ = sizeof un;
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) return "expected HOST:PORT or unix:PATH";
    std::string host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    int rc = getaddrinfo(host.c_str(), address.c_str() + colon + 1, &hints, &found);
    if (rc != 0) return std::string("cannot resolve it: ") + gai_strerror(rc);
    std::memcpy(&to_, found->ai_addr, found->ai_addrlen);
    to_len_ = found->ai_addrlen;
    freeaddrinfo(found);
  }
  fd_ = ::socket(to_.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return std::strerror(errno);
  return "";
}

size_t StatsdSink::send(const std::vector<std::string>& datagrams) {
  size_t lost = 0;
  for (const std::string& d : datagrams) {
    ssize_t n = ::sendto(fd_, d.data(), d.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                         reinterpret_cast<const sockaddr*>(&to_), to_len_);
    if (n < 0) ++lost;
  }
  return lost;
}

void StatsdSink::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace rotor
