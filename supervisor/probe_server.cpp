#include "supervisor/probe_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "supervisor/scoreboard.hpp"

namespace rotor {

namespace {

constexpr int kAcceptBatch = 16;  // per wake-up: a connect flood cannot hold the loop
constexpr int64_t kLingerNs = 1'000'000'000;

std::string error_response(int status) {
  return probe::response(status, "text/plain; charset=utf-8",
                         std::string(probe::reason_phrase(status)) + "\n", false);
}

}  // namespace

ProbeServer::ProbeServer(Listener listener, Handler handler)
    : listener_(std::move(listener)), handler_(std::move(handler)) {
  fcntl(listener_.fd, F_SETFL, fcntl(listener_.fd, F_GETFL) | O_NONBLOCK);
}

ProbeServer::~ProbeServer() {
  for (auto& [fd, c] : conns_) ::close(fd);
  std::vector<Listener> ls{listener_};
  close_listeners(ls);
}

void ProbeServer::close_in_child() {
  for (auto& [fd, c] : conns_) ::close(fd);
  conns_.clear();
  ::close(listener_.fd);
  listener_.fd = -1;
  listener_.unix_path.clear();
}

void ProbeServer::add_pollfds(std::vector<pollfd>& fds) const {
  fds.push_back({listener_.fd, POLLIN, 0});
  for (const auto& [fd, c] : conns_)
    fds.push_back({fd, static_cast<short>(c.phase == Phase::kWriting ? POLLOUT : POLLIN), 0});
}

void ProbeServer::on_poll(const pollfd* fds, size_t count, int64_t now_ns) {
  for (size_t i = 0; i < count; ++i) {
    if (!fds[i].revents) continue;
    if (fds[i].fd == listener_.fd) {
      accept_all(now_ns);
      continue;
    }
    auto it = conns_.find(fds[i].fd);
    if (it == conns_.end()) continue;
    if (it->second.phase == Phase::kWriting) {
      on_writable(it->first, it->second);
    } else {
      on_readable(it->first, it->second);
    }
  }
}

void ProbeServer::accept_all(int64_t now_ns) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    int fd = accept4(listener_.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        spdlog::debug("event=metrics-accept-failed error={}", errno);
      return;
    }
    if (conns_.size() >= kMaxConnections) evict_oldest();
    conns_[fd].accepted_ns = now_ns;
  }
}

// The longest-open connection is the likeliest to be a slow one; a probe gets in at once.
void ProbeServer::evict_oldest() {
  auto oldest = conns_.begin();
  for (auto it = conns_.begin(); it != conns_.end(); ++it)
    if (it->second.accepted_ns < oldest->second.accepted_ns) oldest = it;
  close_conn(oldest->first);
}

void ProbeServer::on_readable(int fd, Conn& c) {
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0 || c.phase == Phase::kLingering) {
    if (n <= 0) close_conn(fd);
    return;  // lingering: what the client still sends is dropped until it closes
  }
  c.in.append(buf, static_cast<size_t>(n));
  probe::Head head = probe::parse_head(c.in);
  switch (head.verdict) {
    case probe::Head::Verdict::kIncomplete:
      return;
    case probe::Head::Verdict::kBad:
      return answer(fd, c, error_response(400));
    case probe::Head::Verdict::kTooLarge:
      return answer(fd, c, error_response(431));
    case probe::Head::Verdict::kComplete:
      return answer(fd, c, handler_(head));
  }
}

void ProbeServer::answer(int fd, Conn& c, std::string response) {
  c.phase = Phase::kWriting;
  c.in.clear();
  c.in.shrink_to_fit();
  c.out = std::move(response);
  on_writable(fd, c);
}

void ProbeServer::on_writable(int fd, Conn& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = ::send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return close_conn(fd);
    c.sent += static_cast<size_t>(n);
  }
  // A close with unread input would reset the connection, and the client could lose the
  // answer: our side is shut and what still comes is read and dropped, briefly.
  ::shutdown(fd, SHUT_WR);
  c.phase = Phase::kLingering;
  c.answered_ns = monotonic_ns();
  c.out.clear();
  c.out.shrink_to_fit();
}

void ProbeServer::expire(int64_t now_ns) {
  std::vector<int> late, overdue;
  for (auto& [fd, c] : conns_) {
    int64_t age = now_ns - c.accepted_ns;
    if (age > kLifetimeNs || (c.phase == Phase::kLingering && now_ns - c.answered_ns > kLingerNs))
      late.push_back(fd);
    else if (c.phase == Phase::kReading && age > kHeadTimeoutNs)
      overdue.push_back(fd);
  }
  for (int fd : late) close_conn(fd);
  for (int fd : overdue) answer(fd, conns_[fd], error_response(408));
}

void ProbeServer::close_conn(int fd) {
  ::close(fd);
  conns_.erase(fd);
}

}  // namespace rotor
