#include "workers/websocket/frame.hpp"

#include <algorithm>
#include <cstring>

namespace rotor::ws {

namespace {

constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kInvalidPayload = 1007;
constexpr uint16_t kTooBig = 1009;
constexpr uint16_t kNoCode = 1005;

// A message buffer that grew past this is released rather than kept for the next message.
constexpr size_t kKeepCapacity = 64 * 1024;

bool is_control(Opcode op) {
  return (static_cast<uint8_t>(op) & 0x08) != 0;
}

// Checks `n` more bytes of a UTF-8 stream from `state`, which it updates. Returns the index of
// the first byte that cannot be part of valid UTF-8 (then the state is meaningless), or `n`.
size_t utf8_scan(detail::Utf8State& state, const unsigned char* p, size_t n) {
  uint8_t need = state.need;
  uint8_t lo = state.lo;
  uint8_t hi = state.hi;
  size_t i = 0;
  while (i < n) {
    if (need == 0) {
      // Runs of ASCII, 8 bytes at a time.
      while (i + 8 <= n) {
        uint64_t word;
        std::memcpy(&word, p + i, 8);
        if ((word & 0x8080808080808080ULL) != 0) break;
        i += 8;
      }
      if (i == n) break;
      const uint8_t c = p[i];
      if (c < 0x80) {
        ++i;
        continue;
      }
      if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
      } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;  // below is an overlong 3-byte form
        if (c == 0xED) hi = 0x9F;  // above is a surrogate, U+D800..U+DFFF
      } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;  // below is an overlong 4-byte form
        if (c == 0xF4) hi = 0x8F;  // above is past U+10FFFF
      } else {
        return i;  // a continuation byte, C0/C1 (overlong 2-byte forms) or F5..FF
      }
      ++i;
    } else {
      const uint8_t c = p[i];
      if (c < lo || c > hi) return i;
      lo = 0x80;
      hi = 0xBF;
      --need;
      ++i;
    }
  }
  state.need = need;
  state.lo = lo;
  state.hi = hi;
  return n;
}

// dst[i] = src[i] ^ mask[(phase + i) % 4], 8 bytes at a time; advances `phase`.
void unmask(char* dst, const char* src, size_t n, const uint8_t mask[4], uint8_t& phase) {
  uint8_t key[8];
  for (size_t j = 0; j < 8; ++j) key[j] = mask[(phase + j) & 3];
  uint64_t word;
  std::memcpy(&word, key, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, src + i, 8);
    x ^= word;
    std::memcpy(dst + i, &x, 8);
  }
  for (; i < n; ++i) dst[i] = static_cast<char>(static_cast<uint8_t>(src[i]) ^ key[i & 7]);
  phase = static_cast<uint8_t>((phase + n) & 3);
}

}  // namespace

Decoder::Decoder(uint64_t max_message) : max_message_(max_message) {}

bool Decoder::done() const {
  return done_;
}

size_t Decoder::buffered() const {
  if (done_) return 0;
  return header_have_ + message_.size() + control_.size();
}

bool Decoder::fail(Sink& sink, uint16_t code, std::string_view why) {
  done_ = true;
  sink.on_error(code, why);
  std::string().swap(message_);
  std::string().swap(control_);
  return false;
}

size_t Decoder::feed(std::string_view data, Sink& sink) {
  if (done_) return 0;
  size_t pos = 0;
  while (pos < data.size()) {
    if (!in_payload_) {
      if (!header_byte(static_cast<uint8_t>(data[pos++]), sink)) return pos;
      if (header_have_ != header_need_) continue;
      // The header is complete.
      std::memcpy(mask_, header_ + 2 + extended_, 4);
      mask_phase_ = 0;
      header_have_ = 0;
      header_need_ = 2;
      in_payload_ = true;
      if (opcode_ == Opcode::kText || opcode_ == Opcode::kBinary) {
        in_message_ = true;
        message_text_ = opcode_ == Opcode::kText;
        utf8_ = {};
      }
      control_.clear();
      if (remaining_ == 0 && !finish_frame(sink)) return pos;
      continue;
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - pos));
    const char* src = data.data() + pos;
    if (is_control(opcode_)) {
      const size_t old = control_.size();
      control_.resize(old + take);
      unmask(control_.data() + old, src, take, mask_, mask_phase_);
    } else {
      const size_t old = message_.size();
      message_.resize(old + take);
      char* dst = message_.data() + old;
      unmask(dst, src, take, mask_, mask_phase_);
      if (message_text_) {
        const size_t ok = utf8_scan(utf8_, reinterpret_cast<const unsigned char*>(dst), take);
        if (ok < take) {
          fail(sink, kInvalidPayload, "text message is not valid UTF-8");
          return pos + ok + 1;
        }
      }
    }
    pos += take;
    remaining_ -= take;
    if (remaining_ == 0 && !finish_frame(sink)) return pos;
  }
  return pos;
}

bool Decoder::header_byte(uint8_t b, Sink& sink) {
  header_[header_have_++] = b;
  if (header_have_ == 1) {
    if ((b & 0x70) != 0) return fail(sink, kProtocolError, "reserved bits set");
    const uint8_t op = b & 0x0F;
    switch (op) {
      case 0:
      case 1:
      case 2:
      case 8:
      case 9:
      case 10:
        break;
      default:
        return fail(sink, kProtocolError, "unknown opcode");
    }
    fin_ = (b & 0x80) != 0;
    opcode_ = static_cast<Opcode>(op);
    if (is_control(opcode_)) {
      if (!fin_) return fail(sink, kProtocolError, "fragmented control frame");
    } else if (opcode_ == Opcode::kContinuation) {
      if (!in_message_) {
        return fail(sink, kProtocolError, "continuation frame without a message in progress");
      }
    } else if (in_message_) {
      return fail(sink, kProtocolError, "new message while a fragmented message is in progress");
    }
    return true;
  }
  if (header_have_ == 2) {
    if ((b & 0x80) == 0) return fail(sink, kProtocolError, "unmasked client frame");
    const uint8_t len7 = b & 0x7F;
    extended_ = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    header_need_ = static_cast<uint8_t>(2 + extended_ + 4);
  }
  if (header_have_ == 3 && extended_ == 8 && (b & 0x80) != 0) {
    return fail(sink, kProtocolError, "64-bit payload length with its top bit set");
  }
  if (header_have_ == 2 + extended_) {
    // The payload length is known (a non-minimal encoding of it is accepted).
    uint64_t len = header_[1] & 0x7F;
    if (extended_ != 0) {
      len = 0;
      for (uint8_t i = 0; i < extended_; ++i) len = (len << 8) | header_[2 + i];
    }
    if (is_control(opcode_) && len > 125) {
      return fail(sink, kProtocolError, "control frame payload over 125 bytes");
    }
    if (opcode_ == Opcode::kClose && len == 1) {
      return fail(sink, kProtocolError, "close frame with a 1-byte payload");
    }
    if (!is_control(opcode_) && len > max_message_ - message_.size()) {
      return fail(sink, kTooBig, "message too big");
    }
    remaining_ = len;
  }
  return true;
}

bool Decoder::finish_frame(Sink& sink) {
  in_payload_ = false;
  switch (opcode_) {
    case Opcode::kPing:
      sink.on_ping(control_);
      control_.clear();
      return true;
    case Opcode::kPong:
      sink.on_pong(control_);
      control_.clear();
      return true;
    case Opcode::kClose: {
      const std::string_view payload = control_;
      uint16_t code = kNoCode;
      std::string_view reason;
      if (!payload.empty()) {  // a length of 1 was refused with the header
        code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                     static_cast<uint8_t>(payload[1]));
        if (!valid_close_code(code)) return fail(sink, kProtocolError, "invalid close code");
        reason = payload.substr(2);
        if (!valid_utf8(reason)) return fail(sink, kInvalidPayload, "close reason is not UTF-8");
      }
      done_ = true;
      sink.on_close(code, reason);
      std::string().swap(message_);
      std::string().swap(control_);
      return false;
    }
    default:
      if (!fin_) return true;
      if (message_text_ && utf8_.need != 0) {
        return fail(sink, kInvalidPayload, "text message is not valid UTF-8");
      }
      in_message_ = false;
      sink.on_message(message_text_, message_);
      if (message_.capacity() > kKeepCapacity) {
        std::string().swap(message_);
      } else {
        message_.clear();
      }
      return true;
  }
}

std::string encode_frame(Opcode op, std::string_view payload) {
  const uint64_t n = payload.size();
  std::string out;
  out.reserve(payload.size() + 10);
  out.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(op)));
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>((n >> 8) & 0xFF));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((n >> shift) & 0xFF));
    }
  }
  out.append(payload);
  return out;
}

std::string close_payload(uint16_t code, std::string_view reason) {
  if (code == kNoCode) return {};
  std::string out;
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  size_t n = reason.size();
  if (n > 123) {
    // Cut before the sequence that would not fit whole: back off over continuation bytes.
    n = 123;
    while (n > 0 && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80) --n;
  }
  out.append(reason.substr(0, n));
  return out;
}

bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

bool valid_utf8(std::string_view s) {
  detail::Utf8State state;
  return utf8_scan(state, reinterpret_cast<const unsigned char*>(s.data()), s.size()) == s.size() &&
         state.need == 0;
}

}  // namespace rotor::ws
