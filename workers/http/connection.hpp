// One client connection: reads with libuv, judges the bytes with a RequestParser, hands
// complete requests to the handler one at a time (pipelined requests wait their turn) and writes
// the answers in order, batching everything one read produced into one write.
//
// Memory per connection is bounded: input is read only while the handler has no request and
// the unsent output is below a high-water mark; bytes read but not yet parsed (pipelining) are
// at most one read buffer.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "workers/http/parser.hpp"
#include "workers/http/request.hpp"
#include "workers/websocket/frame.hpp"

namespace rotor::http {

class Server;

// An end of the connection: host and port, or a unix socket path with port -1.
struct Endpoint {
  std::string host;
  int port = -1;
};

enum class SendResult : uint8_t {
  kOk,       // queued (and the answer finished when it was the last part)
  kPaused,   // queued, but the client reads slowly: wait for Handler::on_drained
  kGone,     // the connection is closed; nothing was written
  kInvalid,  // the status or a header is not valid HTTP; nothing was written
};

using HeaderList = std::vector<std::pair<std::string_view, std::string_view>>;

class Connection : private RequestParser::BodySink, private ws::Sink {
 public:
  explicit Connection(Server& server);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Takes ownership of an accepted, non-blocking socket. False if libuv refused it (the fd is
  // closed then and the connection deletes itself).
  bool start(int fd, bool is_unix);

  // Answer the current request. `body` is omitted on the wire for HEAD. The request passed to
  // the handler stays valid until this call.
  void respond(int status, std::string_view content_type, std::string_view body);

  // Answer the current request in parts (streaming). The first call writes the head: with a
  // Content-Length when the app gave one or when this part is the whole body, else chunked
  // (close-delimited for HTTP/1.0). The head's bytes are checked first: an app's CR, LF or
  // non-token name never reaches the wire. `more` false finishes the answer.
  SendResult send_response(int status, const HeaderList* headers, std::string_view body, bool more,
                           std::string* error);
  // The handler failed: a plain error answer when nothing was sent yet (and the client has not
  // closed its side), else what was sent goes out and the connection closes (the client sees the
  // answer is incomplete). Ends the request.
  void fail_response(int status);
  // Flow control of a streamed request body: stop reading it until resume_body().
  void pause_body() { body_paused_ = true; }
  void resume_body();
  // Streaming: "100 Continue" when the client asked for it, no body byte arrived yet and no
  // response has started (an app reading its body says it wants it).
  void continue_if_expected();
  // WebSocket (RFC 6455). The request the handler holds is an opening handshake (only for a
  // handler that accepts_websockets()); it answers with accept_websocket(), or with any HTTP
  // answer to refuse it.
  bool websocket_requested() const { return ws_ == Ws::kHandshake; }
  // 101 Switching Protocols with `subprotocol` (may be empty) and the handler's headers; from
  // then on messages reach Handler::on_ws_message. kInvalid (with `error`) for a bad header.
  SendResult accept_websocket(std::string_view subprotocol, const HeaderList* headers,
                              std::string* error);
  // A text or binary message. kPaused when the client reads slowly (Handler::on_drained).
  SendResult send_websocket(bool text, std::string_view data);
  // The closing handshake: a close frame now; the session ends (Handler::on_ws_closed) when
  // the client answers with its own, or after the linger time.
  void close_websocket(uint16_t code, std::string_view reason);
  // Flow control of incoming messages: stop reading until resume_websocket().
  void pause_websocket() { ws_paused_ = true; }
  void resume_websocket();
  // For the handler: which of its requests this connection carries.
  uint64_t handler_tag = 0;
  // Whether libuv holds work for this connection that only its loop completes (a queued
  // write, a close): a caller outside the loop's callbacks must let the loop run.
  bool loop_work_pending() const {
    return write_pending_ || closing_ || lingering_ || flush_queued_;
  }
  // Server::flush_later's end of the loop pass: write what was queued.
  void flush_queued() {
    flush_queued_ = false;
    flush();
  }
  const Endpoint& peer_endpoint();
  const Endpoint& local_endpoint();

  // Server-driven transitions.
  void begin_drain();
  // At a request boundary with nothing buffered, passes the socket to another worker and
  // closes our side. False (and nothing changed) when it cannot.
  bool try_handoff();
  void close_now();
  void check_deadline(uint64_t now_ms);

  Connection* prev = nullptr;
  Connection* next = nullptr;

 private:
  // What the read deadline is waiting for.
  enum class Wait : uint8_t { kNone, kIdle, kHead, kBody };

  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_close(uv_handle_t* h);

  size_t process(const char* data, size_t len);
  bool can_process() const;
  void dispatch();
  void resume_input();
  // Whether input is still of use: the connection is not closing after this answer, or the
  // handler still reads the body of its request (a full-duplex answer).
  bool input_wanted() const { return !close_after_ || (handling_ && streaming_body_); }
  // The engine ends the request the handler holds (its body is invalid or stalled).
  void abort_request(int status);
  // The handler's request is over (answered when `answered`).
  void release_request(bool answered);
  void on_eof(bool reset);
  void respond_error(int status, std::string_view extra_header = {});
  void flush();
  // What the handler sends in one pass of the loop goes out in one write, at the pass's end.
  void flush_soon();
  // After output went out: a paused sender may go on (Handler::on_drained).
  void wake_sender_if_room();
  void finish_output();
  void start_linger();
  void update_reading();
  void rearm();
  void expire();
  uint64_t now_ms() const;
  void log_access(int status, uint64_t body_bytes);
  bool keep_alive_after_answer();
  void on_body_data(std::string_view data) override;
  void answer_done(int status, uint64_t body_bytes);
  // WebSocket: the decoder's reports, and the end of the session for the handler.
  void on_message(bool text, std::string_view data) override;
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view payload) override;
  void on_close(uint16_t code, std::string_view reason) override;
  void on_error(uint16_t close_code, std::string_view why) override;
  bool websocket_handshake(const Request& req);
  void feed_websocket(const char* data, size_t len);
  void send_close_frame(uint16_t code, std::string_view reason);
  void ping_websocket(uint64_t now);
  // Whether the client took some of our output since the last call without yet reaching the
  // byte `end` of it (the end of the ping, or of the close frame, it must answer).
  bool still_taking(uint64_t end);
  void end_websocket(uint16_t code, std::string_view reason);

  Server& server_;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h_;
  RequestParser parser_;

  std::string out_;      // answers not yet handed to the kernel
  std::string writing_;  // the buffer of the uv_write in flight
  uv_write_t write_req_;
  uv_shutdown_t shutdown_req_;
  std::string pending_in_;  // bytes read but not parsed yet (a pipelined request must wait)
  size_t pending_off_ = 0;  // how much of pending_in_ is parsed

  Wait wait_ = Wait::kIdle;
  uint64_t deadline_ms_ = 0;        // of the read side; 0 = none
  uint64_t write_progress_ms_ = 0;  // last time the write in flight made progress
  size_t write_queue_seen_ = 0;     // libuv's write queue size at that time
  uint64_t started_hr_ = 0;         // request start (uv_hrtime), kept only for the access log
  int64_t started_wall_ = 0;
  bool reading_ = false;
  bool in_process_ = false;   // parsing: answers given now are flushed by the caller
  bool handling_ = false;     // the handler owns the current request
  bool send_paused_ = false;  // send_response said kPaused: wake the handler once there is room
  bool write_pending_ = false;
  bool close_after_ = false;    // close once the current answer is written
  bool continue_sent_ = false;  // 100 Continue written for the current request
  bool eof_ = false;            // the client closed its side
  bool lingering_ = false;
  bool closing_ = false;
  bool draining_ = false;
  bool answered_in_drain_ = false;  // one answer without Connection: close, then hand off
  // A streamed request body under way (the handler already has the request) and its pause.
  bool streaming_body_ = false;
  bool body_paused_ = false;
  // A streamed answer (send_response) under way.
  bool response_started_ = false;
  bool chunked_ = false;
  bool no_body_ = false;  // HEAD, 1xx, 204, 304
  int response_status_ = 0;
  uint64_t response_bytes_ = 0;
  bool has_length_ = false;       // the body is framed by the handler's Content-Length
  uint64_t declared_length_ = 0;  // which the body must match
  Endpoint peer_, local_;
  bool endpoints_known_ = false;
  // kHandshake: the handler holds an opening handshake; kOpen: frames flow; kClosing: our
  // close frame is out, the client's is awaited; kDone: the session is over (closing).
  enum class Ws : uint8_t { kNone, kHandshake, kOpen, kClosing, kDone };
  Ws ws_ = Ws::kNone;
  bool ws_paused_ = false;
  bool flush_queued_ = false;     // waits in Server::flush_later
  uint64_t ws_next_ping_ms_ = 0;  // when to ping next; 0 = never
  uint64_t ws_pong_due_ms_ = 0;   // a ping is unanswered: the pong must come by then
  uint64_t ws_taken_seen_ = 0;    // still_taking()'s last reading
  uint64_t ws_ping_end_ = 0;      // where the awaited ping ends in our output
  uint64_t ws_close_end_ = 0;     // and our close frame
  uint64_t bytes_written_ = 0;    // everything handed to libuv to write
  std::unique_ptr<ws::Decoder> ws_decoder_;
};

}  // namespace rotor::http
