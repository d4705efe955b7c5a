#include "log/syslog.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>

#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "log/log.hpp"

namespace rotor::log {
namespace {

constexpr std::array<std::pair<std::string_view, int>, 21> kFacilities = {{
    {"kern", 0},     {"user", 1},      {"mail", 2},    {"daemon", 3},  {"auth", 4},
    {"security", 4}, {"syslog", 5},    {"lpr", 6},     {"news", 7},    {"uucp", 8},
    {"cron", 9},     {"authpriv", 10}, {"ftp", 11},    {"local0", 16}, {"local1", 17},
    {"local2", 18},  {"local3", 19},   {"local4", 20}, {"local5", 21}, {"local6", 22},
    {"local7", 23},
}};

// RFC 5424 section 6.2.1 severities for spdlog's levels.
int severity(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;
    case spdlog::level::err:
      return 3;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::info:
      return 6;
    default:
      return 7;
  }
}

// A connected socket to `a`; -1 with `error` set. A plain unix:// tries a datagram socket,
// then a stream one, as Python's SysLogHandler does.
int connect_to(const SyslogAddress& a, bool* stream, std::string* error) {
  if (a.type == SyslogAddress::Type::kUnix) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (a.path.size() >= sizeof addr.sun_path) {
      *error = a.path + ": path too long";
      return -1;
    }
    std::memcpy(addr.sun_path, a.path.data(), a.path.size());
    for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
      if ((type == SOCK_DGRAM && a.stream) || (type == SOCK_STREAM && a.dgram_only)) continue;
      int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
      if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        *stream = type == SOCK_STREAM;
        return fd;
      }
      int err = errno;
      *error = a.path + ": " + std::strerror(err);
      if (fd >= 0) ::close(fd);
      if (err != EPROTOTYPE) return -1;
    }
    return -1;
  }
  addrinfo hints{};
  hints.ai_socktype = a.type == SyslogAddress::Type::kTcp ? SOCK_STREAM : SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(a.host.c_str(), a.port.c_str(), &hints, &res); rc != 0) {
    *error = a.host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      *error = a.host + ":" + a.port + ": " + std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  *stream = a.type == SyslogAddress::Type::kTcp;
  return fd;
}

// One message per line, sent without blocking: a syslog daemon that stalls loses lines
// rather than stalling the master or a worker.
class SyslogSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  SyslogSink(SyslogAddress address, std::string tag, int facility)
      : address_(std::move(address)), tag_(std::move(tag)), facility_(facility) {
    if (address_.type != SyslogAddress::Type::kUnix) {
      // A remote daemon is told which host sent the line; a local one knows.
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      host_ = std::string(host) + " ";
    }
  }
  ~SyslogSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  bool open(std::string* error) {
    fd_ = connect_to(address_, &stream_, error);
    return fd_ >= 0;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string line = format(msg);
    if (send_line(line)) return;
    // The daemon restarted (a datagram peer that went away): connect again, once.
    std::string ignored;
    if (fd_ >= 0) ::close(fd_);
    fd_ = connect_to(address_, &stream_, &ignored);
    if (fd_ >= 0) send_line(line);
  }
  void flush_() override {}
  void set_pattern_(const std::string&) override {}  // the format is RFC 3164's
  void set_formatter_(std::unique_ptr<spdlog::formatter>) override {}

 private:
  std::string format(const spdlog::details::log_msg& msg) const {
    std::time_t t = std::chrono::system_clock::to_time_t(msg.time);
    std::tm tm{};
    localtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line = "<" + std::to_string(facility_ * 8 + severity(msg.level)) + ">" + stamp +
                       " " + host_ + tag_ + "[" + std::to_string(getpid()) +
                       "]: level=" + std::string(level.data(), level.size()) + " role=" + role() +
                       " ";
    line.append(msg.payload.data(), msg.payload.size());
    if (stream_) line += '\n';  // RFC 6587 non-transparent framing
    return line;
  }

  bool send_line(const std::string& line) {
    if (fd_ < 0) return false;
    ssize_t n;
    do {
      n = ::send(fd_, line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK;
  }

  SyslogAddress address_;
  std::string tag_;
  int facility_;
  std::string host_;
  int fd_ = -1;
  bool stream_ = false;
};

// HOST, HOST:PORT, [V6] or [V6]:PORT into `a`; "" on success, else what was expected.
std::string split_host_port(std::string_view text, SyslogAddress* a) {
  std::string_view host = text;
  std::optional<std::string_view> port;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == text.npos || (close + 1 < text.size() && text[close + 1] != ':'))
      return "expected [V6]:PORT";
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) port = text.substr(close + 2);
  } else if (size_t colon = text.rfind(':'); colon != text.npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || host.find_first_of(" \t[]") != host.npos) return "expected a host name";
  a->host = host;
  if (!port) return "";
  int number = -1;
  auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), number);
  if (ec != std::errc() || end != port->data() + port->size() || number < 1 || number > 65535)
    return "expected a port in 1..65535";
  a->port = *port;
  return "";
}

}  // namespace

std::string parse_syslog_address(std::string_view text, SyslogAddress* out) {
  SyslogAddress a;
  if (text.starts_with("unix://")) {
    a.type = SyslogAddress::Type::kUnix;
    std::string_view path = text.substr(7);
    if (size_t hash = path.find('#'); hash != path.npos) {
      std::string_view type = path.substr(hash + 1);
      if (type != "dgram" && type != "stream")
        return "expected #dgram or #stream after the socket path";
      a.stream = type == "stream";
      a.dgram_only = type == "dgram";
      path = path.substr(0, hash);
    }
    if (path.empty()) return "expected a socket path after unix://";
    a.path = path;
  } else if (text.starts_with("udp://") || text.starts_with("tcp://")) {
    a.type = text.starts_with("tcp") ? SyslogAddress::Type::kTcp : SyslogAddress::Type::kUdp;
    if (std::string problem = split_host_port(text.substr(6), &a); !problem.empty()) return problem;
  } else {
    return "expected unix://PATH, udp://HOST:PORT or tcp://HOST:PORT";
  }
  if (out) *out = std::move(a);
  return "";
}

int syslog_facility(std::string_view name) {
  for (const auto& [known, number] : kFacilities) {
    bool same = known.size() == name.size();
    for (size_t i = 0; same && i < name.size(); ++i)
      same = known[i] == (name[i] | 0x20);  // gunicorn lower-cases the name
    if (same) return number;
  }
  return -1;
}

bool add_syslog(const std::string& address, const std::string& tag, const std::string& facility,
                std::string* error) {
  SyslogAddress a;
  std::string problem = parse_syslog_address(address, &a);
  int number = syslog_facility(facility);
  if (problem.empty() && number < 0) problem = "unknown facility " + facility;
  if (!problem.empty()) {
    *error = address + ": " + problem;
    return false;
  }
  auto sink = std::make_shared<SyslogSink>(std::move(a), tag.empty() ? "rotor" : tag, number);
  std::string why;
  if (!sink->open(&why)) {
    *error = "cannot reach syslog at " + address + ": " + why;
    return false;
  }
  spdlog::default_logger()->sinks().push_back(std::move(sink));
  return true;
}

}  // namespace rotor::log
