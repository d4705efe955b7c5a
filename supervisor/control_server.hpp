// The control socket: a unix stream socket in the master's poll loop. One request line per
// connection, one reply, then the connection is closed. A client that is slow, sends garbage or
// too much, or opens too many connections costs the master nothing but a closed connection.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace rotor {

class ControlServer {
 public:
  static constexpr size_t kMaxRequestBytes = 4096;
  static constexpr size_t kMaxConnections = 8;
  static constexpr int64_t kDeadlineNs = 2'000'000'000;   // to send the request and read the reply
  static constexpr int64_t kAcceptPauseNs = 100'000'000;  // after accept ran out of descriptors

  // The master's answer to one request line (a JSON reply, without the newline).
  using Handler = std::function<std::string(std::string_view request)>;

  ControlServer() = default;
  ~ControlServer();
  ControlServer(ControlServer&& other) noexcept;
  ControlServer& operator=(ControlServer&& other) noexcept;
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Listens on `path`, mode 0600. A socket file no server answers on is replaced; one a live
  // server answers on is not. "" on success, else the reason.
  std::string open(const std::string& path);
  bool is_open() const { return listen_fd_ >= 0; }
  const std::string& path() const { return path_; }

  // The descriptors to poll, appended to `fds`; then `on_poll` with the same entries back.
  void add_poll_fds(std::vector<pollfd>& fds) const;
  void on_poll(const pollfd* fds, size_t count, int64_t now_ns, const Handler& handle);

  // Closes everything and removes the socket file while it is still the one we bound.
  void close();
  // In a forked child: closes the descriptors only.
  void close_in_child();

 private:
  struct Connection {
    int fd = -1;
    std::string in;
    std::string out;
    size_t sent = 0;
    int64_t deadline_ns = 0;
    bool replying = false;
  };
  void accept_all(int64_t now_ns);
  // Whether the connection is finished (to be closed).
  bool on_readable(Connection& c, const Handler& handle);
  bool on_writable(Connection& c);
  void reply(Connection& c, const std::string& text);
  void close_fds();
  bool evict_oldest_reader();

  int listen_fd_ = -1;
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::vector<Connection> connections_;
  int64_t accept_paused_until_ns_ = 0;
};

}  // namespace rotor
