// Client frames for the WebSocket codec's tests: built byte by byte as a client sends them, and
// decoded whole, split at every byte boundary and byte by byte, with every sink call written down.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "workers/websocket/frame.hpp"

namespace rotor::test {

inline constexpr uint64_t kDefaultMax = 16 * 1024 * 1024;

inline std::string bytes(std::initializer_list<unsigned> list) {
  std::string s;
  for (unsigned b : list) s.push_back(static_cast<char>(b));
  return s;
}

inline std::string hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    out.push_back(kDigits[static_cast<uint8_t>(c) >> 4]);
    out.push_back(kDigits[static_cast<uint8_t>(c) & 15]);
  }
  return out;
}

inline std::string repeat(std::string_view unit, size_t times) {
  std::string s;
  for (size_t i = 0; i < times; ++i) s.append(unit);
  return s;
}

// Bytes 0, 1, 2, ... 255, 0, 1, ...: a payload whose every byte differs from its neighbours.
inline std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + i / 256);
  return s;
}

// How a test client frame is built.
struct Build {
  bool masked = true;
  int length_bytes = 0;  // 0: the minimal encoding; 1, 2 or 8 force the 7, 16 or 64-bit form
  uint64_t declared = UINT64_MAX;  // the length the header claims (default: the payload's)
  uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};  // RFC 6455 section 5.7's masking key
};

// A frame as a client sends it: `byte0` (FIN, RSV, opcode), then MASK and the length, the masking
// key and the masked payload.
inline std::string raw_frame(uint8_t byte0, std::string_view payload, const Build& b = {}) {
  const uint64_t len = b.declared == UINT64_MAX ? payload.size() : b.declared;
  int form = b.length_bytes;
  if (form == 0) form = len < 126 ? 1 : len <= 0xFFFF ? 2 : 8;
  std::string out;
  out.push_back(static_cast<char>(byte0));
  const uint8_t mask_bit = b.masked ? 0x80 : 0;
  if (form == 1) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else {
    out.push_back(static_cast<char>(mask_bit | (form == 2 ? 126 : 127)));
    for (int i = form - 1; i >= 0; --i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  }
  if (b.masked) {
    for (uint8_t k : b.key) out.push_back(static_cast<char>(k));
  }
  for (size_t i = 0; i < payload.size(); ++i) {
    const uint8_t k = b.masked ? b.key[i % 4] : 0;
    out.push_back(static_cast<char>(static_cast<uint8_t>(payload[i]) ^ k));
  }
  return out;
}

inline std::string frame(ws::Opcode op, std::string_view payload, bool fin = true,
                         const Build& b = {}) {
  return raw_frame(static_cast<uint8_t>((fin ? 0x80 : 0) | static_cast<uint8_t>(op)), payload, b);
}

// Writes down every sink call, in order.
class Recorder : public ws::Sink {
 public:
  std::string log;
  std::string why;

  void on_message(bool text, std::string_view data) override {
    add(text ? "text" : "binary", data);
  }
  void on_ping(std::string_view payload) override { add("ping", payload); }
  void on_pong(std::string_view payload) override { add("pong", payload); }
  void on_close(uint16_t code, std::string_view reason) override {
    add("close " + std::to_string(code), reason);
  }
  void on_error(uint16_t close_code, std::string_view reason) override {
    log += "error " + std::to_string(close_code) + "\n";
    why = reason;
  }

 private:
  void add(const std::string& what, std::string_view data) {
    log += what + " [" + std::to_string(data.size()) + "] ";
    log.append(data);
    log += "\n";
  }
};

struct Result {
  std::string log;
  size_t consumed = 0;
  bool done = false;
  size_t buffered = 0;
};

// Feeds `input` in pieces ending at `cuts` (then the rest).
inline Result feed_pieces(std::string_view input, const std::vector<size_t>& cuts, uint64_t max) {
  ws::Decoder decoder(max);
  Recorder sink;
  Result r;
  size_t start = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : input.size();
    r.consumed += decoder.feed(input.substr(start, end - start), sink);
    start = end;
  }
  r.log = sink.log;
  r.done = decoder.done();
  r.buffered = decoder.buffered();
  return r;
}

inline bool same(const Result& a, const Result& b) {
  return a.log == b.log && a.consumed == b.consumed && a.done == b.done && a.buffered == b.buffered;
}

// Decodes `input` whole, and checks that splitting it in two at every byte boundary (at a sample
// of them for long inputs) and feeding it byte by byte makes the same sink calls and consumes the
// same bytes.
inline Result decode(std::string_view input, uint64_t max = kDefaultMax) {
  ws::Decoder decoder(max);
  Recorder sink;
  Result whole;
  whole.consumed = decoder.feed(input, sink);
  whole.done = decoder.done();
  whole.buffered = decoder.buffered();
  whole.log = sink.log;
  if (!whole.done) {
    CHECK(whole.consumed == input.size());
  }
  if (whole.done) {
    // Once done, nothing more is consumed nor reported.
    CHECK(decoder.feed(input, sink) == 0);
    CHECK(decoder.feed("\x81\x80xxxx", sink) == 0);
    CHECK(sink.log == whole.log);
  }

  for (size_t k = 0; k <= input.size(); ++k) {
    if (input.size() > 600 && k > 40 && k + 40 < input.size() && k % 997 != 0) continue;
    const Result split = feed_pieces(input, {k}, max);
    CHECK_MESSAGE(same(split, whole), "split at ", k, " of ", input.size());
  }
  std::vector<size_t> every;
  for (size_t k = 1; k < input.size(); ++k) every.push_back(k);
  const Result bytewise = feed_pieces(input, every, max);
  CHECK_MESSAGE(same(bytewise, whole), "byte by byte");
  return whole;
}

inline std::string decode_log(std::string_view input, uint64_t max = kDefaultMax) {
  return decode(input, max).log;
}

}  // namespace rotor::test
