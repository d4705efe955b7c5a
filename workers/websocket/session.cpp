#include "workers/websocket/session.hpp"

#include <algorithm>
#include <cassert>

#include "workers/http/connection.hpp"
#include "workers/http/server.hpp"

namespace rotor::ws {

namespace {

uint64_t linger_deadline(uint64_t now, const http::Limits& lim) {
  return now + (lim.linger_ms ? lim.linger_ms : 1);
}

}  // namespace

Session::Session(http::Connection& conn)
    : conn_(conn), decoder_(conn.server_.limits().ws_max_message) {
  const http::Limits& lim = conn.server_.limits();
  next_ping_ms_ = lim.ws_ping_interval_ms ? conn.now_ms() + lim.ws_ping_interval_ms : 0;
}

void Session::feed(std::string_view data) {
  if (!decoder_.done()) decoder_.feed(data, *this);
}

http::SendResult Session::send(bool text, std::string_view data) {
  if (conn_.closing() || state_ != State::kOpen) return http::SendResult::kGone;
  conn_.out_ += encode_frame(text ? Opcode::kText : Opcode::kBinary, data);
  conn_.flush_soon();
  if (conn_.output_room()) return http::SendResult::kOk;
  conn_.send_paused_ = true;
  return http::SendResult::kPaused;
}

void Session::close(uint16_t code, std::string_view reason) {
  if (conn_.closing() || state_ != State::kOpen) return;
  send_close_frame(code, reason);
  close_end_ = conn_.bytes_written_ + conn_.out_.size();
  state_ = State::kClosing;
  // The client answers with its close frame; one that does not is closed on after this.
  close_due_ms_ = linger_deadline(conn_.now_ms(), conn_.server_.limits());
  conn_.flush_unless_parsing();
  conn_.update_reading();
}

bool Session::check(uint64_t now) {
  if (state_ == State::kClosing) {
    // Our close frame is behind output the client is still reading: its wait starts after.
    if (still_taking(close_end_)) close_due_ms_ = linger_deadline(now, conn_.server_.limits());
    if (now < close_due_ms_) return true;
    end(1006, "");  // the client never answered our close frame
    conn_.close_now();
    return false;
  }
  if (state_ != State::kOpen) return true;
  ping(now);
  return !conn_.closing() && state_ == State::kOpen;
}

bool Session::still_taking(uint64_t end) {
  uint64_t delivered = 0;
  if (!conn_.bytes_delivered(&delivered)) return false;
  bool taking = delivered > taken_seen_ && delivered < end;
  taken_seen_ = delivered;
  return taking;
}

void Session::send_close_frame(uint16_t code, std::string_view reason) {
  conn_.out_ += encode_frame(Opcode::kClose, close_payload(code, reason));
}

void Session::on_message(bool text, std::string_view data) {
  if (state_ == State::kOpen) conn_.server_.handler().on_ws_message(conn_, text, data);
}

void Session::on_ping(std::string_view payload) {
  if (state_ != State::kDone) conn_.out_ += encode_frame(Opcode::kPong, payload);
}

void Session::on_pong(std::string_view) {
  pong_due_ms_ = 0;  // the client is there
}

// Keepalive: a ping every interval; a client that leaves one unanswered for the timeout is
// gone (a dead peer or a proxy that dropped the session), and the session ends with 1011.
void Session::ping(uint64_t now) {
  const http::Limits& lim = conn_.server_.limits();
  // The pong comes after the client has read what was sent before the ping: a client that
  // is still reading that (a large message, slowly) is not gone, and its wait starts again.
  if (pong_due_ms_ && still_taking(ping_end_)) pong_due_ms_ = now + lim.ws_ping_timeout_ms;
  if (pong_due_ms_ && now >= pong_due_ms_) {
    send_close_frame(1011, "keepalive ping timeout");
    end(1011, "keepalive ping timeout");
    return;
  }
  if (!next_ping_ms_ || now < next_ping_ms_) return;
  next_ping_ms_ = now + lim.ws_ping_interval_ms;
  conn_.out_ += encode_frame(Opcode::kPing, "rotor");
  if (!pong_due_ms_ && lim.ws_ping_timeout_ms) {
    pong_due_ms_ = now + lim.ws_ping_timeout_ms;
    ping_end_ = conn_.bytes_written_ + conn_.out_.size();  // where the awaited ping ends
  }
  conn_.flush();
}

void Session::on_close(uint16_t code, std::string_view reason) {
  // The client's close frame: answered with the same code (the end of the closing handshake),
  // unless ours went first. Then the server closes the TCP connection.
  if (state_ == State::kOpen) send_close_frame(code, "");
  end(code, reason);
}

void Session::on_error(uint16_t close_code, std::string_view) {
  if (state_ == State::kOpen) send_close_frame(close_code, "");
  end(close_code, "");
}

void Session::end(uint16_t code, std::string_view reason) {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  conn_.session_ended(code, reason);
}

}  // namespace rotor::ws
