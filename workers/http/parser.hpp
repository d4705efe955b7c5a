// Judges the HTTP/1.1 requests of one connection, without sockets: bytes in, events out.
//
// Two parsers read every request. rotor's own scanner reads each head and trailer section
// byte by byte against RFC 9112's grammar (it is where llhttp 8.1 strict mode is lenient: bare
// LF, obs-fold, empty names, whitespace before the colon, control characters, request-target
// forms, protocol versions) and enforces the size limits at the exact byte that exceeds them. It
// runs ahead of llhttp, which is then fed only the bytes the scanner accepted and keeps the
// framing (Content-Length and chunked bodies, chunk syntax, keep-alive). At the end of each head
// the header semantics are judged (Host, Content-Length, Transfer-Encoding, Expect, body limit).
//
// Every check fires at a fixed position in the byte stream and the first one in stream order
// wins, so a request split anywhere, down to one byte per feed(), is judged like one arriving
// whole (the unit tests check this for every rejection class).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "workers/http/request.hpp"
#include "workers/http/target.hpp"

namespace rotor::http {

struct ParseLimits {
  uint64_t request_line = 4094;  // bytes of the request line without CRLF (414); 0 = none
  uint64_t fields = 100;         // header fields, and trailer fields, of a request (431)
  uint64_t field_size = 8190;    // bytes of one field line with its CRLF (431); 0 = none
  uint64_t head = 65536;  // bytes of a whole head, blank lines before it to its empty line (431)
  uint64_t body = 0;      // bytes of a request body (413); 0 = unlimited
  uint64_t chunk_extensions = 4096;  // bytes of chunk extensions on one chunk line (400)
};

class RequestParser {
 public:
  enum class Event : uint8_t {
    kNeedMore,  // every byte was used; the request is not complete yet (or not begun)
    kMessage,   // a request is complete (its body read and discarded): see request()
    kHead,      // streaming only: the head of a request with a body is complete; the body
                // follows through the BodySink, then kMessage
    kError,     // the input is invalid: answer error_status() and close
  };
  enum class Phase : uint8_t {
    kIdle,  // between requests, nothing of the next one read
    kHead,  // inside a request head (from its first byte, blank lines before it included)
    kBody,  // inside a body or trailer section
  };

  explicit RequestParser(const ParseLimits& limits);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Reads from `data` until a request is complete, the input turns out invalid or the bytes run
  // out; `*consumed` is the number of bytes used. After kMessage the rest of the input belongs
  // to the next request: call next(), then feed it. After kError every call returns kError.
  Event feed(const char* data, size_t len, size_t* consumed);
  // Starts the next request after kMessage.
  void next();
  // Streaming: report kHead for requests with a body and hand their bytes to `sink` as they
  // are parsed (nullptr: bodies are discarded).
  class BodySink {
   public:
    virtual ~BodySink() = default;
    virtual void on_body_data(std::string_view data) = 0;
  };
  void set_body_sink(BodySink* sink) { sink_ = sink; }

  const Request& request() const { return req_; }
  Phase phase() const;
  // After kMessage: the request switched protocols (Upgrade, CONNECT); nothing after it is HTTP.
  bool upgrade() const { return upgrade_; }
  // The head asked for 100-continue, the request has a body and none of it was read yet.
  bool expect_continue() const { return expect_continue_ && !body_seen_; }
  // The request being read is a HEAD, as far as its method is read: its answer, an error
  // included, has no body.
  bool head_method() const;
  int error_status() const { return error_status_; }
  std::string_view error_reason() const { return error_reason_; }

 private:
  enum class Scan : uint8_t {
    kStart,       // before a request line (blank lines are skipped)
    kStartLF,     // CR of a blank line read
    kMethod,      // method token
    kTarget,      // request-target
    kVersion,     // "HTTP/1.1"
    kLineLF,      // CR after the request line or a field line read
    kFieldStart,  // start of a field line, or the empty line ending the section
    kName,        // field name
    kValueStart,  // OWS before a field value
    kValue,       // field value (with inner and trailing whitespace)
    kEndLF,       // CR of the empty line read
    kDone,        // section complete
  };
  enum class Mode : uint8_t { kHead, kBody, kTrailers };

  const char* scan(const char* p, const char* end);
  const char* scan_fail(const char* at, int status, const char* reason);
  void arena_append(const char* s, size_t n);
  void end_field();
  void end_target_or_fail(const char* at);
  int judge_head();
  int judge_transfer_encoding(bool* chunked) const;
  Event fail(int status, const char* reason);
  int reject(int status, const char* reason);  // from a callback: makes llhttp stop
  Event llhttp_failed(llhttp_errno_t err);

  static int cb_headers_complete(llhttp_t* p);
  static int cb_body(llhttp_t* p, const char* at, size_t len);
  static int cb_chunk_header(llhttp_t* p);
  static int cb_chunk_extension(llhttp_t* p, const char* at, size_t len);
  static int cb_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  const ParseLimits& limits_;
  llhttp_t llhttp_;
  Request req_;

  Mode mode_ = Mode::kHead;
  Scan scan_ = Scan::kStart;
  bool started_ = false;  // a byte of the current request was read
  bool error_ = false;
  bool upgrade_ = false;
  bool expect_continue_ = false;
  bool body_seen_ = false;
  BodySink* sink_ = nullptr;
  bool message_done_ = false;  // llhttp reached the end of the message
  bool trailers_due_ = false;  // llhttp read the last chunk: a trailer section follows
  int error_status_ = 0;       // the verdict, once error_
  const char* error_reason_ = "";
  int callback_status_ = 0;  // a callback refused the request (llhttp stops)
  int scan_status_ = 0;      // the scanner refused a byte (the bytes before it go to llhttp)
  const char* scan_reason_ = "";

  // Scanner state, carried from one feed() to the next.
  uint64_t line_bytes_ = 0;   // of the request line, or of the current field line
  uint32_t field_count_ = 0;  // of the current section
  uint32_t value_end_ = 0;    // arena size after the last non-whitespace byte of the value
  uint8_t version_pos_ = 0;   // bytes of "HTTP/1.x" read
  uint8_t method_len_ = 0;    // bytes of the method read (saturates)
  char method_[8] = {};       // its first bytes: CONNECT and OPTIONS change the target rules
  uint8_t name_len_ = 0;      // bytes of the trailer field name read (saturates)
  char name_[24] = {};        // its first bytes, lower-cased: some names are not allowed
  uint64_t extension_bytes_ = 0;
  uint64_t head_bytes_ = 0;  // of the current head, CRLFs included
};

}  // namespace rotor::http
