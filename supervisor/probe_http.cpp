#include "supervisor/probe_http.hpp"

#include <fmt/format.h>

namespace rotor::probe {

namespace {

bool is_tchar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool has_control(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\r' && c != '\n' && c != '\t') || u == 0x7f) return true;
  }
  return false;
}

// METHOD SP /target SP HTTP/1.x (RFC 9112 section 3).
bool parse_request_line(std::string_view line, Head& h) {
  if (line.ends_with('\r')) line.remove_suffix(1);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == line.npos ? line.npos : line.find(' ', sp1 + 1);
  if (sp2 == line.npos || sp1 == 0) return false;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  for (char c : method)
    if (!is_tchar(c)) return false;
  if (target.empty() || target[0] != '/' || target.find(' ') != target.npos) return false;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return false;
  h.method = method;
  h.path = target.substr(0, target.find('?'));
  return true;
}

}  // namespace

Head parse_head(std::string_view received) {
  Head h;
  size_t line_end = received.find('\n');
  std::string_view first = received.substr(0, line_end);
  if (has_control(line_end == received.npos ? received : first)) {
    h.verdict = Head::Verdict::kBad;
    return h;
  }
  if (line_end != received.npos && !parse_request_line(first, h)) {
    h.verdict = Head::Verdict::kBad;
    return h;
  }
  size_t end = received.find("\r\n\r\n");
  size_t bare = received.find("\n\n");
  if (end == received.npos && bare == received.npos) {
    h.verdict = received.size() > kMaxHead ? Head::Verdict::kTooLarge : Head::Verdict::kIncomplete;
    return h;
  }
  size_t head_size = std::min(end == received.npos ? received.npos : end + 4,
                              bare == received.npos ? received.npos : bare + 2);
  h.verdict = head_size > kMaxHead ? Head::Verdict::kTooLarge : Head::Verdict::kComplete;
  return h;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string response(int status, std::string_view content_type, std::string_view body,
                     bool head_only, std::string_view extra_headers) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
      "Connection: close\r\n{}\r\n",
      status, reason_phrase(status), content_type, body.size(), extra_headers);
  if (!head_only) out += body;
  return out;
}

}  // namespace rotor::probe
