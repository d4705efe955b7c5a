#include "supervisor/listeners.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace rotor {

namespace {

constexpr int kSystemdFirstFd = 3;

std::string errno_text(int err) {
  return std::strerror(err);
}

int sockname_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return -1;
}

std::string describe(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
    return "http://" + std::string(host) + ":" + std::to_string(sockname_port(fd));
  }
  if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof host);
    return "http://[" + std::string(host) + "]:" + std::to_string(sockname_port(fd));
  }
  if (ss.ss_family == AF_UNIX) {
    return "unix:" + std::string(reinterpret_cast<sockaddr_un*>(&ss)->sun_path);
  }
  return "?";
}

bool is_unix_socket(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  return getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 && ss.ss_family == AF_UNIX;
}

Listener adopt_fd(const std::string& spec, int fd, int backlog) {
  int accepting = 0;
  socklen_t len = sizeof accepting;
  if (fcntl(fd, F_GETFD) < 0) throw BindError(spec + ": no such file descriptor");
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0) {
    throw BindError(spec + ": not a socket");
  }
  if (!accepting && ::listen(fd, backlog) != 0) {
    throw BindError(spec + ": cannot listen: " + errno_text(errno));
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  Listener l;
  l.spec = spec;
  l.fd = fd;
  l.is_unix = is_unix_socket(fd);
  l.address = describe(fd);
  l.inherited = true;
  return l;
}

Listener bind_unix(const std::string& spec, const std::string& path, int backlog,
                   mode_t socket_umask) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    throw BindError("cannot bind " + spec + ": path empty or too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw BindError("cannot bind " + spec + ": " + errno_text(errno));
  // A socket file left by a dead server is replaced; one a live server answers on is not.
  struct stat st;
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(probe);
    if (live) {
      ::close(fd);
      throw BindError("cannot bind " + spec + ": another server is listening on it");
    }
    unlink(path.c_str());
  }
  // The socket file's mode comes from --umask (as gunicorn's: the default 0 lets a proxy
  // running as another user connect); the process's own umask is left as it was.
  mode_t before = umask(socket_umask);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  umask(before);
  if (rc != 0 || ::listen(fd, backlog) != 0) {
    if (rc == 0) err = errno;
    ::close(fd);
    throw BindError("cannot bind " + spec + ": " + errno_text(err), err);
  }
  Listener l;
  l.spec = spec;
  l.fd = fd;
  l.is_unix = true;
  l.unix_path = path;
  l.address = "unix:" + path;
  return l;
}

Listener bind_tcp(const std::string& spec, int backlog, bool reuse_port) {
  std::string host, port;
  if (!spec.empty() && spec[0] == '[') {
    auto close = spec.find(']');
    if (close == std::string::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
      throw BindError("cannot bind " + spec + ": expected [V6]:PORT");
    }
    host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
  } else {
    auto colon = spec.rfind(':');
    if (colon == std::string::npos) {
      host = spec;
      port = "8000";
    } else {
      host = spec.substr(0, colon);
      port = spec.substr(colon + 1);
    }
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) throw BindError("cannot bind " + spec + ": " + gai_strerror(rc));
  int last_err = 0;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      last_err = errno;
      ::close(fd);
      continue;
    }
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, backlog) == 0) {
      freeaddrinfo(res);
      Listener l;
      l.spec = spec;
      l.fd = fd;
      l.address = describe(fd);
      return l;
    }
    last_err = errno;
    ::close(fd);
  }
  freeaddrinfo(res);
  throw BindError("cannot bind " + spec + ": " + errno_text(last_err), last_err);
}

}  // namespace

Listener open_listener(const std::string& spec, int backlog, mode_t socket_umask, bool reuse_port) {
  if (spec.rfind("unix:", 0) == 0) return bind_unix(spec, spec.substr(5), backlog, socket_umask);
  if (spec.rfind("fd://", 0) == 0) {
    int fd = -1;
    std::string num = spec.substr(5);
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), fd);
    if (ec != std::errc() || p != num.data() + num.size() || fd < 0) {
      throw BindError("cannot use " + spec + ": not a file descriptor number");
    }
    return adopt_fd(spec, fd, backlog);
  }
  return bind_tcp(spec, backlog, reuse_port);
}

std::vector<Listener> open_listeners(const std::vector<std::string>& specs, int backlog,
                                     const std::map<std::string, std::string>& env,
                                     mode_t socket_umask, bool reuse_port) {
  std::vector<Listener> out;
  try {
    auto fds = env.find("LISTEN_FDS");
    auto pid = env.find("LISTEN_PID");
    if (fds != env.end() && pid != env.end() && pid->second == std::to_string(getpid())) {
      int n = 0;
      auto [p, ec] =
          std::from_chars(fds->second.data(), fds->second.data() + fds->second.size(), n);
      if (ec != std::errc() || n <= 0) throw BindError("LISTEN_FDS: not a positive number");
      for (int i = 0; i < n; ++i) {
        out.push_back(adopt_fd("systemd fd " + std::to_string(kSystemdFirstFd + i),
                               kSystemdFirstFd + i, backlog));
        out.back().activated = true;
      }
      return out;
    }
    for (const auto& spec : specs)
      out.push_back(open_listener(spec, backlog, socket_umask, reuse_port));
  } catch (...) {
    close_listeners(out);
    throw;
  }
  return out;
}

bool serves(const Listener& l, const std::vector<std::string>& bind) {
  return l.activated || std::find(bind.begin(), bind.end(), l.spec) != bind.end();
}

namespace {
// The TCP port a HOST:PORT spec names (0 for unix:, fd:// or no number).
int spec_port(const std::string& spec) {
  if (spec.rfind("unix:", 0) == 0 || spec.rfind("fd://", 0) == 0) return 0;
  size_t colon = spec.rfind(':');
  if (colon == std::string::npos) return 0;
  return std::atoi(spec.c_str() + colon + 1);
}

int bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}
}  // namespace

bool holds_port(const std::vector<Listener>& listeners, const std::string& spec) {
  int port = spec_port(spec);
  return port > 0 && std::any_of(listeners.begin(), listeners.end(), [&](const Listener& l) {
           return !l.is_unix && bound_port(l.fd) == port;
         });
}

std::vector<std::string> open_missing(std::vector<Listener>& listeners,
                                      const std::vector<std::string>& bind, int backlog,
                                      mode_t socket_umask, bool reuse_port) {
  if (std::any_of(listeners.begin(), listeners.end(),
                  [](const Listener& l) { return l.activated; }))
    return {};  // systemd's sockets are the bind, whatever the config says
  std::vector<Listener> opened;
  std::vector<std::string> addresses;
  const std::string* current = nullptr;
  try {
    for (const auto& spec : bind) {
      current = &spec;
      bool have = std::any_of(listeners.begin(), listeners.end(),
                              [&](const Listener& l) { return l.spec == spec; }) ||
                  std::any_of(opened.begin(), opened.end(),
                              [&](const Listener& l) { return l.spec == spec; });
      if (!have) opened.push_back(open_listener(spec, backlog, socket_umask, reuse_port));
    }
  } catch (BindError& e) {
    close_listeners(opened);
    e.port_held = e.error == EADDRINUSE && holds_port(listeners, *current);
    throw;
  } catch (...) {
    close_listeners(opened);
    throw;
  }
  for (auto& l : opened) {
    addresses.push_back(l.address);
    listeners.push_back(std::move(l));
  }
  return addresses;
}

std::vector<std::string> close_unused(std::vector<Listener>& listeners,
                                      const std::vector<const std::vector<std::string>*>& binds) {
  std::vector<Listener> used, unused;
  std::vector<std::string> addresses;
  for (auto& l : listeners) {
    bool in_use = std::any_of(binds.begin(), binds.end(),
                              [&](const std::vector<std::string>* b) { return serves(l, *b); });
    if (!in_use) addresses.push_back(l.address);
    (in_use ? used : unused).push_back(std::move(l));
  }
  listeners = std::move(used);
  // Workers still holding it must not keep a queue that nobody serves after they leave.
  stop_accepting(unused);
  close_listeners(unused);
  return addresses;
}

void stop_accepting(const std::vector<Listener>& listeners) {
  for (const auto& l : listeners) {
    if (!l.inherited && l.fd >= 0) ::shutdown(l.fd, SHUT_RD);
  }
}

void close_listeners(std::vector<Listener>& listeners) {
  for (auto& l : listeners) {
    if (l.fd >= 0) ::close(l.fd);
    if (!l.unix_path.empty()) unlink(l.unix_path.c_str());
  }
  listeners.clear();
}

}  // namespace rotor
