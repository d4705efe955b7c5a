// One client connection: reads with libuv, judges the bytes with a RequestParser, hands
// complete requests to the handler one at a time (pipelined requests wait their turn) and writes
// the answers in order, batching everything one read produced into one write. It owns the
// socket: reading, writing, deadlines, the lingering close and the handoff to another worker.
// The bytes of an answer come from its ResponseWriter; after an upgrade a ws::Session speaks.
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
#include "workers/http/proxy_protocol.hpp"
#include "workers/http/request.hpp"
#include "workers/http/response_writer.hpp"
#include "workers/websocket/session.hpp"

namespace rotor::http {

class Server;

// An end of the connection: host and port, or a unix socket path with port -1.
struct Endpoint {
  std::string host;
  int port = -1;
};

class Connection : private RequestParser::BodySink {
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
  void pause_body() {
    if (body_ == Body::kStreaming) body_ = Body::kPaused;
  }
  void resume_body();
  // Streaming: "100 Continue" when the client asked for it, no body byte arrived yet and no
  // response has started (an app reading its body says it wants it).
  void continue_if_expected();
  // WebSocket (RFC 6455). The request the handler holds is an opening handshake (only for a
  // handler that accepts_websockets()); it answers with accept_websocket(), or with any HTTP
  // answer to refuse it.
  bool websocket_requested() const { return upgrade_ == Upgrade::kRequested; }
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
  void pause_websocket() {
    if (ws_) ws_->pause();
  }
  void resume_websocket();
  // For the handler: which of its requests this connection carries.
  uint64_t rid = 0;
  // Whether libuv holds work for this connection that only its loop completes (a queued
  // write, a close): a caller outside the loop's callbacks must let the loop run.
  bool loop_work_pending() const { return write_pending_ || life_ != Life::kOpen || flush_queued_; }
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
  friend class ws::Session;  // the protocol the connection hands its socket to on an upgrade

  // What the read deadline is waiting for.
  enum class Wait : uint8_t { kNone, kIdle, kHead, kBody };
  // kLingering: the last answer is out, input is read and discarded until the client's EOF;
  // kClosing: uv_close is under way, on_close deletes the connection.
  enum class Life : uint8_t { kOpen, kLingering, kClosing };
  // A body streamed to the handler while it holds the request (and whether it paused it).
  enum class Body : uint8_t { kNone, kStreaming, kPaused };
  // PROXY protocol: a header is expected first (an allowed peer), or watched for to refuse it.
  enum class Proxy : uint8_t { kNone, kExpected, kWatching };
  // kRequested: the handler holds an opening handshake; kSwitched: ws_ has the socket.
  enum class Upgrade : uint8_t { kNone, kRequested, kSwitched };
  // The worker drains; kAnswered: one answer went out without Connection: close (the
  // connection is to be handed off), the next one closes.
  enum class Drain : uint8_t { kNone, kDraining, kAnswered };

  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_close(uv_handle_t* h);

  bool closing() const { return life_ == Life::kClosing; }
  bool draining() const { return drain_ != Drain::kNone; }
  bool open() const { return life_ == Life::kOpen; }
  // The handler owns the current request (its answer is not complete).
  bool handling() const { return writer_.holding(); }
  bool streaming_body() const { return body_ != Body::kNone; }
  Wire wire();
  bool output_room() const;
  size_t process(const char* data, size_t len);
  bool can_process() const;
  void check_invariants() const;
  void dispatch();
  void resume_input();
  // Whether input is still of use: the connection is not closing after this answer, or the
  // handler still reads the body of its request (a full-duplex answer).
  bool input_wanted() const { return !close_after_ || (handling() && streaming_body()); }
  // Whether the connection may stay open after the current answer (no side effect), and the
  // decision once the answer's head is written.
  bool may_keep_alive() const;
  void settle_keep_alive(bool keep);
  // The handler's request is over: answered (the last byte of its answer is queued), failed
  // by the handler, or aborted by the engine (its body is invalid or stalled).
  void answered(int status, uint64_t body_bytes);
  void abort_request(int status);
  void end_request(int status, bool complete);  // status 0: no answer went out
  void on_eof(bool reset);
  void respond_error(int status, std::string_view extra_header = {});
  void flush();
  // Answers given while parsing are flushed by the parsing loop's caller; others now.
  void flush_unless_parsing() {
    if (!in_process_) flush();
  }
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
  void on_body_data(std::string_view data) override;
  // WebSocket: a valid opening handshake, or refused here; and the session's end.
  bool websocket_handshake(const Request& req);
  void switch_to_websocket();
  void session_ended(uint16_t code, std::string_view reason);
  // How much of our output reached the client, when the socket tells (TCP).
  bool bytes_delivered(uint64_t* delivered);
  // PROXY protocol (connection_proxy.cpp): at the start, whether the peer must send a header
  // or must not; then the header taken off the front of the input. False when `in` is used
  // up (more header to come, or the connection refused); else `in` is what follows it, which
  // may point into `joined`.
  void start_proxy();
  bool take_proxy_header(std::string_view* in, std::string* joined);
  void refuse_proxy(std::string_view reason);
  // A draining worker may pass the socket on: not once the endpoints are a header's.
  bool can_hand_off() const;

  Server& server_;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h_;
  RequestParser parser_;
  ResponseWriter writer_;

  std::string out_;      // answers not yet handed to the kernel
  std::string writing_;  // the buffer of the uv_write in flight
  uv_write_t write_req_;
  uv_shutdown_t shutdown_req_;
  std::string pending_in_;  // bytes read but not parsed yet (a pipelined request must wait)
  size_t pending_off_ = 0;  // how much of pending_in_ is parsed

  Wait wait_ = Wait::kIdle;
  Life life_ = Life::kOpen;
  Body body_ = Body::kNone;
  Upgrade upgrade_ = Upgrade::kNone;
  Drain drain_ = Drain::kNone;
  uint64_t deadline_ms_ = 0;        // of the read side; 0 = none
  uint64_t write_progress_ms_ = 0;  // last time the write in flight made progress
  size_t write_queue_seen_ = 0;     // libuv's write queue size at that time
  uint64_t started_hr_ = 0;         // request start (uv_hrtime)
  int64_t started_wall_ = 0;
  uint64_t bytes_written_ = 0;  // everything handed to libuv to write
  bool reading_ = false;
  bool in_process_ = false;   // parsing: answers given now are flushed by the caller
  bool send_paused_ = false;  // a send said kPaused: wake the handler once there is room
  bool write_pending_ = false;
  bool flush_queued_ = false;   // waits in Server::flush_later
  bool close_after_ = false;    // close once the current answer is written
  bool continue_sent_ = false;  // 100 Continue written for the current request
  bool eof_ = false;            // the client closed its side
  Endpoint peer_, local_;
  bool endpoints_known_ = false;
  Proxy proxy_ = Proxy::kNone;
  bool proxied_ = false;    // a PROXY header was read (peer_ and local_ are its, if it named any)
  std::string proxy_held_;  // kWatching: the first bytes, until they show what they start
  std::unique_ptr<ProxyHeaderParser> proxy_parser_;  // kExpected
  std::unique_ptr<ws::Session> ws_;
};

}  // namespace rotor::http
