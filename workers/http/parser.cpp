#include "workers/http/parser.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace rotor::http {

namespace {

// Whatever the limits say (0 = unlimited), a head never grows past this: field offsets are
// 32-bit, and a worker must not hold gigabytes for one client.
constexpr uint64_t kMaxHeadBytes = 16u << 20;

// How many more bytes a line may take before it exceeds `limit` (0 = only the hard cap).
inline size_t room(uint64_t used, uint64_t limit) {
  if (limit == 0 || limit > kMaxHeadBytes) limit = kMaxHeadBytes;
  return used >= limit ? 0 : static_cast<size_t>(limit - used);
}

// A field line counts as gunicorn counts it for the same limit: name, colon, value and CRLF.
// The scanner counts a line without its CRLF; the shortest line ("a:") has 2 bytes, so a limit
// under 4 refuses every field.
inline uint64_t field_line_limit(uint64_t field_size) {
  if (field_size == 0) return 0;
  return field_size > 2 ? field_size - 2 : 1;
}

// Field names that must not appear in a trailer section (RFC 9110 section 6.5.1): framing,
// routing, request modifiers, authentication, content processing and connection control.
bool forbidden_in_trailer(std::string_view lower_name) {
  static constexpr std::string_view kNames[] = {
      "age",
      "authorization",
      "cache-control",
      "connection",
      "content-encoding",
      "content-length",
      "content-range",
      "content-type",
      "cookie",
      "date",
      "expect",
      "expires",
      "host",
      "if-match",
      "if-modified-since",
      "if-none-match",
      "if-range",
      "if-unmodified-since",
      "keep-alive",
      "location",
      "max-forwards",
      "pragma",
      "proxy-authenticate",
      "proxy-authorization",
      "proxy-connection",
      "range",
      "retry-after",
      "set-cookie",
      "te",
      "trailer",
      "transfer-encoding",
      "upgrade",
      "vary",
      "warning",
      "www-authenticate",
  };
  for (std::string_view n : kNames)
    if (n == lower_name) return true;
  return false;
}

RequestParser* self(llhttp_t* p) {
  return static_cast<RequestParser*>(p->data);
}

}  // namespace

RequestParser::RequestParser(const ParseLimits& limits) : limits_(limits) {
  llhttp_init(&llhttp_, HTTP_REQUEST, &settings());
  llhttp_.data = this;
}

const llhttp_settings_t& RequestParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_headers_complete = cb_headers_complete;
    st.on_body = cb_body;
    st.on_chunk_header = cb_chunk_header;
    st.on_chunk_extension_name = cb_chunk_extension;
    st.on_chunk_extension_value = cb_chunk_extension;
    st.on_message_complete = cb_message_complete;
    return st;
  }();
  return s;
}

RequestParser::Phase RequestParser::phase() const {
  if (mode_ != Mode::kHead) return Phase::kBody;
  return started_ ? Phase::kHead : Phase::kIdle;
}

bool RequestParser::head_method() const {
  bool method_read = mode_ != Mode::kHead ||
                     (scan_ != Scan::kStart && scan_ != Scan::kStartLF && scan_ != Scan::kMethod);
  return method_read && method_len_ == 4 && std::string_view(method_, 4) == "HEAD";
}

void RequestParser::next() {
  req_.reset();
  mode_ = Mode::kHead;
  scan_ = Scan::kStart;
  started_ = false;
  upgrade_ = false;
  expect_continue_ = false;
  body_seen_ = false;
  message_done_ = false;
  trailers_due_ = false;
  field_count_ = 0;
  extension_bytes_ = 0;
  head_bytes_ = 0;
}

void RequestParser::arena_append(const char* s, size_t n) {
  // Doubling, but never past the head limit: a head at the limit holds that much, not twice.
  std::string& a = req_.arena;
  size_t need = a.size() + n;
  if (need > a.capacity()) {
    size_t bound = static_cast<size_t>(
        limits_.head && limits_.head < kMaxHeadBytes ? limits_.head : kMaxHeadBytes);
    a.reserve(std::max(need, std::min(a.capacity() * 2, bound)));
  }
  a.append(s, n);
}

RequestParser::Event RequestParser::fail(int status, const char* reason) {
  error_ = true;
  error_status_ = status;
  error_reason_ = reason;
  return Event::kError;
}

RequestParser::Event RequestParser::llhttp_failed(llhttp_errno_t err) {
  // A callback that refuses makes llhttp fail with HPE_USER or a callback-specific code.
  if (callback_status_) return fail(callback_status_, error_reason_);
  const char* reason = llhttp_get_error_reason(&llhttp_);
  return fail(400, reason ? reason : llhttp_errno_name(err));
}

int RequestParser::reject(int status, const char* reason) {
  callback_status_ = status;
  error_reason_ = reason;
  return HPE_USER;
}

const char* RequestParser::scan_fail(const char* at, int status, const char* reason) {
  scan_status_ = status;
  scan_reason_ = reason;
  return at;
}

RequestParser::Event RequestParser::feed(const char* data, size_t len, size_t* consumed) {
  *consumed = 0;
  if (error_) return Event::kError;
  const char* p = data;
  const char* end = data + len;
  while (p < end) {
    if (mode_ == Mode::kBody) {
      body_seen_ = true;
      llhttp_errno_t err = llhttp_execute(&llhttp_, p, static_cast<size_t>(end - p));
      if (err == HPE_OK) {
        p = end;
        break;
      }
      if (err != HPE_PAUSED) return llhttp_failed(err);
      const char* at = llhttp_get_error_pos(&llhttp_);
      llhttp_resume(&llhttp_);
      p = at;
      if (message_done_) {
        *consumed = static_cast<size_t>(p - data);
        return Event::kMessage;
      }
      if (!trailers_due_) return fail(400, "unexpected parser pause");
      trailers_due_ = false;
      mode_ = Mode::kTrailers;
      scan_ = Scan::kFieldStart;
      field_count_ = 0;
      continue;
    }

    // A head or trailer section: the scanner reads first, llhttp gets what it accepted. The
    // scanner sees no byte of a head past its limit, so the 431 comes at that byte however the
    // head is split (trailers are bounded by the field limits; none of them is kept).
    started_ = true;
    const char* scan_end = end;
    if (mode_ == Mode::kHead) {
      size_t left = room(head_bytes_, limits_.head);
      if (left == 0) return fail(431, "request head too large");
      scan_end = p + std::min(left, static_cast<size_t>(end - p));
    }
    const char* stop = scan(p, scan_end);
    if (mode_ == Mode::kHead) head_bytes_ += static_cast<size_t>(stop - p);
    bool scan_failed = scan_status_ != 0;
    bool section_done = scan_ == Scan::kDone;
    if (stop > p) {
      llhttp_errno_t err = llhttp_execute(&llhttp_, p, static_cast<size_t>(stop - p));
      if (err == HPE_PAUSED) {
        const char* at = llhttp_get_error_pos(&llhttp_);
        llhttp_resume(&llhttp_);
        // llhttp ends a message only where the scanner ended the section.
        if (!message_done_ || !section_done || at != stop) {
          return fail(400, "request framing is ambiguous");
        }
        *consumed = static_cast<size_t>(stop - data);
        return Event::kMessage;
      }
      if (err != HPE_OK) return llhttp_failed(err);  // earlier in the stream than the scanner's
    }
    p = stop;
    if (scan_failed) return fail(scan_status_, scan_reason_);
    if (section_done) {
      // A head whose request has a body (without one, llhttp would have ended the message).
      if (mode_ != Mode::kHead || !req_.has_body) return fail(400, "request framing is ambiguous");
      mode_ = Mode::kBody;
      if (sink_) {
        *consumed = static_cast<size_t>(p - data);
        return Event::kHead;
      }
    }
  }
  *consumed = static_cast<size_t>(p - data);
  return Event::kNeedMore;
}

const char* RequestParser::scan(const char* p, const char* end) {
  const ParseLimits& lim = limits_;
  const uint64_t field_limit = field_line_limit(lim.field_size);
  Request& r = req_;
  const bool head = mode_ == Mode::kHead;
  while (p < end) {
    switch (scan_) {
      case Scan::kStart: {
        char c = *p;
        if (c == '\r') {
          scan_ = Scan::kStartLF;
          ++p;
          break;
        }
        if (!in_class(c, kTchar)) return scan_fail(p, 400, "invalid request line");
        line_bytes_ = 0;
        method_len_ = 0;
        scan_ = Scan::kMethod;
        break;
      }
      case Scan::kStartLF:
        if (*p != '\n') return scan_fail(p, 400, "CR without LF");
        scan_ = Scan::kStart;
        ++p;
        break;
      case Scan::kMethod: {
        const char* s = p;
        const char* stop =
            p + std::min<size_t>(static_cast<size_t>(end - p), room(line_bytes_, lim.request_line));
        while (p < stop && in_class(*p, kTchar)) ++p;
        for (const char* q = s; q < p && method_len_ <= sizeof method_; ++q) {
          if (method_len_ < sizeof method_) method_[method_len_] = *q;
          ++method_len_;
        }
        line_bytes_ += static_cast<uint64_t>(p - s);
        if (p == end) return end;
        if (in_class(*p, kTchar)) return scan_fail(p, 414, "request line too long");
        if (*p != ' ') return scan_fail(p, 400, "invalid method");
        if (room(line_bytes_, lim.request_line) == 0) {
          return scan_fail(p, 414, "request line too long");
        }
        ++line_bytes_;
        ++p;
        scan_ = Scan::kTarget;
        break;
      }
      case Scan::kTarget: {
        const char* s = p;
        const char* stop =
            p + std::min<size_t>(static_cast<size_t>(end - p), room(line_bytes_, lim.request_line));
        while (p < stop && in_class(*p, kTargetChar)) ++p;
        if (p > s) {
          arena_append(s, static_cast<size_t>(p - s));
          line_bytes_ += static_cast<uint64_t>(p - s);
        }
        if (p == end) return end;
        char c = *p;
        if (in_class(c, kTargetChar)) return scan_fail(p, 414, "request line too long");
        if (c != ' ') {
          return scan_fail(
              p, 400,
              c == '#' ? "fragment in request-target" : "invalid character in request-target");
        }
        r.target_len = static_cast<uint32_t>(r.arena.size());
        std::string_view method =
            method_len_ <= sizeof method_ ? std::string_view(method_, method_len_) : "";
        if (const char* why = check_target(method, r.target(), &r.target_parts))
          return scan_fail(p, 400, why);
        if (room(line_bytes_, lim.request_line) == 0) {
          return scan_fail(p, 414, "request line too long");
        }
        ++line_bytes_;
        ++p;
        version_pos_ = 0;
        scan_ = Scan::kVersion;
        break;
      }
      case Scan::kVersion: {
        char c = *p;
        if (version_pos_ == 8) {
          if (c != '\r') return scan_fail(p, 400, "expected CRLF after the version");
          ++p;
          scan_ = Scan::kLineLF;
          break;
        }
        if (room(line_bytes_, lim.request_line) == 0) {
          return scan_fail(p, 414, "request line too long");
        }
        if (version_pos_ == 5) {  // major version: 1 only
          if (c != '1') return scan_fail(p, is_digit(c) ? 505 : 400, "unsupported HTTP version");
        } else if (version_pos_ == 7) {  // minor version: 0 or 1
          if (c != '0' && c != '1') {
            return scan_fail(p, is_digit(c) ? 505 : 400, "unsupported HTTP version");
          }
        } else if (c != "HTTP/1."[version_pos_]) {
          return scan_fail(p, 400, "invalid HTTP version");
        }
        ++version_pos_;
        ++line_bytes_;
        ++p;
        break;
      }
      case Scan::kLineLF:
        if (*p != '\n') return scan_fail(p, 400, "CR without LF");
        ++p;
        scan_ = Scan::kFieldStart;
        break;
      case Scan::kFieldStart: {
        char c = *p;
        if (c == '\r') {
          ++p;
          scan_ = Scan::kEndLF;
          break;
        }
        if (!in_class(c, kTchar)) {
          return scan_fail(p, 400,
                           c == ' ' || c == '\t' ? "obsolete line folding"
                           : c == ':'            ? "empty header name"
                           : c == '\n'           ? "LF without CR"
                                                 : "invalid header name");
        }
        if (lim.fields && field_count_ >= lim.fields) {
          return scan_fail(p, 431, "too many header fields");
        }
        if (r.arena.size() > kMaxHeadBytes) return scan_fail(p, 431, "request head too large");
        ++field_count_;
        line_bytes_ = 0;
        if (head) {
          uint32_t off = static_cast<uint32_t>(r.arena.size());
          r.fields.push_back({off, 0, off, 0});
        } else {
          name_len_ = 0;
        }
        scan_ = Scan::kName;
        break;
      }
      case Scan::kName: {
        const char* s = p;
        const char* stop =
            p + std::min<size_t>(static_cast<size_t>(end - p), room(line_bytes_, field_limit));
        while (p < stop && in_class(*p, kTchar)) ++p;
        size_t run = static_cast<size_t>(p - s);
        line_bytes_ += run;
        if (head) {
          arena_append(s, run);
          r.fields.back().name_len += static_cast<uint32_t>(run);
        } else {
          for (const char* q = s; q < p && name_len_ <= sizeof name_; ++q) {
            if (name_len_ < sizeof name_) name_[name_len_] = ascii_lower(*q);
            ++name_len_;
          }
        }
        if (p == end) return end;
        char c = *p;
        if (in_class(c, kTchar)) return scan_fail(p, 431, "header field too large");
        if (c != ':') {
          return scan_fail(
              p, 400,
              c == ' ' || c == '\t' ? "whitespace before the colon" : "invalid header name");
        }
        if (room(line_bytes_, field_limit) == 0) {
          return scan_fail(p, 431, "header field too large");
        }
        if (!head && name_len_ <= sizeof name_ &&
            forbidden_in_trailer(std::string_view(name_, name_len_))) {
          return scan_fail(p, 400, "field not allowed in a trailer");
        }
        ++line_bytes_;
        ++p;
        if (head) r.fields.back().value_off = static_cast<uint32_t>(r.arena.size());
        value_end_ = static_cast<uint32_t>(r.arena.size());
        scan_ = Scan::kValueStart;
        break;
      }
      case Scan::kValueStart: {
        char c = *p;
        if (c != ' ' && c != '\t') {
          scan_ = Scan::kValue;
          break;
        }
        if (room(line_bytes_, field_limit) == 0) {
          return scan_fail(p, 431, "header field too large");
        }
        ++line_bytes_;
        ++p;
        break;
      }
      case Scan::kValue: {
        const char* s = p;
        const char* stop =
            p + std::min<size_t>(static_cast<size_t>(end - p), room(line_bytes_, field_limit));
        const char* last = nullptr;  // one past the last non-whitespace byte of the run
        while (p < stop) {
          char c = *p;
          if (in_class(c, kFieldVchar)) {
            last = ++p;
          } else if (c == ' ' || c == '\t') {
            ++p;
          } else {
            break;
          }
        }
        size_t run = static_cast<size_t>(p - s);
        line_bytes_ += run;
        if (head && run) {
          size_t base = r.arena.size();
          arena_append(s, run);
          if (last) value_end_ = static_cast<uint32_t>(base + static_cast<size_t>(last - s));
        }
        if (p == end) return end;
        char c = *p;
        if (in_class(c, kFieldVchar) || c == ' ' || c == '\t') {
          return scan_fail(p, 431, "header field too large");
        }
        if (c != '\r') {
          return scan_fail(p, 400,
                           c == '\n' ? "LF without CR" : "invalid character in header value");
        }
        if (head) {
          Request::Field& f = r.fields.back();
          f.value_len = value_end_ - f.value_off;
        }
        ++p;
        scan_ = Scan::kLineLF;
        break;
      }
      case Scan::kEndLF:
        if (*p != '\n') return scan_fail(p, 400, "CR without LF");
        scan_ = Scan::kDone;
        return p + 1;
      case Scan::kDone:
        return p;
    }
  }
  return p;
}

int RequestParser::judge_transfer_encoding(bool* chunked) const {
  const Request& r = req_;
  int chunked_count = 0;
  bool last_chunked = false;
  bool other = false;
  for (const auto& f : r.fields) {
    if (!iequals(r.name(f), "transfer-encoding")) continue;
    std::string_view v = r.value(f);
    for (std::string_view item; next_list_item(&v, &item);) {
      if (iequals(item, "chunked")) {
        ++chunked_count;
        last_chunked = true;
      } else {
        if (!is_token(trim_ows(item.substr(0, item.find(';'))))) return 400;
        other = true;
        last_chunked = false;
      }
    }
  }
  if (!last_chunked || chunked_count > 1) return 400;  // RFC 9112 section 6.3
  if (other) return 501;                               // a coding we do not decode
  *chunked = true;
  return 0;
}

int RequestParser::judge_head() {
  Request& r = req_;
  const llhttp_t& h = llhttp_;
  r.method = h.method;
  r.http_major = h.http_major;
  r.http_minor = h.http_minor;
  r.keep_alive = llhttp_should_keep_alive(&h) != 0;
  r.head = h.method == HTTP_HEAD;
  r.chunked = (h.flags & F_CHUNKED) != 0;
  r.content_length = (h.flags & F_CONTENT_LENGTH) ? h.content_length : 0;
  r.has_body = r.chunked || r.content_length > 0;

  int hosts = 0;
  int lengths = 0;
  int content_types = 0;
  bool te = false;
  bool expect_continue = false;
  bool expect_other = false;
  std::string_view host;
  for (const auto& f : r.fields) {
    std::string_view name = r.name(f);
    switch (name.size()) {
      case 4:
        if (iequals(name, "host")) {
          ++hosts;
          host = r.value(f);
        }
        break;
      case 6:
        if (iequals(name, "expect")) {
          if (iequals(r.value(f), "100-continue")) {
            expect_continue = true;
          } else {
            expect_other = true;
          }
        }
        break;
      case 12:
        if (iequals(name, "content-type")) ++content_types;
        break;
      case 14:
        if (iequals(name, "content-length")) {
          ++lengths;
          if (!all_digits(r.value(f))) {
            error_reason_ = "invalid Content-Length";
            return 400;
          }
        }
        break;
      case 17:
        if (iequals(name, "transfer-encoding")) te = true;
        break;
      default:
        break;
    }
  }
  if (r.http_minor == 1 ? hosts != 1 : hosts > 1) {
    error_reason_ = hosts ? "duplicate Host" : "missing Host";
    return 400;
  }
  if (hosts && !valid_host(host)) {
    error_reason_ = "invalid Host";
    return 400;
  }
  if (lengths > 1) {
    error_reason_ = "duplicate Content-Length";
    return 400;
  }
  // A singleton field (RFC 9110 section 5.3): two values cannot be combined, so the app and a
  // proxy in front could each take a different one.
  if (content_types > 1) {
    error_reason_ = "duplicate Content-Type";
    return 400;
  }
  if (te) {
    if (r.http_minor == 0) {
      error_reason_ = "Transfer-Encoding in an HTTP/1.0 request";
      return 400;
    }
    if (lengths) {
      error_reason_ = "Content-Length with Transfer-Encoding";
      return 400;
    }
    bool chunked = false;
    int status = judge_transfer_encoding(&chunked);
    if (status) {
      error_reason_ = status == 501 ? "unsupported transfer coding" : "invalid Transfer-Encoding";
      return status;
    }
    if (chunked != r.chunked) {
      error_reason_ = "request framing is ambiguous";
      return 400;
    }
  } else if (r.chunked) {
    error_reason_ = "request framing is ambiguous";
    return 400;
  }
  if (expect_other) {  // decided after the framing checks: those are about the connection
    error_reason_ = "unsupported expectation";
    return 417;
  }
  // A 100-continue expectation in an HTTP/1.0 request is ignored (RFC 9110 section 10.1.1).
  expect_continue_ = expect_continue && r.http_minor == 1 && r.has_body;
  if (limits_.body && r.content_length > limits_.body) {
    error_reason_ = "request body too large";
    return 413;
  }
  return 0;
}

int RequestParser::cb_headers_complete(llhttp_t* p) {
  RequestParser* rp = self(p);
  // llhttp ends a head only where the scanner ended it.
  if (rp->mode_ != Mode::kHead || rp->scan_ != Scan::kDone) {
    return rp->reject(400, "request framing is ambiguous");
  }
  int status = rp->judge_head();
  return status ? rp->reject(status, rp->error_reason_) : 0;
}

int RequestParser::cb_body(llhttp_t* p, const char* at, size_t len) {
  RequestParser* rp = self(p);
  if (rp->mode_ != Mode::kBody) return rp->reject(400, "request framing is ambiguous");
  rp->req_.body_bytes += len;
  uint64_t limit = rp->limits_.body;
  if (limit && rp->req_.body_bytes > limit) return rp->reject(413, "request body too large");
  if (rp->sink_) rp->sink_->on_body_data(std::string_view(at, len));
  return 0;
}

int RequestParser::cb_chunk_extension(llhttp_t* p, const char*, size_t len) {
  RequestParser* rp = self(p);
  rp->extension_bytes_ += len;
  if (rp->limits_.chunk_extensions && rp->extension_bytes_ > rp->limits_.chunk_extensions) {
    return rp->reject(400, "chunk extensions too large");
  }
  return 0;
}

int RequestParser::cb_chunk_header(llhttp_t* p) {
  RequestParser* rp = self(p);
  if (rp->mode_ != Mode::kBody) return rp->reject(400, "request framing is ambiguous");
  rp->extension_bytes_ = 0;
  if (p->content_length == 0) {
    // The last chunk: the scanner reads the trailer section before llhttp does.
    rp->trailers_due_ = true;
    return HPE_PAUSED;
  }
  return 0;
}

int RequestParser::cb_message_complete(llhttp_t* p) {
  RequestParser* rp = self(p);
  if (rp->mode_ != Mode::kBody && rp->scan_ != Scan::kDone) {
    return rp->reject(400, "request framing is ambiguous");
  }
  rp->message_done_ = true;
  rp->upgrade_ = p->upgrade != 0;
  return HPE_PAUSED;
}

}  // namespace rotor::http
