// The answer to one request: its head, then its body framed by a Content-Length, by chunks, by
// the close of the connection (HTTP/1.0), or not at all (HEAD, 204, 304). One state says which
// part of the answer is next (h2o's ostream state, uvicorn's RequestResponseCycle); the
// connection owns the socket and decides whether it stays open, the writer produces the bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "workers/http/request.hpp"

namespace rotor::http {

enum class SendResult : uint8_t {
  kOk,       // queued (and the answer finished when it was the last part)
  kPaused,   // queued, but the client reads slowly: wait for Handler::on_drained
  kGone,     // the connection is closed; nothing was written
  kInvalid,  // the status or a header is not valid HTTP; nothing was written
};

using HeaderList = std::vector<std::pair<std::string_view, std::string_view>>;

// Where an answer goes: the connection's unsent output, the request it answers and the header
// lines every response starts with.
struct Wire {
  std::string& out;
  const Request& req;
  const std::string& common_headers;
};

class ResponseWriter {
 public:
  enum class State : uint8_t {
    kIdle,        // no request is held (or its answer is complete)
    kHead,        // the handler holds a request; nothing of the answer is written yet
    kNoBody,      // the head is written; the answer has no body (HEAD, 204, 304)
    kLength,      // the head is written; the body is framed by its Content-Length
    kChunked,     // the head is written; the body goes in chunks
    kUntilClose,  // the head is written; the close ends the body (HTTP/1.0, no length)
  };

  State state() const { return state_; }
  // A request is held: its answer is not complete.
  bool holding() const { return state_ != State::kIdle; }
  // The head of a streamed answer is written.
  bool started() const { return state_ > State::kHead; }

  // kIdle -> kHead: a request reaches the handler.
  void begin();
  // kHead -> kIdle: the whole answer at once (Content-Length), with `keep` deciding the
  // Connection field. Returns the body bytes written.
  uint64_t respond(Wire w, int status, std::string_view content_type, std::string_view body,
                   bool keep);
  // kHead -> a body state: the head of a streamed answer whose first part is `body`. `*keep`
  // comes in as what the connection allows and goes out false when the framing needs the
  // close. kInvalid (with `error`) and nothing written for a Content-Length that is not one
  // number or that `body` already exceeds. The headers' bytes are checked by the caller.
  SendResult start(Wire w, int status, const HeaderList* headers, std::string_view body, bool more,
                   bool* keep, std::string* error);
  // In a body state: whether `body` fits what is left of the declared length.
  bool fits(std::string_view body) const;
  // In a body state: one part of the body, framed.
  void write(std::string& out, std::string_view body);
  // A body state -> kIdle: the last chunk. False when the body ended short of its declared
  // length (the connection must close: the client would read the next answer as the rest).
  bool finish(std::string& out);
  // Any state -> kIdle: the request is over, what was written stands.
  void end() { state_ = State::kIdle; }
  int status() const { return status_; }
  uint64_t body_bytes() const { return body_bytes_; }

  // The engine's own answer (400, 408, 413, ...): a short text body and Connection: close,
  // whatever the state (no head of another answer may be written yet).
  static void write_error(std::string& out, const std::string& common_headers, int status,
                          std::string_view extra_header, bool head_method);

 private:
  void write_head(Wire w, int status, const HeaderList* headers, std::string_view body, bool more,
                  bool app_length, bool keep);

  State state_ = State::kIdle;
  int status_ = 0;
  uint64_t body_bytes_ = 0;
  uint64_t declared_length_ = 0;  // kLength: what the body must add up to
};

}  // namespace rotor::http
