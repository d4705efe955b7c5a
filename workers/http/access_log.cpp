#include "workers/http/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "workers/http/request.hpp"

namespace rotor::http {

std::vector<AccessLog::Atom> AccessLog::compile(std::string_view f) {
  std::vector<Atom> atoms;
  std::string literal;
  size_t i = 0;
  while (i < f.size()) {
    // %(name)s where name is a code letter, {header}i, {header}o or {var}e.
    if (f[i] == '%' && i + 1 < f.size() && f[i + 1] == '(') {
      size_t close = f.find(")s", i + 2);
      if (close != std::string_view::npos) {
        std::string_view name = f.substr(i + 2, close - i - 2);
        Atom a{Atom::kCode, std::string(name)};
        if (name.size() > 3 && name.front() == '{' && name[name.size() - 2] == '}') {
          char kind = name.back();
          std::string inner(name.substr(1, name.size() - 3));
          for (char& c : inner) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          if (kind == 'i') a = {Atom::kRequestHeader, inner};
          if (kind == 'o') a = {Atom::kResponseHeader, inner};
          if (kind == 'e') a = {Atom::kEnv, std::string(name.substr(1, name.size() - 3))};
        }
        if (!literal.empty()) atoms.push_back({Atom::kLiteral, std::move(literal)});
        literal.clear();
        atoms.push_back(std::move(a));
        i = close + 2;
        continue;
      }
    }
    literal += f[i++];
  }
  if (!literal.empty()) atoms.push_back({Atom::kLiteral, std::move(literal)});
  return atoms;
}

std::unique_ptr<AccessLog> AccessLog::open(const std::string& path, const std::string& format,
                                           std::string* error) {
  std::unique_ptr<AccessLog> log(new AccessLog(path, compile(format)));
  if (!log->open_fd(error)) return nullptr;
  return log;
}

AccessLog::~AccessLog() {
  if (fd_ > STDERR_FILENO) ::close(fd_);
}

bool AccessLog::open_fd(std::string* error) {
  if (path_ == "-") {
    fd_ = STDOUT_FILENO;
    return true;
  }
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (error) *error = path_ + ": " + std::strerror(errno);
    return false;
  }
  if (fd_ > STDERR_FILENO) ::close(fd_);
  fd_ = fd;
  return true;
}

void AccessLog::reopen() {
  open_fd(nullptr);
}

namespace {

void append_or_dash(std::string& out, std::string_view v) {
  if (v.empty()) {
    out += '-';
  } else {
    out += v;
  }
}

}  // namespace

std::string AccessLog::render(const AccessEntry& e) const {
  const Request& r = *e.request;
  std::string out;
  out.reserve(160);
  std::string_view target = r.target();
  size_t q = target.find('?');
  for (const Atom& a : atoms_) {
    switch (a.kind) {
      case Atom::kLiteral:
        out += a.text;
        break;
      case Atom::kRequestHeader:
        append_or_dash(out, r.header(a.text));
        break;
      case Atom::kResponseHeader:
        out += '-';  // response headers are not kept after they are written
        break;
      case Atom::kEnv: {
        const char* v = std::getenv(a.text.c_str());
        append_or_dash(out, v ? v : "");
        break;
      }
      case Atom::kCode: {
        const std::string& c = a.text;
        if (c == "h") {
          append_or_dash(out, e.remote);
        } else if (c == "l" || c == "u") {
          out += '-';
        } else if (c == "t") {
          char buf[64];
          time_t t = static_cast<time_t>(e.wall_start_s);
          struct tm tm;
          localtime_r(&t, &tm);
          out.append(buf, strftime(buf, sizeof buf, "[%d/%b/%Y:%H:%M:%S %z]", &tm));
        } else if (c == "r") {
          out += r.method_name();
          out += ' ';
          out += target;
          out += r.http_minor == 0 ? " HTTP/1.0" : " HTTP/1.1";
        } else if (c == "m") {
          out += r.method_name();
        } else if (c == "U") {
          out += target.substr(0, q);
        } else if (c == "q") {
          if (q != std::string_view::npos) out += target.substr(q + 1);
        } else if (c == "H") {
          out += r.http_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
        } else if (c == "s") {
          out += std::to_string(e.status);
        } else if (c == "B") {
          out += std::to_string(e.body_bytes);
        } else if (c == "b") {
          out += e.body_bytes ? std::to_string(e.body_bytes) : "-";
        } else if (c == "f") {
          append_or_dash(out, r.header("referer"));
        } else if (c == "a") {
          append_or_dash(out, r.header("user-agent"));
        } else if (c == "T") {
          out += std::to_string(e.duration_ns / 1000000000);
        } else if (c == "M") {
          out += std::to_string(e.duration_ns / 1000000);
        } else if (c == "D") {
          out += std::to_string(e.duration_ns / 1000);
        } else if (c == "L") {
          char buf[32];
          snprintf(buf, sizeof buf, "%.6f", static_cast<double>(e.duration_ns) / 1e9);
          out += buf;
        } else if (c == "p") {
          out += "<" + std::to_string(getpid()) + ">";
        } else {
          out += '-';
        }
        break;
      }
    }
  }
  out += '\n';
  return out;
}

void AccessLog::write(const AccessEntry& e) {
  std::string line = render(e);
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace rotor::http
