#include "workers/http/server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <spdlog/spdlog.h>

#include "workers/http/connection.hpp"

namespace rotor::http {

namespace {
// Accepting a few connections per wake-up, rather than all that are queued, lets every worker
// polling the shared socket take its share.
constexpr int kAcceptsPerWakeup = 4;
constexpr uint64_t kSweepIntervalMs = 250;
constexpr uint64_t kAcceptRetryMs = 1;
}  // namespace

struct Server::Listener {
  Server* server;
  int fd;
  bool is_unix;
  bool handoff;  // the handoff channel rather than a listening socket
  uv_poll_t poll;
  uv_timer_t retry;  // re-arms the poll after a deferral
  bool deferred = false;
  int open_handles = 2;  // poll and retry: freed when both have closed
};

namespace {
void close_listener_handle(uv_handle_t* h) {
  auto* l = static_cast<Server::Listener*>(h->data);
  if (--l->open_handles == 0) {
    ::close(l->fd);
    delete l;
  }
}
}  // namespace

Server::Server(uv_loop_t* loop, const Limits& limits, Handler& handler, Observer& observer)
    : loop_(loop), limits_(limits), handler_(handler), observer_(observer) {
  refresh_date();
  uv_timer_init(loop_, &sweep_timer_);
  sweep_timer_.data = this;
  uv_timer_start(&sweep_timer_, on_sweep, kSweepIntervalMs, kSweepIntervalMs);
  uv_unref(reinterpret_cast<uv_handle_t*>(&sweep_timer_));
  uv_check_init(loop_, &flush_check_);
  flush_check_.data = this;
}

Server::~Server() = default;

int Server::listen(const std::vector<ListenSocket>& sockets, const HandoffChannel& handoff) {
  handoff_ = handoff;
  for (const auto& s : sockets) {
    if (int rc = add_listener(s.fd, s.is_unix, false); rc != 0) return rc;
  }
  if (handoff.recv_fd >= 0) return add_listener(handoff.recv_fd, false, true);
  return 0;
}

int Server::add_listener(int fd, bool is_unix, bool handoff) {
  auto l = std::make_unique<Listener>();
  l->server = this;
  l->fd = fd;
  l->is_unix = is_unix;
  l->handoff = handoff;
  int rc = uv_poll_init(loop_, &l->poll, fd);
  if (rc != 0) return rc;
  l->poll.data = l.get();
  uv_timer_init(loop_, &l->retry);
  l->retry.data = l.get();
  rc = uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
  if (rc != 0) return rc;
  listeners_.push_back(std::move(l));
  return 0;
}

void Server::on_acceptable(uv_poll_t* poll, int status, int) {
  auto* l = static_cast<Listener*>(poll->data);
  if (status < 0) return;
  l->server->note_input();
  l->server->accept_from(*l);
}

void Server::accept_from(Listener& l) {
  for (int i = 0; i < kAcceptsPerWakeup && !accept_paused_; ++i) {
    if (!observer_.may_accept(open_)) {
      defer_accepting(l, kAcceptRetryMs);
      return;
    }
    if (l.handoff) {
      bool is_unix = false;
      int fd = receive_connection(l.fd, &is_unix);
      if (fd < 0) return;
      adopt(fd, is_unix);
      continue;
    }
    int fd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) {
        return;
      }
      if (errno == EINVAL) {  // no longer listening: the master stopped it (a stop is coming)
        uv_poll_stop(&l.poll);
        return;
      }
      accept_failed(l, errno);
      return;
    }
    accept_backoff_.on_success();
    adopt(fd, l.is_unix);
  }
}

namespace {
// Failures that last until a descriptor or memory is freed, not a per-connection one.
bool out_of_resources(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}
const char* errno_name(int err) {
  switch (err) {
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENOBUFS:
      return "ENOBUFS";
    case ENOMEM:
      return "ENOMEM";
    default:
      return "other";
  }
}
}  // namespace

void Server::accept_failed(Listener& l, int err) {
  if (!out_of_resources(err)) {
    spdlog::warn("event=accept-failed error=\"{}\"", std::strerror(err));
    return;
  }
  // The connection stays queued and the socket readable: retrying now would spin.
  AcceptBackoff::Step step = accept_backoff_.on_failure(uv_now(loop_));
  if (step.log) {
    spdlog::warn("event=accept-failed error={} count={} pause_ms={} connections={} detail=\"{}\"",
                 errno_name(err), step.count, step.pause_ms, open_, std::strerror(err));
  }
  defer_accepting(l, step.pause_ms);
}

void Server::defer_accepting(Listener& l, uint64_t delay_ms) {
  // Level-triggered polling would wake us again at once; look again a moment later, when the
  // other workers have taken their share (or a descriptor is free again).
  if (l.deferred) return;
  l.deferred = true;
  uv_poll_stop(&l.poll);
  uv_timer_start(
      &l.retry,
      [](uv_timer_t* t) {
        auto* lst = static_cast<Listener*>(t->data);
        lst->deferred = false;
        if (!lst->server->accept_paused_) uv_poll_start(&lst->poll, UV_READABLE, on_acceptable);
      },
      delay_ms, 0);
}

void Server::adopt(int fd, bool is_unix) {
  auto* conn = new Connection(*this);
  conn->next = head_;
  if (head_) head_->prev = conn;
  head_ = conn;
  ++open_;
  observer_.on_connections(open_);
  // At the limit, leave new connections in the shared queue for the other workers.
  if (at_capacity()) pause_accepting(true);
  conn->start(fd, is_unix);
}

void Server::pause_accepting(bool pause) {
  if (pause == accept_paused_) return;
  accept_paused_ = pause;
  for (auto& l : listeners_) {
    if (pause) {
      uv_poll_stop(&l->poll);
    } else if (!l->deferred) {  // a deferred one restarts on its timer
      uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
    }
  }
  if (pause) {
    uint64_t now = uv_now(loop_);
    if (pause_logged_ms_ == 0 || now - pause_logged_ms_ >= 60000) {  // at most once a minute
      pause_logged_ms_ = now;
      spdlog::warn("event=accept-paused connections={} in_flight={} reason={}", open_, in_flight_,
                   open_ >= limits_.max_connections ? "worker-connections" : "limit-concurrency");
    }
  }
}

void Server::flush_later(Connection* conn) {
  if (to_flush_.empty()) uv_check_start(&flush_check_, on_flush_check);
  to_flush_.push_back(conn);
}

void Server::on_flush_check(uv_check_t* check) {
  auto* server = static_cast<Server*>(check->data);
  std::vector<Connection*> batch;
  batch.swap(server->to_flush_);
  uv_check_stop(check);
  for (Connection* c : batch) c->flush_queued();
}

void Server::connection_closed(Connection* conn) {
  std::erase(to_flush_, conn);
  if (to_flush_.empty()) uv_check_stop(&flush_check_);
  if (conn->prev) conn->prev->next = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  if (head_ == conn) head_ = conn->next;
  --open_;
  observer_.on_connections(open_);
  if (accept_paused_ && !at_capacity() && !draining_) pause_accepting(false);
  maybe_empty();
}

void Server::request_started() {
  observer_.on_in_flight(++in_flight_);
  if (at_capacity()) pause_accepting(true);
}

void Server::response_complete(int status, bool complete, uint64_t started_hr) {
  observer_.on_in_flight(--in_flight_);
  if (accept_paused_ && !at_capacity() && !draining_) pause_accepting(false);
  if (status) {
    observer_.on_response_complete(status, static_cast<int64_t>(uv_hrtime() - started_hr),
                                   complete);
  }
}

void Server::stop_listening() {
  for (auto& l : listeners_) {
    uv_poll_stop(&l->poll);
    uv_timer_stop(&l->retry);
    // Our copy of the shared socket only: the master and the other workers keep it open, so
    // connections still queued are accepted by them.
    uv_close(reinterpret_cast<uv_handle_t*>(&l->retry), close_listener_handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&l->poll), close_listener_handle);
    l.release();
  }
  listeners_.clear();
}

void Server::drain(uint64_t idle_grace_ms, bool hand_off, std::function<void()> on_empty) {
  draining_ = true;
  hand_off_ = hand_off && handoff_.send_fd >= 0;
  drain_idle_grace_ms_ = idle_grace_ms;
  on_empty_ = std::move(on_empty);
  stop_listening();
  for (Connection* c = head_; c; c = c->next) c->begin_drain();
  maybe_empty();
}

void Server::close_all() {
  stop_listening();
  for (Connection* c = head_; c; c = c->next) c->close_now();
}

void Server::maybe_empty() {
  if (draining_ && open_ == 0 && on_empty_) {
    auto cb = std::move(on_empty_);
    on_empty_ = nullptr;
    cb();
  }
}

void Server::on_sweep(uv_timer_t* timer) {
  static_cast<Server*>(timer->data)->sweep();
}

void Server::sweep() {
  refresh_date();
  uint64_t now = uv_now(loop_);
  for (Connection* c = head_; c;) {
    Connection* next = c->next;  // closing unlinks only in the close callback, but be safe
    c->check_deadline(now);
    c = next;
  }
}

void Server::refresh_date() {
  time_t now = time(nullptr);
  if (now == date_second_) return;
  date_second_ = now;
  struct tm tm;
  gmtime_r(&now, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  common_headers_.clear();
  if (limits_.server_header) common_headers_ += "Server: rotor\r\n";
  if (limits_.date_header) common_headers_.append(buf, n);
  common_headers_ += limits_.extra_headers;
}

}  // namespace rotor::http
