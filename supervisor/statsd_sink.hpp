// Where the master's statsd datagrams go (--statsd-host): a UDP HOST:PORT, resolved once at
// start, or a unix datagram socket. Sending never blocks the master; a lost datagram is lost.
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

namespace rotor {

class StatsdSink {
 public:
  StatsdSink() = default;
  StatsdSink(const StatsdSink&) = delete;
  StatsdSink& operator=(const StatsdSink&) = delete;
  StatsdSink(StatsdSink&& other) noexcept { *this = std::move(other); }
  StatsdSink& operator=(StatsdSink&& other) noexcept;
  ~StatsdSink() { close(); }

  // "" when open, else why not (a host that does not resolve, a bad address).
  std::string open(const std::string& address);
  bool is_open() const { return fd_ >= 0; }
  // Returns how many datagrams could not be sent (the collector down, the buffer full).
  size_t send(const std::vector<std::string>& datagrams);
  void close();
  const std::string& address() const { return address_; }

 private:
  int fd_ = -1;
  sockaddr_storage to_{};
  socklen_t to_len_ = 0;
  std::string address_;
};

}  // namespace rotor
