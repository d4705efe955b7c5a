// WebSocket framing (RFC 6455 section 5), server side, no extensions: an incremental decoder of
// the (masked) frames a client sends, with reassembly of fragmented messages, and the encoding of
// the (unmasked) frames a server sends. Pure: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rotor::ws {

enum class Opcode : uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10
};

// What the decoder reports. Called synchronously from Decoder::feed.
class Sink {
 public:
  virtual ~Sink() = default;
  // A whole (reassembled) data message; text is valid UTF-8.
  virtual void on_message(bool text, std::string_view data) = 0;
  virtual void on_ping(std::string_view payload) = 0;
  virtual void on_pong(std::string_view payload) = 0;
  // The client's close frame: code 1005 when it carried no code; reason valid UTF-8.
  virtual void on_close(uint16_t code, std::string_view reason) = 0;
  // A protocol violation: the server must send a close frame with `close_code` (1002 protocol
  // error, 1007 invalid UTF-8, 1009 message too big) and close.
  virtual void on_error(uint16_t close_code, std::string_view why) = 0;
};

namespace detail {

// Where an incremental UTF-8 check stands between two chunks: how many continuation bytes are
// still due, and the range the next one must fall in (narrower right after E0, ED, F0 and F4,
// which is how overlongs, surrogates and code points above U+10FFFF are refused).
struct Utf8State {
  uint8_t need = 0;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
};

}  // namespace detail

// Incremental decoder of the frames a client sends (they must be masked), with reassembly of
// fragmented messages; control frames may arrive between fragments.
class Decoder {
 public:
  explicit Decoder(uint64_t max_message = 16 * 1024 * 1024);
  // Consumes what it can of `data` and calls the sink for every complete frame/message. Returns
  // the number of bytes consumed: everything, except that it stops right after reporting
  // on_close or on_error (then done() is true and further feed calls consume nothing and report
  // nothing).
  size_t feed(std::string_view data, Sink& sink);
  bool done() const;
  // Bytes held for an incomplete frame or message (to bound memory).
  size_t buffered() const;

 private:
  // Takes one header byte; false once an error has been reported.
  bool header_byte(uint8_t b, Sink& sink);
  // The current frame's payload is complete; false once on_close or on_error has been reported.
  bool finish_frame(Sink& sink);
  bool fail(Sink& sink, uint16_t code, std::string_view why);

  uint64_t max_message_;
  bool done_ = false;

  // The header being read: up to 2 + 8 (length) + 4 (masking key) bytes.
  uint8_t header_[14] = {};
  uint8_t header_have_ = 0;
  uint8_t header_need_ = 2;  // 2 until the second byte tells the full size
  uint8_t extended_ = 0;     // bytes of extended length: 0, 2 or 8

  // The frame whose payload is being read (after its header).
  bool in_payload_ = false;
  bool fin_ = false;
  Opcode opcode_ = Opcode::kContinuation;
  uint64_t remaining_ = 0;
  uint8_t mask_[4] = {};
  uint8_t mask_phase_ = 0;

  // The data message being assembled (possibly over several fragments).
  bool in_message_ = false;
  bool message_text_ = false;
  std::string message_;
  detail::Utf8State utf8_;

  // The payload of the control frame being read (at most 125 bytes).
  std::string control_;
};

// A server frame (unmasked), FIN set.
std::string encode_frame(Opcode op, std::string_view payload);
// The payload of a close frame: the code (network order) then the reason (truncated so the
// payload is at most 125 bytes, never splitting a UTF-8 sequence). Code 1005 means "no code":
// empty payload.
std::string close_payload(uint16_t code, std::string_view reason);
// Codes an endpoint may send in a close frame (RFC 6455 7.4: 1000-1003, 1007-1011 (and
// 1012-1014), 3000-4999).
bool valid_close_code(uint16_t code);
bool valid_utf8(std::string_view s);

}  // namespace rotor::ws
