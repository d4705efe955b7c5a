#include "supervisor/control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/control_command.hpp"
#include "supervisor/scoreboard.hpp"

namespace rotor {
namespace {

bool socket_address(const std::string& path, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

bool someone_listens(const sockaddr_un& addr) {
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool live =
      probe >= 0 && connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  if (probe >= 0) ::close(probe);
  return live;
}

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

ControlServer::~ControlServer() {
  close();
}

ControlServer::ControlServer(ControlServer&& other) noexcept {
  *this = std::move(other);
}

ControlServer& ControlServer::operator=(ControlServer&& other) noexcept {
  if (this == &other) return *this;
  close();
  listen_fd_ = std::exchange(other.listen_fd_, -1);
  path_ = std::move(other.path_);
  dev_ = other.dev_;
  ino_ = other.ino_;
  connections_ = std::move(other.connections_);
  other.connections_.clear();
  return *this;
}

std::string ControlServer::open(const std::string& path) {
  sockaddr_un addr;
  if (!socket_address(path, addr)) return "path empty or too long";
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return "exists and is not a socket";
    if (someone_listens(addr)) return "another server is listening on it";
    unlink(path.c_str());
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno_text(errno);
  // Only the user rotor runs as may connect: nobody sees the file with a wider mode.
  mode_t before = umask(0177);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  umask(before);
  if (rc != 0) {
    ::close(fd);
    return errno_text(err);
  }
  if (chmod(path.c_str(), 0600) != 0 || ::listen(fd, 16) != 0 || stat(path.c_str(), &st) != 0) {
    err = errno;
    ::close(fd);
    unlink(path.c_str());
    return errno_text(err);
  }
  listen_fd_ = fd;
  path_ = path;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  return "";
}

void ControlServer::add_poll_fds(std::vector<pollfd>& fds) const {
  if (listen_fd_ < 0) return;
  // While accept fails for lack of descriptors the socket stays readable: not polled for a
  // while, or the loop would spin.
  fds.push_back(
      {listen_fd_, static_cast<short>(monotonic_ns() < accept_paused_until_ns_ ? 0 : POLLIN), 0});
  for (const auto& c : connections_) {
    fds.push_back({c.fd, static_cast<short>(c.replying ? POLLOUT : POLLIN), 0});
  }
}

void ControlServer::on_poll(const pollfd* fds, size_t count, int64_t now_ns,
                            const Handler& handle) {
  if (listen_fd_ < 0 || count == 0) return;
  // Entries 1.. are the connections as they were when the fds were taken, in order.
  for (size_t i = 1; i < count && i - 1 < connections_.size(); ++i) {
    Connection& c = connections_[i - 1];
    if (fds[i].fd != c.fd || !fds[i].revents) continue;
    bool done = c.replying ? on_writable(c) : on_readable(c, handle);
    if (done) {
      ::close(c.fd);
      c.fd = -1;
    }
  }
  for (auto& c : connections_) {
    if (c.fd >= 0 && now_ns > c.deadline_ns) {
      spdlog::debug("event=control-timeout");
      ::close(c.fd);
      c.fd = -1;
    }
  }
  std::erase_if(connections_, [](const Connection& c) { return c.fd < 0; });
  if (fds[0].revents & POLLIN) accept_all(now_ns);
}

void ControlServer::accept_all(int64_t now_ns) {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (accept_paused_until_ns_ == 0)
          spdlog::warn("event=control-accept-failed error={} action=pause",
                       log::quote(std::strerror(errno)));
        accept_paused_until_ns_ = now_ns + kAcceptPauseNs;
      }
      return;
    }
    // At the cap the oldest connection still sending its request makes room: clients that hold
    // connections open cannot keep an operator out.
    if (connections_.size() >= kMaxConnections && !evict_oldest_reader()) {
      ::close(fd);
      continue;
    }
    connections_.push_back({fd, {}, {}, 0, now_ns + kDeadlineNs, false});
  }
}

bool ControlServer::on_readable(Connection& c, const Handler& handle) {
  char buf[1024];
  while (true) {
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n == 0) return true;  // closed before a whole line: nothing to answer
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    c.in.append(buf, static_cast<size_t>(n));
    size_t eol = c.in.find('\n');
    if (eol != std::string::npos && eol <= kMaxRequestBytes) {
      reply(c, handle(std::string_view(c.in).substr(0, eol)));
      return on_writable(c);
    }
    if (c.in.size() > kMaxRequestBytes) {
      reply(c, json::dump(control::error_reply("request longer than " +
                                               std::to_string(kMaxRequestBytes) + " bytes")));
      return on_writable(c);
    }
  }
}

bool ControlServer::evict_oldest_reader() {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [](const Connection& c) { return !c.replying; });
  if (it == connections_.end()) return false;
  ::close(it->fd);
  connections_.erase(it);
  return true;
}

void ControlServer::reply(Connection& c, const std::string& text) {
  c.out = text + "\n";
  c.sent = 0;
  c.replying = true;
  c.in.clear();
}

bool ControlServer::on_writable(Connection& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    c.sent += static_cast<size_t>(n);
  }
  return true;
}

void ControlServer::close() {
  close_fds();
  if (path_.empty()) return;
  struct stat st;
  // Another rotor may have replaced a file we were told to give up: its socket is not ours.
  if (lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
    unlink(path_.c_str());
  path_.clear();
}

void ControlServer::close_in_child() {
  close_fds();
  path_.clear();
}

void ControlServer::close_fds() {
  for (auto& c : connections_) {
    if (c.fd >= 0) ::close(c.fd);
  }
  connections_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

}  // namespace rotor
