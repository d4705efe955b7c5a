// The sd_notify socket: datagrams to the unix socket systemd names in NOTIFY_SOCKET (a path,
// or an abstract name written with a leading '@'). No libsystemd: it is one sendto().
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string>

namespace rotor {

class NotifySocket {
 public:
  NotifySocket() = default;
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // False (with `error`) for an address that is not a unix socket path or abstract name.
  bool open(const std::string& address, std::string* error);
  bool is_open() const { return fd_ >= 0; }
  // Never blocks the master: a full or missing socket fails (with `error`), the caller goes on.
  bool send(const std::string& message, std::string* error) const;

 private:
  int fd_ = -1;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
};

}  // namespace rotor
