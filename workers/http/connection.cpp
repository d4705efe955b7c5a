#include "workers/http/connection.hpp"

#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <ctime>

#include "workers/http/handoff.hpp"
#include "workers/http/server.hpp"
#include "workers/websocket/handshake.hpp"

namespace rotor::http {

namespace {

// Reads are parsed before the next one starts, so one buffer serves every connection.
char g_read_buffer[64 * 1024];

// With this much output not taken by the kernel, the connection stops parsing and reading (a
// client that pipelines requests but does not read the answers).
constexpr size_t kOutputHighWater = 256 * 1024;
// Output buffers larger than this are released once empty, so an idle connection stays small.
constexpr size_t kKeptBuffer = 64 * 1024;

void release_if_large(std::string& s) {
  if (s.capacity() > kKeptBuffer) std::string().swap(s);
}

}  // namespace

Connection::Connection(Server& server) : server_(server), parser_(server.limits().parse) {
  if (server.handler().streams_body()) parser_.set_body_sink(this);
}

bool Connection::start(int fd, bool is_unix) {
  uv_loop_t* loop = server_.loop();
  if (is_unix) {
    uv_pipe_init(loop, &h_.pipe, 0);
  } else {
    uv_tcp_init(loop, &h_.tcp);
  }
  h_.handle.data = this;
  int rc = is_unix ? uv_pipe_open(&h_.pipe, fd) : uv_tcp_open(&h_.tcp, fd);
  if (rc != 0) {
    ::close(fd);
    close_now();
    return false;
  }
  if (!is_unix) uv_tcp_nodelay(&h_.tcp, 1);
  if (server_.limits().proxy_protocol) start_proxy();
  const Limits& lim = server_.limits();
  wait_ = Wait::kIdle;
  uint64_t first = lim.keep_alive_ms > 0 ? lim.keep_alive_ms : lim.head_timeout_ms;
  deadline_ms_ = first ? now_ms() + first : 0;
  if (server_.draining()) begin_drain();
  update_reading();
  return true;
}

uint64_t Connection::now_ms() const {
  return uv_now(server_.loop());
}

Wire Connection::wire() {
  return {out_, parser_.request(), server_.common_headers()};
}

bool Connection::output_room() const {
  return out_.size() + writing_.size() < kOutputHighWater;
}

// What the reading and parsing decisions rely on.
void Connection::check_invariants() const {
  assert(pending_off_ <= pending_in_.size());
  assert(!write_pending_ || !writing_.empty());
  assert(!reading_ || !closing());
  // A request is dispatched only while the connection is open; lingering comes after its answer.
  assert(life_ != Life::kLingering || !handling());
  assert(upgrade_ != Upgrade::kRequested || handling());
  assert((upgrade_ == Upgrade::kSwitched) == (ws_ != nullptr));
}

bool Connection::can_process() const {
  check_invariants();
  // A streamed body goes on being parsed while the handler holds its request, unless paused.
  bool busy = handling() && body_ != Body::kStreaming;
  return !busy && input_wanted() && open() && output_room();
}

void Connection::on_body_data(std::string_view data) {
  if (streaming_body() && !closing()) server_.handler().on_body(*this, data);
}

void Connection::resume_body() {
  if (body_ != Body::kPaused) return;
  body_ = Body::kStreaming;
  if (!in_process_) resume_input();
}

void Connection::continue_if_expected() {
  // A 1xx after the final response's head would break its framing (RFC 9110 section 15.2).
  if (!streaming_body() || continue_sent_ || writer_.started() || !parser_.expect_continue()) {
    return;
  }
  continue_sent_ = true;
  out_ += "HTTP/1.1 100 Continue\r\n\r\n";
  flush_unless_parsing();
}

void Connection::update_reading() {
  check_invariants();
  bool want;
  if (ws_ && ws_->live()) {
    // Frames: read unless the session has too many messages unread, or the client does not
    // read what we send (its pings' pongs included).
    want = !closing() && !eof_ && ws_->wants_input() && output_room();
  } else {
    // While the handler holds a request we still read (into pending_in_, one buffer at most)
    // so that a client that goes away is noticed.
    bool waiting_on_handler = handling() && input_wanted() && output_room();
    want = !closing() && !eof_ &&
           (life_ == Life::kLingering ||
            (pending_in_.empty() && (can_process() || waiting_on_handler)));
  }
  if (want == reading_) return;
  if (want) {
    reading_ = uv_read_start(&h_.stream, on_alloc, on_read) == 0;
  } else {
    uv_read_stop(&h_.stream);
    reading_ = false;
  }
}

void Connection::on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = g_read_buffer;
  buf->len = sizeof g_read_buffer;
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<Connection*>(s->data);
  if (nread == 0) return;
  c->server_.note_input();
  if (nread < 0) {
    c->on_eof(nread != UV_EOF);
    return;
  }
  if (!c->open()) return;  // after the last answer, input is discarded
  std::string_view in(buf->base, static_cast<size_t>(nread));
  if (c->ws_) {
    if (!c->ws_->live()) return;  // after the closing handshake, input is discarded
    c->ws_->feed(in);
    c->update_reading();
    c->flush();
    return;
  }
  std::string joined;
  if (c->proxy_ != Proxy::kNone && !c->take_proxy_header(&in, &joined)) {
    if (c->closing()) return;
    c->rearm();
    c->update_reading();
    return;
  }
  size_t used = c->process(in.data(), in.size());
  // What could not be parsed yet waits in our own buffer: the read buffer is shared.
  if (used < in.size() && c->input_wanted() && c->open()) {
    c->pending_in_.assign(in.substr(used));
    c->pending_off_ = 0;
  }
  c->rearm();
  c->update_reading();
  c->flush();
}

// Parses `data` and dispatches every complete request. Stops early, returning how much was
// used, when the handler keeps a request, nothing more will be answered, or the output is
// above the high-water mark.
size_t Connection::process(const char* data, size_t len) {
  size_t pos = 0;
  in_process_ = true;
  while (pos < len && can_process()) {
    if (parser_.phase() == RequestParser::Phase::kIdle) {
      started_hr_ = uv_hrtime();  // the request-duration histogram's start, and the access log's
      if (server_.access_log()) started_wall_ = time(nullptr);
    }
    size_t used = 0;
    RequestParser::Event ev = parser_.feed(data + pos, len - pos, &used);
    pos += used;
    if (ev == RequestParser::Event::kNeedMore) {
      // The client waits for a go-ahead before it sends the body (RFC 9110 section 10.1.1);
      // a streaming handler gives it when the app first reads (continue_if_expected).
      if (parser_.expect_continue() && !continue_sent_ && !streaming_body()) {
        continue_sent_ = true;
        out_ += "HTTP/1.1 100 Continue\r\n\r\n";
      }
      break;
    }
    if (ev == RequestParser::Event::kError) {
      if (handling()) {
        abort_request(parser_.error_status());  // a bad body under a request the handler holds
      } else {
        respond_error(parser_.error_status());
      }
      pos = len;
      break;
    }
    if (ev == RequestParser::Event::kHead) {
      body_ = Body::kStreaming;
      dispatch();
      continue;
    }
    if (streaming_body()) {  // kMessage: the streamed body is complete
      body_ = Body::kNone;
      server_.handler().on_body_end(*this);
      continue;
    }
    dispatch();
  }
  in_process_ = false;
  return pos;
}

void Connection::dispatch() {
  wait_ = Wait::kNone;  // whatever comes next gets a fresh deadline
  continue_sent_ = false;
  if (parser_.upgrade() && server_.handler().accepts_websockets() &&
      !websocket_handshake(parser_.request())) {
    return;  // a broken opening handshake, refused
  }
  writer_.begin();
  server_.request_started();
  server_.handler().on_request(*this, parser_.request());
}

void Connection::resume_input() {
  if (!pending_in_.empty()) {
    pending_off_ += process(pending_in_.data() + pending_off_, pending_in_.size() - pending_off_);
    if (pending_off_ == pending_in_.size() || !input_wanted() || !open()) {
      pending_in_.clear();
      pending_off_ = 0;
    }
  }
  rearm();
  update_reading();
}

bool Connection::may_keep_alive() const {
  const Request& req = parser_.request();
  // A draining worker that hands connections over keeps them alive for one more answer; it
  // closes a connection it could not hand over after that. Nothing after an upgrade is HTTP.
  // An answer given before its request's body was read ends the connection: the handler may
  // still read the rest of the body (full duplex), else the lingering close discards it.
  return req.keep_alive && !parser_.upgrade() && server_.limits().keep_alive_ms > 0 &&
         !streaming_body() && (!draining() || (can_hand_off() && drain_ != Drain::kAnswered));
}

void Connection::settle_keep_alive(bool keep) {
  if (draining()) drain_ = Drain::kAnswered;
  close_after_ = !keep;
}

void Connection::respond(int status, std::string_view content_type, std::string_view body) {
  bool keep = may_keep_alive();
  settle_keep_alive(keep);
  uint64_t sent = writer_.respond(wire(), status, content_type, body, keep);
  answered(status, sent);
}

void Connection::answered(int status, uint64_t body_bytes) {
  if (server_.access_log()) log_access(status, body_bytes);
  end_request(status, true);
  if (in_process_) return;  // the parsing loop carries on and flushes
  // An answer given later: go on with what the client pipelined meanwhile.
  if (!close_after_) resume_input();
  flush();
}

void Connection::end_request(int status, bool complete) {
  if (upgrade_ == Upgrade::kRequested) upgrade_ = Upgrade::kNone;  // refused with an HTTP answer
  writer_.end();
  send_paused_ = false;
  if (streaming_body()) {
    body_ = Body::kNone;  // close_after_ is set: the rest of the body is never parsed
  } else {
    parser_.next();
  }
  server_.response_complete(status, complete, started_hr_);
}

void Connection::abort_request(int status) {
  if (closing() || !handling()) return;
  fail_response(status);
  // The request is over for the handler too (its app learns the client is gone).
  server_.handler().on_abort(*this);
}

namespace {

// The handler's response headers: false with `error` naming the first that is not valid HTTP
// (an app's CR, LF or non-token name never reaches the wire).
bool valid_headers(const HeaderList* headers, std::string* error) {
  if (!headers) return true;
  for (const auto& [name, value] : *headers) {
    bool token = is_token(name);
    if (!token || !is_field_value(value)) {
      *error = "invalid response header " + std::string(token ? "value" : "name") + " for '" +
               std::string(name.substr(0, 64)) + "'";
      return false;
    }
  }
  return true;
}

}  // namespace

SendResult Connection::send_response(int status, const HeaderList* headers, std::string_view body,
                                     bool more, std::string* error) {
  if (closing() || !handling()) return SendResult::kGone;
  if (!writer_.started()) {
    if (status < 200 || status > 999) {  // 1xx answers are the engine's (100 Continue)
      *error = "invalid response status " + std::to_string(status);
      return SendResult::kInvalid;
    }
    if (!valid_headers(headers, error)) return SendResult::kInvalid;
    bool keep = may_keep_alive();
    SendResult r = writer_.start(wire(), status, headers, body, more, &keep, error);
    if (r != SendResult::kOk) return r;
    settle_keep_alive(keep);
  } else if (!writer_.fits(body)) {
    *error = "response body longer than its Content-Length";
    return SendResult::kInvalid;
  }
  writer_.write(out_, body);
  if (more) {
    flush_soon();  // a streamed body's parts sent in one pass go out in one write
    if (output_room()) return SendResult::kOk;
    send_paused_ = true;
    return SendResult::kPaused;
  }
  int sent_status = writer_.status();
  uint64_t sent = writer_.body_bytes();
  if (!writer_.finish(out_)) close_after_ = true;  // body cut short
  answered(sent_status, sent);
  return SendResult::kOk;
}

void Connection::fail_response(int status) {
  if (closing() || !handling()) return;
  if (writer_.started() || eof_) {
    // What was sent still goes out, then the close: the client sees that the answer is
    // incomplete (no last chunk, fewer bytes than declared). A client that closed its side is
    // sent no error answer: it may be gone, and the app may have been told so.
    close_after_ = true;
  } else {
    respond_error(status);
  }
  // What the client saw: the status of the answer cut short, or of the error answer.
  end_request(writer_.started() ? writer_.status() : eof_ ? 0 : status, false);
  // respond_error's flush ran while the request was still ours, so it left the close (the
  // linger) for later; with the request over, it happens now (or when the write completes).
  flush_unless_parsing();
}

void Connection::respond_error(int status, std::string_view extra_header) {
  close_after_ = true;
  ResponseWriter::write_error(out_, server_.common_headers(), status, extra_header,
                              parser_.head_method());
  flush_unless_parsing();
}

void Connection::on_eof(bool reset) {
  // The client will send nothing more. What it sent is still answered (a client may half-close
  // after its requests); a request it left incomplete never will be. A reset (or another read
  // error) says it is gone: nothing written would reach it.
  eof_ = true;
  if (closing()) return;
  if (upgrade_ == Upgrade::kRequested || (ws_ && ws_->live())) {
    // A session (or a handshake the handler holds) whose client went away without a close
    // frame: it is over (1006, abnormal closure).
    if (ws_) ws_->peer_gone();
    close_now();
    return;
  }
  if (reset) {
    close_now();  // on_close ends a request the handler holds
    return;
  }
  if (handling() && streaming_body()) {
    server_.handler().on_peer_closed(*this);
  } else if (handling()) {
    server_.handler().on_peer_done(*this);
  }
  if (closing()) return;
  if (life_ == Life::kLingering) {
    close_now();
    return;
  }
  update_reading();
  if (!handling() && pending_in_.empty() && !write_pending_ && out_.empty()) {
    close_now();
    return;
  }
  flush();
}

void Connection::rearm() {
  // A streamed body is timed while the handler holds its request: a client that stalls in it
  // gets 408 (or the close, once the answer has started).
  bool body_wait = handling() && streaming_body();
  if (!open() || (handling() && !body_wait) || !input_wanted()) return;
  const Limits& lim = server_.limits();
  uint64_t ms = 0;
  switch (parser_.phase()) {
    case RequestParser::Phase::kIdle:
      if (wait_ == Wait::kIdle) return;  // idle since earlier: the deadline stands
      wait_ = Wait::kIdle;
      ms = draining() ? server_.drain_idle_grace_ms() : lim.keep_alive_ms;
      break;
    case RequestParser::Phase::kHead:
      if (wait_ == Wait::kHead) return;  // the whole head must arrive in time, not each byte
      wait_ = Wait::kHead;
      ms = lim.head_timeout_ms;
      break;
    case RequestParser::Phase::kBody:
      wait_ = Wait::kBody;  // progress: the body timeout restarts
      ms = lim.body_timeout_ms;
      break;
  }
  deadline_ms_ = ms ? now_ms() + ms : 0;
}

void Connection::flush() {
  while (!closing() && !write_pending_) {
    if (out_.empty()) {
      finish_output();
      return;
    }
    uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    int n = uv_try_write(&h_.stream, &b, 1);
    if (n > 0) bytes_written_ += static_cast<uint64_t>(n);
    if (n == static_cast<int>(out_.size())) {
      out_.clear();
      release_if_large(out_);
      // The kernel took it all: input that waited for room in the output goes on now, and so
      // does a sender that waited for it (no write callback will come to wake it).
      if (!in_process_) resume_input();
      wake_sender_if_room();
      continue;
    }
    if (n < 0 && n != UV_EAGAIN) {
      close_now();
      return;
    }
    if (n > 0) out_.erase(0, static_cast<size_t>(n));
    writing_.swap(out_);
    out_.clear();
    b = uv_buf_init(writing_.data(), static_cast<unsigned>(writing_.size()));
    if (uv_write(&write_req_, &h_.stream, &b, 1, on_write) != 0) {
      close_now();
      return;
    }
    bytes_written_ += writing_.size();  // handed to libuv: its write queue holds what is left
    write_pending_ = true;
    write_progress_ms_ = now_ms();
    write_queue_seen_ = h_.stream.write_queue_size;
    update_reading();
  }
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<Connection*>(req->handle->data);
  c->write_pending_ = false;
  c->writing_.clear();
  release_if_large(c->writing_);
  if (c->closing()) return;
  if (status < 0) {
    c->close_now();
    return;
  }
  // Output was in the way of parsing: the keep-alive wait starts now, pipelined input resumes.
  if (c->wait_ == Wait::kIdle) c->wait_ = Wait::kNone;
  c->resume_input();
  c->flush();
  if (!c->closing()) c->wake_sender_if_room();
}

void Connection::flush_soon() {
  if (in_process_ || flush_queued_) return;  // on_read flushes at its end, or it is queued
  flush_queued_ = true;
  server_.flush_later(this);
}

void Connection::wake_sender_if_room() {
  if (!send_paused_ || closing() || !output_room()) return;
  send_paused_ = false;
  // The handler only schedules its sender here; it does not send from inside this call.
  if (handling()) server_.handler().on_drained(*this);
}

void Connection::finish_output() {
  if (handling()) return;
  if (close_after_) {
    if (eof_) {
      close_now();
    } else {
      start_linger();
    }
  } else if (eof_ && pending_in_.empty()) {
    close_now();
  } else if (draining() && can_hand_off()) {
    try_handoff();
  }
}

bool Connection::try_handoff() {
  if (!can_hand_off() || !open() || eof_ || handling() || close_after_ || write_pending_ ||
      upgrade_ != Upgrade::kNone || parser_.phase() != RequestParser::Phase::kIdle ||
      !out_.empty() || !pending_in_.empty()) {
    return false;
  }
  uv_os_fd_t fd;
  if (uv_fileno(&h_.handle, &fd) != 0) return false;
  bool is_unix = h_.handle.type == UV_NAMED_PIPE;
  if (!send_connection(server_.handoff_fd(), fd, is_unix)) return false;
  // The message holds its own reference to the socket: closing ours does not end it.
  close_now();
  return true;
}

void Connection::start_linger() {
  if (!open()) return;
  assert(!handling());
  // Half-close and read until the client closes too: closing with unread input would reset
  // the connection and could destroy the answer before the client reads it.
  life_ = Life::kLingering;
  pending_in_.clear();
  pending_off_ = 0;
  uint64_t ms = server_.limits().linger_ms;
  deadline_ms_ = now_ms() + (ms ? ms : 1);
  if (uv_shutdown(&shutdown_req_, &h_.stream, on_shutdown) != 0) {
    close_now();
    return;
  }
  update_reading();
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<Connection*>(req->handle->data);
  if (status < 0 && !c->closing()) c->close_now();
}

void Connection::begin_drain() {
  if (!draining()) drain_ = Drain::kDraining;
  if (ws_ && ws_->state() == ws::Session::State::kOpen) {
    ws_->close(1012, "");  // service restart: the client reconnects to another worker
    return;
  }
  if (can_hand_off() && try_handoff()) return;
  if (parser_.phase() == RequestParser::Phase::kIdle && !handling() && !close_after_ && open()) {
    wait_ = Wait::kIdle;
    deadline_ms_ = now_ms() + server_.drain_idle_grace_ms();
  }
}

void Connection::check_deadline(uint64_t now) {
  if (closing()) return;
  if (ws_ && !ws_->check(now)) return;
  if (write_pending_) {
    // A client that does not read: the write must make progress, whatever else we wait for.
    size_t queued = h_.stream.write_queue_size;
    if (queued != write_queue_seen_) {
      write_queue_seen_ = queued;
      write_progress_ms_ = now;
    } else if (uint64_t limit = server_.limits().write_timeout_ms;
               limit && now - write_progress_ms_ >= limit) {
      close_now();
      return;
    }
    if (life_ != Life::kLingering) return;
  }
  // A body the handler paused is not the client's delay.
  bool body_timed = handling() && body_ == Body::kStreaming && wait_ == Wait::kBody;
  if ((handling() && !body_timed) || deadline_ms_ == 0 || now < deadline_ms_) return;
  expire();
}

void Connection::expire() {
  if (life_ == Life::kLingering || (close_after_ && !handling())) {
    close_now();
    return;
  }
  // A request under way gets 408 (RFC 9110 section 15.5.9); an idle connection just closes,
  // since a client may be sending its next request right now.
  if (wait_ == Wait::kHead || wait_ == Wait::kBody) {
    if (handling()) {
      abort_request(408);  // a streamed body: the handler holds the request
    } else {
      respond_error(408);
    }
    return;
  }
  close_now();
}

void Connection::close_now() {
  if (closing()) return;
  life_ = Life::kClosing;
  reading_ = false;
  uv_close(&h_.handle, on_close);
}

void Connection::on_close(uv_handle_t* h) {
  auto* c = static_cast<Connection*>(h->data);
  if (c->handling()) {
    c->server_.handler().on_abort(*c);
    c->server_.response_complete(0, false, c->started_hr_);
  }
  c->server_.connection_closed(c);
  delete c;
}

// --- The WebSocket upgrade ------------------------------------------------------------------

// The upgrade handoff: the 101 answer is the request's last HTTP bytes; a session takes the
// socket over, and the request stays the handler's until the session ends.
SendResult Connection::accept_websocket(std::string_view subprotocol, const HeaderList* headers,
                                        std::string* error) {
  if (closing() || eof_ || upgrade_ != Upgrade::kRequested) return SendResult::kGone;
  if (!subprotocol.empty() && !is_token(subprotocol)) {
    *error = "invalid WebSocket subprotocol '" + std::string(subprotocol.substr(0, 64)) + "'";
    return SendResult::kInvalid;
  }
  if (!valid_headers(headers, error)) return SendResult::kInvalid;
  const Request& req = parser_.request();
  out_ += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  out_ += "Sec-WebSocket-Accept: ";
  out_ += ws::accept_key(req.header("sec-websocket-key"));
  out_ += "\r\n";
  if (!subprotocol.empty()) {
    out_ += "Sec-WebSocket-Protocol: ";
    out_ += subprotocol;
    out_ += "\r\n";
  }
  out_ += server_.common_headers();
  if (headers) {
    for (const auto& [name, value] : *headers) {
      // The handshake's own fields are ours.
      if (iequals(name, "upgrade") || iequals(name, "connection") ||
          iequals(name, "sec-websocket-accept") || iequals(name, "sec-websocket-protocol") ||
          iequals(name, "content-length") || iequals(name, "transfer-encoding")) {
        continue;
      }
      out_ += name;
      out_ += ": ";
      out_ += value;
      out_ += "\r\n";
    }
  }
  out_ += "\r\n";
  if (server_.access_log()) log_access(101, 0);
  switch_to_websocket();
  return SendResult::kOk;
}

}  // namespace rotor::http
