// A WebSocket session (RFC 6455) on a connection that switched protocols: frames in, messages
// to the handler, pings to keep a quiet session alive, and the closing handshake. The HTTP
// connection hands its socket over with the 101 answer (as h2o's websocket.c takes over from
// http1.c) and from then on only moves bytes and enforces the write timeout for it.
#pragma once

#include <cstdint>
#include <string_view>

#include "workers/http/response_writer.hpp"
#include "workers/websocket/frame.hpp"

namespace rotor::http {
class Connection;
}

namespace rotor::ws {

class Session : private Sink {
 public:
  // kOpen: frames flow; kClosing: our close frame is out, the client's is awaited; kDone: the
  // session is over (the connection closes).
  enum class State : uint8_t { kOpen, kClosing, kDone };

  // Starts the session on `conn`, whose 101 answer is written.
  explicit Session(http::Connection& conn);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  State state() const { return state_; }
  bool live() const { return state_ != State::kDone; }
  // Frames read from the client.
  void feed(std::string_view data);
  // Whether to read more: not while the handler has too many messages unread. Once closing,
  // the client's close frame is read whatever the app left unreceived.
  bool wants_input() const { return !(paused_ && state_ == State::kOpen); }
  void pause() { paused_ = true; }
  // True when reading was paused.
  bool resume() {
    bool was = paused_;
    paused_ = false;
    return was;
  }
  // A text or binary message. kPaused when the client reads slowly (Handler::on_drained).
  http::SendResult send(bool text, std::string_view data);
  // The closing handshake: a close frame now; the session ends when the client answers with
  // its own, or after the linger time.
  void close(uint16_t code, std::string_view reason);
  // The deadline sweep: pings, and the wait for the client's close frame (whose end closes the
  // connection). False when the connection's own deadlines are not to be checked this time.
  bool check(uint64_t now);
  // The client went away without a close frame: the session is over (1006, abnormal closure).
  void peer_gone() { end(1006, ""); }

 private:
  void on_message(bool text, std::string_view data) override;
  void on_ping(std::string_view payload) override;
  void on_pong(std::string_view payload) override;
  void on_close(uint16_t code, std::string_view reason) override;
  void on_error(uint16_t close_code, std::string_view why) override;
  void send_close_frame(uint16_t code, std::string_view reason);
  void ping(uint64_t now);
  // Whether the client took some of our output since the last call without yet reaching the
  // byte `end` of it (the end of the ping, or of the close frame, it must answer).
  bool still_taking(uint64_t end);
  void end(uint16_t code, std::string_view reason);

  http::Connection& conn_;
  Decoder decoder_;
  State state_ = State::kOpen;
  bool paused_ = false;
  uint64_t next_ping_ms_ = 0;  // when to ping next; 0 = never
  uint64_t pong_due_ms_ = 0;   // a ping is unanswered: the pong must come by then
  uint64_t close_due_ms_ = 0;  // kClosing: the client's close frame must come by then
  uint64_t taken_seen_ = 0;    // still_taking()'s last reading
  uint64_t ping_end_ = 0;      // where the awaited ping ends in our output
  uint64_t close_end_ = 0;     // and our close frame
};

}  // namespace rotor::ws
