#include "workers/http/response_writer.hpp"

#include <cassert>
#include <charconv>
#include <cstdio>

#include "workers/http/status.hpp"
#include "workers/websocket/handshake.hpp"

namespace rotor::http {

namespace {

void append_number(std::string& out, uint64_t n) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, res.ptr);
}

void append_status_line(std::string& out, int status) {
  out += "HTTP/1.1 ";
  std::string_view line = status_line(status);
  if (line.empty()) {
    append_number(out, static_cast<uint64_t>(status));
    out += " Unknown";
  } else {
    out += line;
  }
  out += "\r\n";
}

void append_connection(std::string& out, const Request& req, bool keep) {
  if (!keep) {
    out += "Connection: close\r\n";
  } else if (req.http_minor == 0) {
    out += "Connection: keep-alive\r\n";
  }
}

// What the handler's headers say about framing: its Content-Length (which must be one number,
// however often it is repeated) and whether it asks for the close.
struct Declared {
  bool has_length = false;
  uint64_t length = 0;
  bool close_asked = false;
};

bool read_declared(const HeaderList* headers, Declared* d) {
  if (!headers) return true;
  for (const auto& [name, value] : *headers) {
    if (iequals(name, "connection"))
      d->close_asked = d->close_asked || ws::has_token(value, "close");
    if (!iequals(name, "content-length")) continue;
    // The app's length frames the body on a keep-alive connection: it must be one number.
    uint64_t n = 0;
    std::string_view v = trim_ows(value);
    auto res = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || res.ec != std::errc() || res.ptr != v.data() + v.size() ||
        (d->has_length && n != d->length)) {
      return false;
    }
    d->has_length = true;
    d->length = n;
  }
  return true;
}

}  // namespace

void ResponseWriter::begin() {
  assert(state_ == State::kIdle);
  state_ = State::kHead;
}

uint64_t ResponseWriter::respond(Wire w, int status, std::string_view content_type,
                                 std::string_view body, bool keep) {
  assert(state_ == State::kHead);
  append_status_line(w.out, status);
  w.out += w.common_headers;
  if (!content_type.empty()) {
    w.out += "Content-Type: ";
    w.out += content_type;
    w.out += "\r\n";
  }
  w.out += "Content-Length: ";
  append_number(w.out, body.size());
  w.out += "\r\n";
  append_connection(w.out, w.req, keep);
  w.out += "\r\n";
  if (!w.req.head) w.out += body;
  state_ = State::kIdle;
  return w.req.head ? 0 : body.size();
}

SendResult ResponseWriter::start(Wire w, int status, const HeaderList* headers,
                                 std::string_view body, bool more, bool* keep, std::string* error) {
  assert(state_ == State::kHead);
  Declared d;
  if (!read_declared(headers, &d)) {
    *error = "invalid or conflicting Content-Length in the response";
    return SendResult::kInvalid;
  }
  const Request& req = w.req;
  bool no_body = req.head || status == 204 || status == 304;
  if (d.has_length && !no_body && body.size() > d.length) {
    *error = "response body longer than its Content-Length";  // checked before anything is sent
    return SendResult::kInvalid;
  }
  bool framed_by_length = d.has_length && !no_body;
  // The app asked for the close, or its body ends short of its length (the client would take
  // the next answer for the rest of this one).
  if (d.close_asked || (framed_by_length && !more && body.size() < d.length)) *keep = false;
  if (no_body) {
    state_ = State::kNoBody;
  } else if (d.has_length) {
    state_ = State::kLength;
  } else if (!more) {
    state_ = State::kLength;  // the whole body is this part: its size is the length
    d.length = body.size();
  } else if (req.http_minor >= 1) {
    state_ = State::kChunked;  // without a length, a streamed body is chunked
  } else {
    state_ = State::kUntilClose;  // HTTP/1.0 has no chunks: close-delimited
    *keep = false;
  }
  declared_length_ = d.length;
  status_ = status;
  body_bytes_ = 0;
  write_head(w, status, headers, body, more, d.has_length, *keep);
  return SendResult::kOk;
}

void ResponseWriter::write_head(Wire w, int status, const HeaderList* headers,
                                std::string_view body, bool more, bool app_length, bool keep) {
  std::string& out = w.out;
  append_status_line(out, status);
  out += w.common_headers;
  if (headers) {
    bool length_written = false;
    for (const auto& [name, value] : *headers) {
      if (iequals(name, "transfer-encoding") || iequals(name, "connection")) continue;
      if (iequals(name, "content-length")) {
        // A 204 must not have one (RFC 9110 section 8.6). A 304's may stay: it must equal
        // the 200's, which only the app knows (static files copy it from the 200).
        if (length_written || status == 204) continue;  // or a repeat of the same value
        length_written = true;
      }
      out += name;
      out += ": ";
      out += value;
      out += "\r\n";
    }
  }
  // A HEAD's Content-Length must be the GET's (RFC 9110 section 9.3.2): an app that sent no
  // length and no body did not say it, so none is sent; one that sent the body did.
  bool length_known = !w.req.head || !body.empty();
  if (!app_length && !more && status != 204 && status != 304 && length_known) {
    out += "Content-Length: ";
    append_number(out, body.size());
    out += "\r\n";
  }
  if (state_ == State::kChunked) out += "Transfer-Encoding: chunked\r\n";
  append_connection(out, w.req, keep);
  out += "\r\n";
}

bool ResponseWriter::fits(std::string_view body) const {
  assert(started());
  // Never past the declared end: the excess would be read as the next response.
  return state_ != State::kLength || body.size() <= declared_length_ - body_bytes_;
}

void ResponseWriter::write(std::string& out, std::string_view body) {
  assert(started());
  if (state_ == State::kNoBody || body.empty()) return;
  if (state_ == State::kChunked) {
    char size[20];
    int n = snprintf(size, sizeof size, "%zx\r\n", body.size());
    out.append(size, static_cast<size_t>(n));
    out += body;
    out += "\r\n";
  } else {
    out += body;
  }
  body_bytes_ += body.size();
}

bool ResponseWriter::finish(std::string& out) {
  assert(started());
  if (state_ == State::kChunked) out += "0\r\n\r\n";
  bool whole = state_ != State::kLength || body_bytes_ >= declared_length_;
  state_ = State::kIdle;
  return whole;
}

void ResponseWriter::write_error(std::string& out, const std::string& common_headers, int status,
                                 std::string_view extra_header, bool head_method) {
  std::string_view line = status_line(status);
  append_status_line(out, status);
  out += common_headers;
  out += extra_header;
  out += "Content-Type: text/plain\r\nContent-Length: ";
  append_number(out, line.size() + 1);
  out += "\r\nConnection: close\r\n\r\n";
  if (!head_method) {  // the answer to a HEAD has no body, an error's neither
    out += line;
    out += "\n";
  }
}

}  // namespace rotor::http
