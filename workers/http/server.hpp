// The HTTP/1.1 server of one worker: accepts on the inherited listening sockets, owns the
// connections, enforces their deadlines and drains them on request.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "conf/address_list.hpp"
#include "workers/http/accept_backoff.hpp"
#include "workers/http/handoff.hpp"
#include "workers/http/parser.hpp"

namespace rotor::http {

class AccessLog;
class Connection;
struct Request;

struct Limits {
  ParseLimits parse;                  // request line, fields, body
  uint64_t keep_alive_ms = 5000;      // idle between requests; 0 = one request per connection
  uint64_t head_timeout_ms = 10000;   // from the first byte of a request to its complete head
  uint64_t body_timeout_ms = 30000;   // longest wait for the next body bytes
  uint64_t write_timeout_ms = 30000;  // longest time an answer may wait for the client to read
  uint64_t linger_ms = 2000;          // after Connection: close, read and discard until EOF
  size_t max_connections = 1000;      // open connections at which the worker stops accepting
  size_t max_in_flight = 0;           // requests in flight at which it does too; 0 = no limit
  uint64_t ws_max_message = 16 * 1024 * 1024;  // WebSocket: largest message a client may send
  uint64_t ws_ping_interval_ms = 20000;        // between our pings; 0 = none
  uint64_t ws_ping_timeout_ms = 20000;         // for the pong; 0 = no limit
  bool server_header = true;                   // Server: rotor
  bool date_header = true;                     // Date: ...
  std::string extra_headers;                   // "Name: value\r\n" lines for every response
  // PROXY protocol: connections from these peers (and unix-socket peers) start with a header.
  bool proxy_protocol = false;
  conf::AddressList proxy_allow;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // The request (head and body) is complete. Answer with Connection::respond() or
  // send_response(), now or later.
  virtual void on_request(Connection& conn, const Request& req) = 0;
  // Streaming handlers get on_request at the end of the head, then the body through on_body
  // and on_body_end (the connection pauses when asked); others get the whole request at once,
  // its body discarded.
  virtual bool streams_body() const { return false; }
  virtual void on_body(Connection&, std::string_view) {}
  virtual void on_body_end(Connection&) {}
  // The request the handler held is over without its answer: the connection closed, or the
  // engine ended the request (an invalid or stalled body; it answered 400, 408 or 413 itself).
  virtual void on_abort(Connection&) {}
  // The client closed its side in the middle of the request the handler holds: its body will
  // never be complete, and no error answer will be written.
  virtual void on_peer_closed(Connection&) {}
  // The client half-closed after its complete request: it sends nothing more, but the answer is
  // still written (a client that closed entirely shows when writing fails).
  virtual void on_peer_done(Connection&) {}
  // The answer's unsent backlog fell below the high-water mark (after kPaused).
  virtual void on_drained(Connection&) {}
  // WebSocket: whether on_request may get opening handshakes (Connection::websocket_requested);
  // without, an upgrade request is answered like any other request.
  virtual bool accepts_websockets() const { return false; }
  // A complete message of an accepted session (text is valid UTF-8).
  virtual void on_ws_message(Connection&, bool /*text*/, std::string_view /*data*/) {}
  // The session is over and the request with it: the client's close code (1005 when it gave
  // none), the code of our close after a protocol error, or 1006 when the connection dropped.
  virtual void on_ws_closed(Connection&, uint16_t /*code*/, std::string_view /*reason*/) {}
};

// What the worker runtime wants to know (the scoreboard counters).
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_connections(size_t open) = 0;
  virtual void on_in_flight(size_t in_flight) = 0;
  // A request that got an answer: its status, how long it took from its first byte, and
  // whether the answer was whole (what counts toward --max-requests) or an error answer or a
  // cut-short one the engine gave for the handler.
  virtual void on_response_complete(int status, int64_t duration_ns, bool complete) = 0;
  // Whether to take one more connection now, with `open` already open: a worker that has more
  // than its share leaves new and handed-off connections to the others.
  virtual bool may_accept(size_t open) = 0;
};

struct ListenSocket {
  int fd;
  bool is_unix;
};

class Server {
 public:
  struct Listener;
  Server(uv_loop_t* loop, const Limits& limits, Handler& handler, Observer& observer);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Start accepting, on the listening sockets and from the handoff channel (when it has one);
  // returns a libuv error code (0 on success).
  int listen(const std::vector<ListenSocket>& sockets, const HandoffChannel& handoff);
  // Stop accepting and let every connection finish: requests already received are answered
  // with Connection: close, idle keep-alive connections get `idle_grace_ms` before they close.
  // `on_empty` runs once no connection is left. With `hand_off`, connections at a request
  // boundary go to the other workers instead (rotation); without, they close (shutdown).
  void drain(uint64_t idle_grace_ms, bool hand_off, std::function<void()> on_empty);
  // Close everything now (fast shutdown).
  void close_all();

  bool draining() const { return draining_; }
  size_t connections() const { return open_; }
  uv_loop_t* loop() const { return loop_; }
  const Limits& limits() const { return limits_; }
  Handler& handler() { return handler_; }
  // The header lines every response starts with (Server, Date, --header), refreshed with the
  // date by the sweep timer.
  const std::string& common_headers() const { return common_headers_; }

  // Optional; not owned. Each answered request gets a line.
  void set_access_log(AccessLog* log) { access_log_ = log; }
  AccessLog* access_log() const { return access_log_; }

  // Serves a connected, non-blocking socket (what accepting does; also for tests and fuzzers).
  void adopt(int fd, bool is_unix);

  // Whether the loop read from a socket or accepted since the last call: a pass that served
  // input yields the CPU at its end, one that only flushed an app's output does not.
  bool take_input_seen() { return std::exchange(input_seen_, false); }

  // Called by connections.
  void note_input() { input_seen_ = true; }
  void connection_closed(Connection* conn);
  // Output a connection was given from outside the loop's callbacks (an app's task): written
  // at the end of the next loop pass, so that what one pass of the app sends goes out in one
  // write. The caller makes sure the loop runs (the asgi worker kicks its driver).
  void flush_later(Connection* conn);
  void request_started();
  // A request is over: `status` answered it (0: no answer went out), `complete` as in
  // Observer::on_response_complete, `started_hr` is when its first byte was read (uv_hrtime).
  void response_complete(int status, bool complete, uint64_t started_hr);
  uint64_t drain_idle_grace_ms() const { return drain_idle_grace_ms_; }
  // The channel to hand connections to while draining for a rotation, else -1.
  int handoff_fd() const { return hand_off_ ? handoff_.send_fd : -1; }

 private:
  static void on_acceptable(uv_poll_t* poll, int status, int events);
  static void on_sweep(uv_timer_t* timer);
  static void on_flush_check(uv_check_t* check);
  void accept_from(Listener& l);
  void defer_accepting(Listener& l, uint64_t delay_ms);
  void accept_failed(Listener& l, int err);
  int add_listener(int fd, bool is_unix, bool handoff);
  void sweep();
  void refresh_date();
  void stop_listening();
  void pause_accepting(bool pause);
  bool at_capacity() const {
    return open_ >= limits_.max_connections ||
           (limits_.max_in_flight && in_flight_ >= limits_.max_in_flight);
  }
  void maybe_empty();

  uv_loop_t* loop_;
  Limits limits_;
  Handler& handler_;
  Observer& observer_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  Connection* head_ = nullptr;  // intrusive list of open connections
  size_t open_ = 0;
  size_t in_flight_ = 0;
  uv_timer_t sweep_timer_;
  uv_check_t flush_check_;
  std::vector<Connection*> to_flush_;
  std::string common_headers_;
  int64_t date_second_ = -1;
  bool input_seen_ = false;
  bool draining_ = false;
  bool accept_paused_ = false;  // at max_connections or max_in_flight
  uint64_t pause_logged_ms_ = 0;
  AcceptBackoff accept_backoff_;
  bool hand_off_ = false;
  HandoffChannel handoff_;
  uint64_t drain_idle_grace_ms_ = 0;
  std::function<void()> on_empty_;
  AccessLog* access_log_ = nullptr;
  friend class Connection;
};

}  // namespace rotor::http
