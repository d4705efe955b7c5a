#include "log/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include <spdlog/details/null_mutex.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace rotor::log {

namespace {

// --user: who gets the log files the master creates (-1: nobody, they stay the master's).
uid_t g_owner_uid = static_cast<uid_t>(-1);
gid_t g_owner_gid = static_cast<gid_t>(-1);

// Opens `path` for appending; a file this call creates goes to the workers' user.
int open_log_file(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (g_owner_uid != static_cast<uid_t>(-1) && fchown(fd, g_owner_uid, g_owner_gid) != 0) {
      if (error) *error = path + ": cannot give it to the workers' user: " + std::strerror(errno);
      ::close(fd);
      return -1;
    }
    return fd;
  }
  if (errno == EEXIST) fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0 && error) *error = path + ": " + std::strerror(errno);
  return fd;
}

// A sink on a file descriptor: unbuffered, one write per line, reopenable.
class FdSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit FdSink(std::string path) : path_(std::move(path)) {}
  ~FdSink() override {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }

  bool open(std::string* error) {
    if (path_ == "-") {
      fd_ = STDERR_FILENO;
      owned_ = false;
      return true;
    }
    int fd = open_log_file(path_, error);
    if (fd < 0) return false;
    if (owned_ && fd_ >= 0) ::close(fd_);
    fd_ = fd;
    owned_ = true;
    return true;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    const char* p = buf.data();
    size_t left = buf.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // nowhere left to report a failing log
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void flush_() override {}

 private:
  std::string path_;
  int fd_ = -1;
  bool owned_ = false;
};

std::shared_ptr<FdSink> g_sink;
const char* g_role = "master";

// `%R` prints the role, so a forked worker changes one pointer instead of compiling a new
// pattern: on a VM every page a fresh worker writes costs a copy-on-write fault.
class RoleFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    dest.append(g_role, g_role + std::strlen(g_role));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<RoleFlag>();
  }
};

void apply_pattern() {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<RoleFlag>('R').set_pattern(
      "%Y-%m-%dT%H:%M:%S.%e%z level=%l role=%R pid=%P %v");
  spdlog::set_formatter(std::move(formatter));
}

}  // namespace

bool setup(const std::string& path, const std::string& level, std::string* error) {
  auto lvl = spdlog::level::from_str(level == "warning" ? "warn" : level);
  if (lvl == spdlog::level::off && level != "off") {
    if (error) *error = "unknown log level '" + level + "'";
    return false;
  }
  auto sink = std::make_shared<FdSink>(path);
  if (!sink->open(error)) return false;
  auto logger = std::make_shared<spdlog::logger>("rotor", sink);
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  g_sink = sink;
  apply_pattern();
  return true;
}

void give_new_files_to(uid_t uid, gid_t gid) {
  g_owner_uid = uid;
  g_owner_gid = gid;
}

bool prepare_file(const std::string& path, std::string* error) {
  if (path.empty() || path == "-") return true;
  int fd = open_log_file(path, error);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

void reopen() {
  if (g_sink) {
    std::string error;
    if (!g_sink->open(&error)) spdlog::error("event=log-reopen-failed error={}", quote(error));
  }
}

void set_role(const char* role) {
  g_role = role;
}

const char* role() {
  return g_role;
}

std::string quote(const std::string& value) {
  bool plain = !value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      plain = false;
      break;
    }
  }
  if (plain) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace rotor::log
