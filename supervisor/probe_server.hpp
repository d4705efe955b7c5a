// The master's metrics and health listener (--metrics-bind): non-blocking sockets served from the
// master's own poll loop, one request per connection. A slow or hostile client cannot stall the
// master: every read and write is non-blocking, a head must arrive within a deadline (else 408),
// heads are bounded (431), and at the connection cap the oldest connection gives way.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "supervisor/listeners.hpp"
#include "supervisor/probe_http.hpp"

namespace rotor {

class ProbeServer {
 public:
  // Returns the whole response to a complete, well-formed head.
  using Handler = std::function<std::string(const probe::Head&)>;

  static constexpr int64_t kHeadTimeoutNs = 5'000'000'000;  // accept to the end of the head
  static constexpr int64_t kLifetimeNs = 10'000'000'000;    // accept to close, whatever happens
  static constexpr size_t kMaxConnections = 32;

  ProbeServer(Listener listener, Handler handler);
  ~ProbeServer();
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  const Listener& listener() const { return listener_; }
  // Appends what to wait for; on_poll() then gets the same entries back.
  void add_pollfds(std::vector<pollfd>& fds) const;
  void on_poll(const pollfd* fds, size_t count, int64_t now_ns);
  // Answers 408 to heads that are overdue, and closes connections past their lifetime.
  void expire(int64_t now_ns);
  // In a forked child: its copies of the sockets go (the socket file stays, it is the master's).
  void close_in_child();

 private:
  enum class Phase { kReading, kWriting, kLingering };
  struct Conn {
    Phase phase = Phase::kReading;
    std::string in;
    std::string out;
    size_t sent = 0;
    int64_t accepted_ns = 0;
    int64_t answered_ns = 0;  // when the answer was all sent
  };

  void accept_all(int64_t now_ns);
  void evict_oldest();
  void on_readable(int fd, Conn& c);
  void on_writable(int fd, Conn& c);
  void answer(int fd, Conn& c, std::string response);
  void close_conn(int fd);

  Listener listener_;
  Handler handler_;
  std::map<int, Conn> conns_;
};

}  // namespace rotor
