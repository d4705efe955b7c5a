// The access log: gunicorn's `--access-logformat` atoms, rendered in the worker after each
// response and written with one write(2) per line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rotor::http {

struct Request;

struct AccessEntry {
  const Request* request = nullptr;
  std::string_view remote;  // peer address, "-" when unknown
  int status = 0;
  uint64_t body_bytes = 0;
  int64_t duration_ns = 0;
  int64_t wall_start_s = 0;  // seconds since the epoch, for %(t)s
};

class AccessLog {
 public:
  // `path` "-" is stdout. Returns nullptr with `error` set when the file cannot be opened.
  static std::unique_ptr<AccessLog> open(const std::string& path, const std::string& format,
                                         std::string* error);
  ~AccessLog();

  void write(const AccessEntry& e);
  std::string render(const AccessEntry& e) const;  // one line, with its newline
  void reopen();

  // The compiled format, exposed for tests.
  struct Atom {
    enum Kind { kLiteral, kCode, kRequestHeader, kResponseHeader, kEnv } kind;
    std::string text;  // literal text, the one-letter code, or the header/variable name
  };
  static std::vector<Atom> compile(std::string_view format);

 private:
  AccessLog(std::string path, std::vector<Atom> atoms) : path_(std::move(path)), atoms_(atoms) {}
  bool open_fd(std::string* error);

  std::string path_;
  std::vector<Atom> atoms_;
  int fd_ = -1;
};

}  // namespace rotor::http
