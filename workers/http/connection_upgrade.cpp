// The connection's side of a WebSocket upgrade (RFC 6455 section 4): the opening handshake's
// checks, the handoff of the socket to a ws::Session after the 101 answer, and what the session
// asks of the connection.
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cassert>

#include "workers/http/connection.hpp"
#include "workers/http/server.hpp"
#include "workers/websocket/handshake.hpp"

namespace rotor::http {

// An Upgrade: websocket request (llhttp saw Connection: upgrade). True when it is a valid
// opening handshake (the handler is asked) or no WebSocket upgrade at all (plain HTTP); false
// when it was refused here with an error answer.
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
  upgrade_ = Upgrade::kRequested;
  return true;
}

void Connection::switch_to_websocket() {
  assert(upgrade_ == Upgrade::kRequested && handling() && !ws_);
  upgrade_ = Upgrade::kSwitched;
  ws_ = std::make_unique<ws::Session>(*this);
  wait_ = Wait::kNone;
  deadline_ms_ = 0;  // the session keeps its own time
  // Frames the client sent right after its handshake were kept unparsed: they come first.
  std::string early = pending_in_.substr(std::min(pending_off_, pending_in_.size()));
  pending_in_.clear();
  pending_off_ = 0;
  if (!early.empty()) ws_->feed(early);
  if (draining()) ws_->close(1012, "");
  flush_unless_parsing();
  update_reading();
}

SendResult Connection::send_websocket(bool text, std::string_view data) {
  return ws_ ? ws_->send(text, data) : SendResult::kGone;
}

void Connection::close_websocket(uint16_t code, std::string_view reason) {
  if (ws_) ws_->close(code, reason);
}

void Connection::resume_websocket() {
  if (ws_ && ws_->resume()) update_reading();
}

void Connection::session_ended(uint16_t code, std::string_view reason) {
  close_after_ = true;
  writer_.end();
  send_paused_ = false;
  server_.handler().on_ws_closed(*this, code, reason);
  server_.response_complete(101, true, started_hr_);
  flush_unless_parsing();
}

bool Connection::bytes_delivered(uint64_t* delivered) {
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
  *delivered = bytes_written_ - std::min(bytes_written_, held);
  return true;
}

}  // namespace rotor::http
