#include "workers/http/connection.hpp"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>

#include "workers/http/access_log.hpp"
#include "workers/http/handoff.hpp"
#include "workers/http/server.hpp"
#include "workers/http/status.hpp"
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

bool Connection::can_process() const {
  // A streamed body goes on being parsed while the handler holds its request, unless paused.
  bool busy = handling_ && (!streaming_body_ || body_paused_);
  return !busy && input_wanted() && !closing_ && !lingering_ &&
         out_.size() + writing_.size() < kOutputHighWater;
}

void Connection::on_body_data(std::string_view data) {
  if (streaming_body_ && !closing_) server_.handler().on_body(*this, data);
}

void Connection::resume_body() {
  if (!body_paused_) return;
  body_paused_ = false;
  if (!in_process_) resume_input();
}

void Connection::continue_if_expected() {
  // A 1xx after the final response's head would break its framing (RFC 9110 section 15.2).
  if (!streaming_body_ || continue_sent_ || response_started_ || !parser_.expect_continue()) {
    return;
  }
  continue_sent_ = true;
  out_ += "HTTP/1.1 100 Continue\r\n\r\n";
  if (!in_process_) flush();
}

void Connection::update_reading() {
  // While the handler holds a request we still read (into pending_in_, one buffer at most) so
  // that a client that goes away is noticed.
  bool waiting_on_handler =
      handling_ && input_wanted() && out_.size() + writing_.size() < kOutputHighWater;
  bool want = !closing_ && !eof_ &&
              (lingering_ || (pending_in_.empty() && (can_process() || waiting_on_handler)));
  if (ws_ == Ws::kOpen || ws_ == Ws::kClosing) {
    // Frames: read unless the handler has too many messages unread, or the client does not
    // read what we send (its pings' pongs included).
    // Once closing, the client's close frame is read whatever the app left unreceived.
    bool paused = ws_paused_ && ws_ == Ws::kOpen;
    want = !closing_ && !eof_ && !paused && out_.size() + writing_.size() < kOutputHighWater;
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
  if (c->closing_ || c->lingering_) return;  // after the last answer, input is discarded
  size_t len = static_cast<size_t>(nread);
  if (c->ws_ == Ws::kOpen || c->ws_ == Ws::kClosing) {
    c->feed_websocket(buf->base, len);
    c->update_reading();
    c->flush();
    return;
  }
  if (c->ws_ == Ws::kDone) return;  // after the closing handshake, input is discarded
  size_t used = c->process(buf->base, len);
  // What could not be parsed yet waits in our own buffer: the read buffer is shared.
  if (used < len && c->input_wanted() && !c->closing_ && !c->lingering_) {
    c->pending_in_.assign(buf->base + used, len - used);
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
    if (server_.access_log() && parser_.phase() == RequestParser::Phase::kIdle) {
      started_hr_ = uv_hrtime();
      started_wall_ = time(nullptr);
    }
    size_t used = 0;
    RequestParser::Event ev = parser_.feed(data + pos, len - pos, &used);
    pos += used;
    if (ev == RequestParser::Event::kNeedMore) {
      // The client waits for a go-ahead before it sends the body (RFC 9110 section 10.1.1);
      // a streaming handler gives it when the app first reads (continue_if_expected).
      if (parser_.expect_continue() && !continue_sent_ && !streaming_body_) {
        continue_sent_ = true;
        out_ += "HTTP/1.1 100 Continue\r\n\r\n";
      }
      break;
    }
    if (ev == RequestParser::Event::kError) {
      if (handling_) {
        abort_request(parser_.error_status());  // a bad body under a request the handler holds
      } else {
        respond_error(parser_.error_status());
      }
      pos = len;
      break;
    }
    if (ev == RequestParser::Event::kHead) {
      streaming_body_ = true;
      dispatch();
      continue;
    }
    if (streaming_body_) {  // kMessage: the streamed body is complete
      streaming_body_ = false;
      body_paused_ = false;
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
  handling_ = true;
  server_.request_started();
  server_.handler().on_request(*this, parser_.request());
}

void Connection::resume_input() {
  if (!pending_in_.empty()) {
    pending_off_ += process(pending_in_.data() + pending_off_, pending_in_.size() - pending_off_);
    if (pending_off_ == pending_in_.size() || !input_wanted() || closing_ || lingering_) {
      pending_in_.clear();
      pending_off_ = 0;
    }
  }
  rearm();
  update_reading();
}

bool Connection::keep_alive_after_answer() {
  const Request& req = parser_.request();
  // A draining worker that hands connections over keeps them alive for one more answer; it
  // closes a connection it could not hand over after that. Nothing after an upgrade is HTTP.
  // An answer given before its request's body was read ends the connection: the handler may
  // still read the rest of the body (full duplex), else the lingering close discards it.
  bool keep = req.keep_alive && !parser_.upgrade() && server_.limits().keep_alive_ms > 0 &&
              !streaming_body_ &&
              (!draining_ || (server_.handoff_fd() >= 0 && !answered_in_drain_));
  if (draining_) answered_in_drain_ = true;
  close_after_ = !keep;
  return keep;
}

void Connection::respond(int status, std::string_view content_type, std::string_view body) {
  const Request& req = parser_.request();
  bool keep = keep_alive_after_answer();
  append_status_line(out_, status);
  out_ += server_.common_headers();
  if (!content_type.empty()) {
    out_ += "Content-Type: ";
    out_ += content_type;
    out_ += "\r\n";
  }
  out_ += "Content-Length: ";
  append_number(out_, body.size());
  out_ += "\r\n";
  if (!keep) {
    out_ += "Connection: close\r\n";
  } else if (req.http_minor == 0) {
    out_ += "Connection: keep-alive\r\n";
  }
  out_ += "\r\n";
  if (!req.head) out_ += body;
  answer_done(status, req.head ? 0 : body.size());
}

void Connection::answer_done(int status, uint64_t body_bytes) {
  if (server_.access_log()) log_access(status, body_bytes);
  release_request(true);
  if (in_process_) return;  // the parsing loop carries on and flushes
  // An answer given later: go on with what the client pipelined meanwhile.
  if (!close_after_) resume_input();
  flush();
}

void Connection::release_request(bool answered) {
  if (ws_ == Ws::kHandshake) ws_ = Ws::kNone;  // refused with an HTTP answer
  handling_ = false;
  send_paused_ = false;
  if (streaming_body_) {
    streaming_body_ = false;  // close_after_ is set: the rest of the body is never parsed
    body_paused_ = false;
  } else {
    parser_.next();
  }
  server_.response_complete(answered);
}

void Connection::abort_request(int status) {
  if (closing_ || !handling_) return;
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
  if (closing_ || !handling_) return SendResult::kGone;
  const Request& req = parser_.request();
  if (!response_started_) {
    if (status < 200 || status > 999) {  // 1xx answers are the engine's (100 Continue)
      *error = "invalid response status " + std::to_string(status);
      return SendResult::kInvalid;
    }
    if (!valid_headers(headers, error)) return SendResult::kInvalid;
    bool has_length = false;
    uint64_t length = 0;
    bool close_asked = false;
    if (headers) {
      for (const auto& [name, value] : *headers) {
        if (iequals(name, "connection")) close_asked = close_asked || ws::has_token(value, "close");
        if (!iequals(name, "content-length")) continue;
        // The app's length frames the body on a keep-alive connection: it must be one number.
        uint64_t n = 0;
        std::string_view v = trim_ows(value);
        auto res = std::from_chars(v.data(), v.data() + v.size(), n);
        if (v.empty() || res.ec != std::errc() || res.ptr != v.data() + v.size() ||
            (has_length && n != length)) {
          *error = "invalid or conflicting Content-Length in the response";
          return SendResult::kInvalid;
        }
        has_length = true;
        length = n;
      }
    }
    no_body_ = req.head || status == 204 || status == 304;
    if (has_length && !no_body_ && body.size() > length) {
      *error = "response body longer than its Content-Length";  // checked before anything is sent
      return SendResult::kInvalid;
    }
    has_length_ = has_length && !no_body_;
    declared_length_ = length;
    bool keep = keep_alive_after_answer();
    // The app asked for the close, or its body ends short of its length (the client would take
    // the next answer for the rest of this one).
    if (close_asked || (has_length_ && !more && body.size() < length)) {
      keep = false;
      close_after_ = true;
    }
    // Without a length, a streamed body is chunked; HTTP/1.0 has no chunks: close-delimited.
    chunked_ = !no_body_ && !has_length && more && req.http_minor >= 1;
    if (!no_body_ && !has_length && more && req.http_minor == 0) {
      keep = false;
      close_after_ = true;
    }
    append_status_line(out_, status);
    out_ += server_.common_headers();
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
        out_ += name;
        out_ += ": ";
        out_ += value;
        out_ += "\r\n";
      }
    }
    // A HEAD's Content-Length must be the GET's (RFC 9110 section 9.3.2): an app that sent no
    // length and no body did not say it, so none is sent; one that sent the body did.
    bool length_known = !req.head || !body.empty();
    if (!has_length && !chunked_ && !more && status != 204 && status != 304 && length_known) {
      out_ += "Content-Length: ";
      append_number(out_, body.size());
      out_ += "\r\n";
    }
    if (chunked_) out_ += "Transfer-Encoding: chunked\r\n";
    if (!keep) {
      out_ += "Connection: close\r\n";
    } else if (req.http_minor == 0) {
      out_ += "Connection: keep-alive\r\n";
    }
    out_ += "\r\n";
    response_started_ = true;
    response_status_ = status;
    response_bytes_ = 0;
  } else if (has_length_ && body.size() > declared_length_ - response_bytes_) {
    // Never past the declared end: the excess would be read as the next response.
    *error = "response body longer than its Content-Length";
    return SendResult::kInvalid;
  }
  if (!no_body_ && !body.empty()) {
    if (chunked_) {
      char size[20];
      int n = snprintf(size, sizeof size, "%zx\r\n", body.size());
      out_.append(size, static_cast<size_t>(n));
      out_ += body;
      out_ += "\r\n";
    } else {
      out_ += body;
    }
    response_bytes_ += body.size();
  }
  if (more) {
    flush_soon();  // a streamed body's parts sent in one pass go out in one write
    if (out_.size() + writing_.size() < kOutputHighWater) return SendResult::kOk;
    send_paused_ = true;
    return SendResult::kPaused;
  }
  if (chunked_) out_ += "0\r\n\r\n";
  if (has_length_ && response_bytes_ < declared_length_) close_after_ = true;  // body cut short
  response_started_ = false;
  answer_done(response_status_, response_bytes_);
  return SendResult::kOk;
}

void Connection::fail_response(int status) {
  if (closing_ || !handling_) return;
  if (response_started_ || eof_) {
    // What was sent still goes out, then the close: the client sees that the answer is
    // incomplete (no last chunk, fewer bytes than declared). A client that closed its side is
    // sent no error answer: it may be gone, and the app may have been told so.
    response_started_ = false;
    close_after_ = true;
  } else {
    respond_error(status);
  }
  release_request(false);
  // respond_error's flush ran while the request was still ours, so it left the close (the
  // linger) for later; with the request over, it happens now (or when the write completes).
  if (!in_process_) flush();
}

const Endpoint& Connection::peer_endpoint() {
  if (!endpoints_known_) {
    endpoints_known_ = true;
    auto fill = [this](bool peer, Endpoint& e) {
      sockaddr_storage ss{};
      int len = sizeof ss;
      if (h_.handle.type == UV_NAMED_PIPE) {
        char path[256];
        size_t n = sizeof path;
        if (!peer && uv_pipe_getsockname(&h_.pipe, path, &n) == 0) e.host.assign(path, n);
        return;
      }
      int rc = peer ? uv_tcp_getpeername(&h_.tcp, reinterpret_cast<sockaddr*>(&ss), &len)
                    : uv_tcp_getsockname(&h_.tcp, reinterpret_cast<sockaddr*>(&ss), &len);
      if (rc != 0) return;
      char host[INET6_ADDRSTRLEN] = "";
      if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        e.port = ntohs(a->sin_port);
      } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        e.port = ntohs(a->sin6_port);
      }
      e.host = host;
    };
    fill(true, peer_);
    fill(false, local_);
  }
  return peer_;
}

const Endpoint& Connection::local_endpoint() {
  peer_endpoint();
  return local_;
}

void Connection::log_access(int status, uint64_t body_bytes) {
  AccessEntry e;
  e.request = &parser_.request();
  e.remote = peer_endpoint().host;  // empty (unix socket) renders as "-"
  e.status = status;
  e.body_bytes = body_bytes;
  e.duration_ns = static_cast<int64_t>(uv_hrtime() - started_hr_);
  e.wall_start_s = started_wall_;
  server_.access_log()->write(e);
}

void Connection::respond_error(int status, std::string_view extra_header) {
  close_after_ = true;
  std::string_view line = status_line(status);
  append_status_line(out_, status);
  out_ += server_.common_headers();
  out_ += extra_header;
  out_ += "Content-Type: text/plain\r\nContent-Length: ";
  append_number(out_, line.size() + 1);
  out_ += "\r\nConnection: close\r\n\r\n";
  if (!parser_.head_method()) {  // the answer to a HEAD has no body, an error's neither
    out_ += line;
    out_ += "\n";
  }
  if (!in_process_) flush();
}

void Connection::on_eof(bool reset) {
  // The client will send nothing more. What it sent is still answered (a client may half-close
  // after its requests); a request it left incomplete never will be. A reset (or another read
  // error) says it is gone: nothing written would reach it.
  eof_ = true;
  if (closing_) return;
  if (ws_ != Ws::kNone && ws_ != Ws::kDone) {
    // A session (or a handshake the handler holds) whose client went away without a close
    // frame: it is over (1006, abnormal closure).
    if (ws_ != Ws::kHandshake) end_websocket(1006, "");
    close_now();
    return;
  }
  if (reset) {
    close_now();  // on_close ends a request the handler holds
    return;
  }
  if (handling_ && streaming_body_) {
    server_.handler().on_peer_closed(*this);
  } else if (handling_) {
    server_.handler().on_peer_done(*this);
  }
  if (closing_) return;
  if (lingering_) {
    close_now();
    return;
  }
  update_reading();
  if (!handling_ && pending_in_.empty() && !write_pending_ && out_.empty()) {
    close_now();
    return;
  }
  flush();
}

void Connection::rearm() {
  // A streamed body is timed while the handler holds its request: a client that stalls in it
  // gets 408 (or the close, once the answer has started).
  bool body_wait = handling_ && streaming_body_;
  if (closing_ || lingering_ || (handling_ && !body_wait) || !input_wanted()) return;
  const Limits& lim = server_.limits();
  uint64_t ms = 0;
  switch (parser_.phase()) {
    case RequestParser::Phase::kIdle:
      if (wait_ == Wait::kIdle) return;  // idle since earlier: the deadline stands
      wait_ = Wait::kIdle;
      ms = draining_ ? server_.drain_idle_grace_ms() : lim.keep_alive_ms;
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
  while (!closing_ && !write_pending_) {
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
  if (c->closing_) return;
  if (status < 0) {
    c->close_now();
    return;
  }
  // Output was in the way of parsing: the keep-alive wait starts now, pipelined input resumes.
  if (c->wait_ == Wait::kIdle) c->wait_ = Wait::kNone;
  c->resume_input();
  c->flush();
  if (!c->closing_) c->wake_sender_if_room();
}

void Connection::wake_sender_if_room() {
  if (!send_paused_ || closing_ || out_.size() + writing_.size() >= kOutputHighWater) return;
  send_paused_ = false;
  // The handler only schedules its sender here; it does not send from inside this call.
  if (handling_) server_.handler().on_drained(*this);
}

void Connection::finish_output() {
  if (handling_) return;
  if (close_after_) {
    if (eof_) {
      close_now();
    } else {
      start_linger();
    }
  } else if (eof_ && pending_in_.empty()) {
    close_now();
  } else if (draining_ && server_.handoff_fd() >= 0) {
    try_handoff();
  }
}

bool Connection::try_handoff() {
  if (closing_ || lingering_ || eof_ || handling_ || close_after_ || write_pending_ ||
      ws_ != Ws::kNone || parser_.phase() != RequestParser::Phase::kIdle || !out_.empty() ||
      !pending_in_.empty()) {
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
  if (lingering_ || closing_) return;
  // Half-close and read until the client closes too: closing with unread input would reset
  // the connection and could destroy the answer before the client reads it.
  lingering_ = true;
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
  if (status < 0 && !c->closing_) c->close_now();
}

void Connection::begin_drain() {
  draining_ = true;
  if (ws_ == Ws::kOpen) {
    close_websocket(1012, "");  // service restart: the client reconnects to another worker
    return;
  }
  if (server_.handoff_fd() >= 0 && try_handoff()) return;
  if (parser_.phase() == RequestParser::Phase::kIdle && !handling_ && !close_after_ &&
      !lingering_ && !closing_) {
    wait_ = Wait::kIdle;
    deadline_ms_ = now_ms() + server_.drain_idle_grace_ms();
  }
}

void Connection::check_deadline(uint64_t now) {
  if (closing_) return;
  if (ws_ == Ws::kClosing && still_taking(ws_close_end_)) {
    // Our close frame is behind output the client is still reading: its wait starts after.
    uint64_t ms = server_.limits().linger_ms;
    deadline_ms_ = now + (ms ? ms : 1);
  }
  if (ws_ == Ws::kClosing && deadline_ms_ && now >= deadline_ms_) {
    end_websocket(1006, "");  // the client never answered our close frame
    close_now();
    return;
  }
  if (ws_ == Ws::kOpen) {
    ping_websocket(now);
    if (closing_ || ws_ != Ws::kOpen) return;
  }
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
    if (!lingering_) return;
  }
  // A body the handler paused is not the client's delay.
  bool body_timed = handling_ && streaming_body_ && !body_paused_ && wait_ == Wait::kBody;
  if ((handling_ && !body_timed) || deadline_ms_ == 0 || now < deadline_ms_) return;
  expire();
}

void Connection::expire() {
  if (lingering_ || (close_after_ && !handling_)) {
    close_now();
    return;
  }
  // A request under way gets 408 (RFC 9110 section 15.5.9); an idle connection just closes,
  // since a client may be sending its next request right now.
  if (wait_ == Wait::kHead || wait_ == Wait::kBody) {
    if (handling_) {
      abort_request(408);  // a streamed body: the handler holds the request
    } else {
      respond_error(408);
    }
    return;
  }
  close_now();
}

void Connection::close_now() {
  if (closing_) return;
  closing_ = true;
  reading_ = false;
  uv_close(&h_.handle, on_close);
}

void Connection::on_close(uv_handle_t* h) {
  auto* c = static_cast<Connection*>(h->data);
  if (c->handling_) {
    c->server_.handler().on_abort(*c);
    c->server_.response_complete(false);
  }
  c->server_.connection_closed(c);
  delete c;
}

// --- WebSocket --------------------------------------------------------------------------------

// An Upgrade: websocket request (llhttp saw Connection: upgrade). True when it is a valid
// opening handshake (ws_ becomes kHandshake) or no WebSocket upgrade at all (plain HTTP);
// false when it was refused here with an error answer.
bool Connection::websocket_handshake(const Request& req) {
  if (!ws::has_token(req.header("upgrade"), "websocket")) return true;
  if (req.method != HTTP_GET || req.http_minor != 1 || req.has_body) {
    respond_error(400);
    return false;
  }
  if (req.header("sec-websocket-version") != "13") {
    respond_error(426, "Sec-WebSocket-Version: 13\r\n");
    return false;
  }
  if (!ws::valid_client_key(req.header("sec-websocket-key"))) {
    respond_error(400);
    return false;
  }
  ws_ = Ws::kHandshake;
  return true;
}

SendResult Connection::accept_websocket(std::string_view subprotocol, const HeaderList* headers,
                                        std::string* error) {
  if (closing_ || eof_ || ws_ != Ws::kHandshake) return SendResult::kGone;
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
  ws_ = Ws::kOpen;
  const Limits& lim = server_.limits();
  ws_decoder_ = std::make_unique<ws::Decoder>(lim.ws_max_message);
  wait_ = Wait::kNone;
  deadline_ms_ = 0;
  ws_next_ping_ms_ = lim.ws_ping_interval_ms ? now_ms() + lim.ws_ping_interval_ms : 0;
  // Frames the client sent right after its handshake were kept unparsed: they come first.
  std::string early = pending_in_.substr(std::min(pending_off_, pending_in_.size()));
  pending_in_.clear();
  pending_off_ = 0;
  if (!early.empty()) feed_websocket(early.data(), early.size());
  if (draining_ && ws_ == Ws::kOpen) close_websocket(1012, "");
  if (!in_process_) flush();
  update_reading();
  return SendResult::kOk;
}

void Connection::flush_soon() {
  if (in_process_ || flush_queued_) return;  // on_read flushes at its end, or it is queued
  flush_queued_ = true;
  server_.flush_later(this);
}

SendResult Connection::send_websocket(bool text, std::string_view data) {
  if (closing_ || ws_ != Ws::kOpen) return SendResult::kGone;
  out_ += ws::encode_frame(text ? ws::Opcode::kText : ws::Opcode::kBinary, data);
  flush_soon();
  if (out_.size() + writing_.size() < kOutputHighWater) return SendResult::kOk;
  send_paused_ = true;
  return SendResult::kPaused;
}

void Connection::close_websocket(uint16_t code, std::string_view reason) {
  if (closing_ || ws_ != Ws::kOpen) return;
  send_close_frame(code, reason);
  ws_close_end_ = bytes_written_ + out_.size();
  ws_ = Ws::kClosing;
  // The client answers with its close frame; one that does not is closed on after this.
  uint64_t ms = server_.limits().linger_ms;
  deadline_ms_ = now_ms() + (ms ? ms : 1);
  if (!in_process_) flush();
  update_reading();
}

bool Connection::still_taking(uint64_t end) {
  // Only what the client took counts, never what we added (our own pings would otherwise keep
  // a client that is gone alive). TCP tells: what left libuv and is no longer unacknowledged
  // in the kernel reached the client. A unix socket's count is of buffer memory, not bytes:
  // nothing is known to move there.
  uv_os_fd_t fd;
  int queued = 0;
  if (h_.handle.type != UV_TCP || uv_fileno(&h_.handle, &fd) != 0 ||
      ioctl(fd, SIOCOUTQ, &queued) != 0 || queued < 0) {
    return false;
  }
  uint64_t held = static_cast<uint64_t>(queued) + h_.stream.write_queue_size;
  uint64_t delivered = bytes_written_ - std::min(bytes_written_, held);
  bool taking = delivered > ws_taken_seen_ && delivered < end;
  ws_taken_seen_ = delivered;
  return taking;
}

void Connection::resume_websocket() {
  if (!ws_paused_) return;
  ws_paused_ = false;
  update_reading();
}

void Connection::send_close_frame(uint16_t code, std::string_view reason) {
  out_ += ws::encode_frame(ws::Opcode::kClose, ws::close_payload(code, reason));
}

void Connection::feed_websocket(const char* data, size_t len) {
  if (ws_decoder_ && !ws_decoder_->done()) ws_decoder_->feed(std::string_view(data, len), *this);
}

void Connection::on_message(bool text, std::string_view data) {
  if (ws_ == Ws::kOpen) server_.handler().on_ws_message(*this, text, data);
}

void Connection::on_ping(std::string_view payload) {
  if (ws_ == Ws::kOpen || ws_ == Ws::kClosing) out_ += ws::encode_frame(ws::Opcode::kPong, payload);
}

void Connection::on_pong(std::string_view) {
  ws_pong_due_ms_ = 0;  // the client is there
}

// Keepalive: a ping every interval; a client that leaves one unanswered for the timeout is
// gone (a dead peer or a proxy that dropped the session), and the session ends with 1011.
void Connection::ping_websocket(uint64_t now) {
  const Limits& lim = server_.limits();
  // The pong comes after the client has read what was sent before the ping: a client that
  // is still reading that (a large message, slowly) is not gone, and its wait starts again.
  if (ws_pong_due_ms_ && still_taking(ws_ping_end_)) {
    ws_pong_due_ms_ = now + lim.ws_ping_timeout_ms;
  }
  if (ws_pong_due_ms_ && now >= ws_pong_due_ms_) {
    send_close_frame(1011, "keepalive ping timeout");
    end_websocket(1011, "keepalive ping timeout");
    return;
  }
  if (!ws_next_ping_ms_ || now < ws_next_ping_ms_) return;
  ws_next_ping_ms_ = now + lim.ws_ping_interval_ms;
  out_ += ws::encode_frame(ws::Opcode::kPing, "rotor");
  if (!ws_pong_due_ms_ && lim.ws_ping_timeout_ms) {
    ws_pong_due_ms_ = now + lim.ws_ping_timeout_ms;
    ws_ping_end_ = bytes_written_ + out_.size();  // where in our output the awaited ping ends
  }
  flush();
}

void Connection::on_close(uint16_t code, std::string_view reason) {
  // The client's close frame: answered with the same code (the end of the closing handshake),
  // unless ours went first. Then the server closes the TCP connection.
  if (ws_ == Ws::kOpen) send_close_frame(code, "");
  end_websocket(code, reason);
}

void Connection::on_error(uint16_t close_code, std::string_view) {
  if (ws_ == Ws::kOpen) send_close_frame(close_code, "");
  end_websocket(close_code, "");
}

void Connection::end_websocket(uint16_t code, std::string_view reason) {
  if (ws_ != Ws::kOpen && ws_ != Ws::kClosing) return;
  ws_ = Ws::kDone;
  close_after_ = true;
  handling_ = false;
  send_paused_ = false;
  server_.handler().on_ws_closed(*this, code, reason);
  server_.response_complete(true);
  if (!in_process_) flush();
}

}  // namespace rotor::http
