#include "workers/http/connection.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <ctime>

#include "workers/http/access_log.hpp"
#include "workers/http/handoff.hpp"
#include "workers/http/server.hpp"
#include "workers/http/status.hpp"

namespace rotor::http {

namespace {

// Reads are parsed before the next one starts, so one buffer serves every connection.
char g_read_buffer[64 * 1024];

// Above this much unsent output the connection stops reading (a client that does not read).
constexpr size_t kWriteHighWater = 1 << 20;

Connection* self(llhttp_t* p) {
  return static_cast<Connection*>(p->data);
}

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

}  // namespace

Connection::Connection(Server& server) : server_(server) {
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
}

const llhttp_settings_t& Connection::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_message_begin = cb_message_begin;
    st.on_url = cb_url;
    st.on_header_field = cb_header_field;
    st.on_header_field_complete = cb_header_field_complete;
    st.on_header_value = cb_header_value;
    st.on_header_value_complete = cb_header_value_complete;
    st.on_headers_complete = cb_headers_complete;
    st.on_body = cb_body;
    st.on_message_complete = cb_message_complete;
    return st;
  }();
  return s;
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
  set_deadline(server_.limits().keep_alive_ms > 0 ? server_.limits().keep_alive_ms
                                                  : server_.limits().head_timeout_ms);
  if (server_.draining()) begin_drain();
  update_reading();
  return true;
}

uint64_t Connection::now_ms() const {
  return uv_now(server_.loop());
}

void Connection::set_deadline(uint64_t ms_from_now) {
  deadline_ms_ = now_ms() + ms_from_now;
}

void Connection::update_reading() {
  bool want = !closing_ &&
              (lingering_ || (!paused_ && !(write_pending_ && writing_.size() > kWriteHighWater)));
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
  if (nread < 0) {
    // The peer closed or reset. An answer still being prepared has nobody to go to.
    c->close_now();
    return;
  }
  c->in_read_cb_ = true;
  c->feed(buf->base, static_cast<size_t>(nread));
  c->in_read_cb_ = false;
  c->flush();
}

void Connection::feed(const char* data, size_t len) {
  if (lingering_ || closing_) return;  // after Connection: close, input is discarded
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK) return;
  if (err == HPE_PAUSED) {
    paused_ = true;
    if (close_after_) return;  // nothing after this request will be answered
    const char* pos = llhttp_get_error_pos(&parser_);
    pending_in_.assign(pos, static_cast<size_t>(data + len - pos));
    update_reading();
    return;
  }
  if (err == HPE_PAUSED_UPGRADE) {
    // No worker class speaks an upgraded protocol yet: answer, then close.
    paused_ = true;
    close_after_ = true;
    return;
  }
  respond_error(error_status_ ? error_status_ : 400);
}

int Connection::fail(int status, const char* reason) {
  error_status_ = status;
  llhttp_set_error_reason(&parser_, reason);
  return HPE_USER;
}

int Connection::cb_message_begin(llhttp_t* p) {
  Connection* c = self(p);
  c->in_message_ = true;
  c->req_.reset();
  c->field_open_ = false;
  c->set_deadline(c->server_.limits().head_timeout_ms);
  if (c->server_.access_log()) {
    c->started_hr_ = uv_hrtime();
    c->started_wall_ = time(nullptr);
  }
  return 0;
}

int Connection::cb_url(llhttp_t* p, const char* at, size_t len) {
  Connection* c = self(p);
  Request& r = c->req_;
  r.arena.append(at, len);
  r.target_len += static_cast<uint32_t>(len);
  // Like gunicorn, the limit is on the whole request line: method, target and version.
  uint64_t limit = c->server_.limits().request_line;
  if (limit) {
    uint64_t line = std::strlen(llhttp_method_name(static_cast<llhttp_method_t>(p->method))) +
                    1 + r.target_len + sizeof(" HTTP/1.1") - 1;
    if (line > limit) return c->fail(414, "request line too long");
  }
  return 0;
}

int Connection::cb_header_field(llhttp_t* p, const char* at, size_t len) {
  Connection* c = self(p);
  Request& r = c->req_;
  const Limits& lim = c->server_.limits();
  if (!c->field_open_) {
    if (lim.fields && r.fields.size() >= lim.fields) return c->fail(431, "too many header fields");
    r.fields.push_back({static_cast<uint32_t>(r.arena.size()), 0, 0, 0});
    c->field_open_ = true;
  }
  r.arena.append(at, len);
  r.fields.back().name_len += static_cast<uint32_t>(len);
  if (lim.field_size && r.fields.back().name_len > lim.field_size) {
    return c->fail(431, "header field too large");
  }
  return 0;
}

int Connection::cb_header_field_complete(llhttp_t* p) {
  Connection* c = self(p);
  if (!c->field_open_) return c->fail(400, "empty header name");
  c->field_open_ = false;
  c->req_.fields.back().value_off = static_cast<uint32_t>(c->req_.arena.size());
  return 0;
}

int Connection::cb_header_value(llhttp_t* p, const char* at, size_t len) {
  Connection* c = self(p);
  Request& r = c->req_;
  r.arena.append(at, len);
  Request::Field& f = r.fields.back();
  f.value_len += static_cast<uint32_t>(len);
  uint64_t limit = c->server_.limits().field_size;
  if (limit && f.name_len + f.value_len > limit) return c->fail(431, "header field too large");
  return 0;
}

int Connection::cb_header_value_complete(llhttp_t*) {
  return 0;
}

int Connection::cb_headers_complete(llhttp_t* p) {
  Connection* c = self(p);
  Request& r = c->req_;
  r.method = p->method;
  r.http_major = p->http_major;
  r.http_minor = p->http_minor;
  r.keep_alive = llhttp_should_keep_alive(p) != 0;
  r.head = p->method == HTTP_HEAD;
  r.has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);

  if (r.http_major == 1 && r.http_minor == 1) {
    int hosts = 0;
    for (const auto& f : r.fields) hosts += iequals(r.name(f), "host");
    if (hosts != 1) return c->fail(400, hosts ? "duplicate Host" : "missing Host");
  }
  std::string_view expect = r.header("expect");
  if (!expect.empty()) {
    if (!iequals(expect, "100-continue")) return c->fail(417, "unsupported expectation");
    // The body is read (and discarded) right away, so the client may send it now.
    if (r.has_body && r.http_minor >= 1) c->out_ += "HTTP/1.1 100 Continue\r\n\r\n";
  }
  uint64_t body_limit = c->server_.limits().body;
  if (body_limit && (p->flags & F_CONTENT_LENGTH) && p->content_length > body_limit) {
    return c->fail(413, "request body too large");
  }
  if (r.has_body) c->set_deadline(c->server_.limits().body_timeout_ms);
  return 0;
}

int Connection::cb_body(llhttp_t* p, const char*, size_t len) {
  Connection* c = self(p);
  c->req_.body_bytes += len;
  uint64_t limit = c->server_.limits().body;
  if (limit && c->req_.body_bytes > limit) return c->fail(413, "request body too large");
  c->set_deadline(c->server_.limits().body_timeout_ms);
  return 0;
}

int Connection::cb_message_complete(llhttp_t* p) {
  Connection* c = self(p);
  c->in_message_ = false;
  c->deadline_ms_ = 0;
  c->handling_ = true;
  c->server_.request_started();
  c->server_.handler().on_request(*c, c->req_);
  // Pause while an answer is outstanding (pipelined requests wait in order) or when nothing
  // after this request will be answered.
  if (c->handling_ || c->close_after_) return HPE_PAUSED;
  return HPE_OK;
}

void Connection::respond(int status, std::string_view content_type, std::string_view body) {
  const Limits& lim = server_.limits();
  // A draining worker that hands connections over keeps them alive for one more answer; it
  // closes a connection it could not hand over after that.
  bool keep = req_.keep_alive && lim.keep_alive_ms > 0 &&
              (!draining_ || (server_.handoff_fd() >= 0 && !answered_in_drain_));
  if (draining_) answered_in_drain_ = true;
  close_after_ = !keep;
  append_status_line(out_, status);
  out_ += "Server: rotor\r\n";
  out_ += server_.date_header();
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
  } else if (req_.http_minor == 0) {
    out_ += "Connection: keep-alive\r\n";
  }
  out_ += "\r\n";
  if (!req_.head) out_ += body;
  if (server_.access_log()) log_access(status, req_.head ? 0 : body.size());

  handling_ = false;
  server_.response_complete(true);
  after_response();
}

void Connection::log_access(int status, uint64_t body_bytes) {
  if (remote_.empty()) {
    sockaddr_storage ss{};
    int len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "-";
    if (h_.handle.type == UV_TCP &&
        uv_tcp_getpeername(&h_.tcp, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof host);
      } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof host);
      }
    }
    remote_ = host;
  }
  AccessEntry e;
  e.request = &req_;
  e.remote = remote_;
  e.status = status;
  e.body_bytes = body_bytes;
  e.duration_ns = static_cast<int64_t>(uv_hrtime() - started_hr_);
  e.wall_start_s = started_wall_;
  server_.access_log()->write(e);
}

void Connection::after_response() {
  if (close_after_) {
    if (!in_read_cb_) flush();
    return;
  }
  set_deadline(draining_ ? server_.drain_idle_grace_ms() : server_.limits().keep_alive_ms);
  if (paused_) {
    // An answer given later: go on with what the client pipelined meanwhile.
    paused_ = false;
    llhttp_resume(&parser_);
    std::string input;
    input.swap(pending_in_);
    bool outer = in_read_cb_;
    in_read_cb_ = true;
    if (!input.empty()) feed(input.data(), input.size());
    in_read_cb_ = outer;
    update_reading();
  }
  if (!in_read_cb_) flush();
}

void Connection::respond_error(int status) {
  close_after_ = true;
  paused_ = true;
  std::string_view line = status_line(status);
  append_status_line(out_, status);
  out_ += "Server: rotor\r\n";
  out_ += server_.date_header();
  out_ += "Content-Type: text/plain\r\nContent-Length: ";
  append_number(out_, line.size() + 1);
  out_ += "\r\nConnection: close\r\n\r\n";
  out_ += line;
  out_ += "\n";
  if (!in_read_cb_) flush();
}

void Connection::flush() {
  if (closing_ || write_pending_) return;  // on_write carries on
  if (out_.empty()) {
    finish_output();
    return;
  }
  uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  int n = uv_try_write(&h_.stream, &b, 1);
  if (n == static_cast<int>(out_.size())) {
    out_.clear();
    finish_output();
    return;
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
  write_pending_ = true;
  update_reading();
}

void Connection::on_write(uv_write_t* req, int status) {
  auto* c = static_cast<Connection*>(req->handle->data);
  c->write_pending_ = false;
  c->writing_.clear();
  if (c->closing_) return;
  if (status < 0) {
    c->close_now();
    return;
  }
  c->update_reading();
  c->flush();
}

void Connection::finish_output() {
  if (close_after_ && !handling_) {
    start_linger();
  } else if (draining_ && server_.handoff_fd() >= 0) {
    try_handoff();
  }
}

bool Connection::try_handoff() {
  if (closing_ || lingering_ || in_message_ || handling_ || paused_ || close_after_ ||
      write_pending_ || !out_.empty() || !pending_in_.empty()) {
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
  set_deadline(server_.limits().linger_ms);
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
  if (server_.handoff_fd() >= 0 && try_handoff()) return;
  if (!in_message_ && !handling_ && !close_after_ && !lingering_) {
    set_deadline(server_.drain_idle_grace_ms());
  }
}

void Connection::check_deadline(uint64_t now) {
  if (closing_ || deadline_ms_ == 0 || now < deadline_ms_ || handling_) return;
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
  if (c->handling_) c->server_.response_complete(false);
  c->server_.connection_closed(c);
  delete c;
}

}  // namespace rotor::http
