// WebSocket (RFC 6455): the handshake's arithmetic (SHA-1, base64, Sec-WebSocket-Accept, header
// checks) and the frame codec (the decoder of client frames, fed whole, split at every byte
// boundary and byte by byte; the encoder of server frames; close payloads; UTF-8).
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "workers/websocket/frame.hpp"
#include "workers/websocket/handshake.hpp"

using rotor::ws::accept_key;
using rotor::ws::base64;
using rotor::ws::close_payload;
using rotor::ws::Decoder;
using rotor::ws::encode_frame;
using rotor::ws::has_token;
using rotor::ws::Opcode;
using rotor::ws::sha1;
using rotor::ws::Sink;
using rotor::ws::valid_client_key;
using rotor::ws::valid_close_code;
using rotor::ws::valid_utf8;

namespace {

constexpr uint64_t kDefaultMax = 16 * 1024 * 1024;

std::string bytes(std::initializer_list<unsigned> list) {
  std::string s;
  for (unsigned b : list) s.push_back(static_cast<char>(b));
  return s;
}

std::string hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    out.push_back(kDigits[static_cast<uint8_t>(c) >> 4]);
    out.push_back(kDigits[static_cast<uint8_t>(c) & 15]);
  }
  return out;
}

std::string repeat(std::string_view unit, size_t times) {
  std::string s;
  for (size_t i = 0; i < times; ++i) s.append(unit);
  return s;
}

// Bytes 0, 1, 2, ... 255, 0, 1, ...: a payload whose every byte differs from its neighbours.
std::string pattern(size_t n) {
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
std::string raw_frame(uint8_t byte0, std::string_view payload, const Build& b = {}) {
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

std::string frame(Opcode op, std::string_view payload, bool fin = true, const Build& b = {}) {
  return raw_frame(static_cast<uint8_t>((fin ? 0x80 : 0) | static_cast<uint8_t>(op)), payload, b);
}

// Writes down every sink call, in order.
class Recorder : public Sink {
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
Result feed_pieces(std::string_view input, const std::vector<size_t>& cuts, uint64_t max) {
  Decoder decoder(max);
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

bool same(const Result& a, const Result& b) {
  return a.log == b.log && a.consumed == b.consumed && a.done == b.done && a.buffered == b.buffered;
}

// Decodes `input` whole, and checks that splitting it in two at every byte boundary (at a sample
// of them for long inputs) and feeding it byte by byte makes the same sink calls and consumes the
// same bytes.
Result decode(std::string_view input, uint64_t max = kDefaultMax) {
  Decoder decoder(max);
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

std::string decode_log(std::string_view input, uint64_t max = kDefaultMax) {
  return decode(input, max).log;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Handshake

TEST_CASE("websocket handshake: RFC 6455's Sec-WebSocket-Accept example") {
  CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(accept_key(" \tdGhlIHNhbXBsZSBub25jZQ== ") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("websocket sha1: FIPS 180 vectors and padding boundaries") {
  CHECK(hex(sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(hex(sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  CHECK(hex(sha1("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                 "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")) ==
        "a49b2446a02c645bf419f995b67091253a04a259");
  CHECK(hex(sha1(std::string(1000000, 'a'))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  // Around the block size: the length fits in the last block (55), or needs another (56..63).
  CHECK(hex(sha1(std::string(55, 'a'))) == "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  CHECK(hex(sha1(std::string(56, 'a'))) == "c2db330f6083854c99d4b5bfb6e8f29f201be699");
  CHECK(hex(sha1(std::string(63, 'a'))) == "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
  CHECK(hex(sha1(std::string(64, 'a'))) == "0098ba824b5c16427bd7a1122a5a442a25ec644d");
  CHECK(hex(sha1(std::string(65, 'a'))) == "11655326c708d70319be2610e8a57d9a5b959d3b");
  CHECK(sha1("abc").size() == 20);
}

TEST_CASE("websocket base64: RFC 4648 vectors and padding") {
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foo") == "Zm9v");
  CHECK(base64("foob") == "Zm9vYg==");
  CHECK(base64("fooba") == "Zm9vYmE=");
  CHECK(base64("foobar") == "Zm9vYmFy");
  CHECK(base64(bytes({0xfb, 0xff})) == "+/8=");
  CHECK(base64(bytes({0xff, 0xff, 0xff})) == "////");
  CHECK(base64(bytes({0x00})) == "AA==");
  CHECK(base64(std::string(16, '\0')) == "AAAAAAAAAAAAAAAAAAAAAA==");
}

TEST_CASE("websocket handshake: Sec-WebSocket-Key validation") {
  CHECK(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  CHECK(valid_client_key("  dGhlIHNhbXBsZSBub25jZQ==\t"));
  CHECK(valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  CHECK(valid_client_key("+/+/+/+/+/+/+/+/+/+/+w=="));
  CHECK_FALSE(valid_client_key(""));
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));     // 23 characters
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ==="));   // 25
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQAA"));    // no padding: 18 bytes
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZ===="));   // padding too early
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j-Q=="));    // base64url's '-'
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBu b25jZQ=="));   // a space inside
  CHECK_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ==\r"));  // only spaces and tabs trimmed
  CHECK_FALSE(valid_client_key("hello"));
}

TEST_CASE("websocket handshake: header tokens") {
  CHECK(has_token("keep-alive, Upgrade", "upgrade"));
  CHECK(has_token("Upgrade", "upgrade"));
  CHECK(has_token("upgrade", "upgrade"));
  CHECK(has_token("UPGRADE", "upgrade"));
  CHECK(has_token(" \tUpgrade\t ,keep-alive", "upgrade"));
  CHECK(has_token("keep-alive,upgrade", "upgrade"));
  CHECK(has_token("a,,  , upgrade ,", "upgrade"));
  CHECK(has_token("websocket", "websocket"));
  CHECK(has_token("WebSocket", "websocket"));
  CHECK_FALSE(has_token("", "upgrade"));
  CHECK_FALSE(has_token("keep-alive", "upgrade"));
  CHECK_FALSE(has_token("upgraded", "upgrade"));
  CHECK_FALSE(has_token("no-upgrade", "upgrade"));
  CHECK_FALSE(has_token("up grade", "upgrade"));
  CHECK_FALSE(has_token("websocket2", "websocket"));
  CHECK_FALSE(has_token("Upgrade", ""));
}

// ---------------------------------------------------------------------------------------------
// Decoder

TEST_CASE("websocket decoder: RFC 6455's example frames") {
  // 5.7: a single-frame masked text message.
  const std::string hello =
      bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  CHECK(hello == frame(Opcode::kText, "Hello"));  // the builder masks as the RFC does
  CHECK(decode_log(hello) == "text [5] Hello\n");

  // A fragmented text message, "Hel" then "lo".
  CHECK(decode_log(frame(Opcode::kText, "Hel", false) + frame(Opcode::kContinuation, "lo")) ==
        "text [5] Hello\n");

  // A ping with a body, and the RFC's masked pong.
  CHECK(decode_log(frame(Opcode::kPing, "Hello")) == "ping [5] Hello\n");
  const std::string pong =
      bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  CHECK(decode_log(pong) == "pong [5] Hello\n");

  // The RFC's unmasked frames are what a server sends: a client must not.
  const std::string unmasked = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
  const Result r = decode(unmasked);
  CHECK(r.log == "error 1002\n");
  CHECK(r.consumed == 2);
}

TEST_CASE("websocket decoder: empty frames and several messages in one feed") {
  const std::string input =
      frame(Opcode::kText, "") + frame(Opcode::kBinary, "") + frame(Opcode::kPing, "") +
      frame(Opcode::kPong, "") + frame(Opcode::kBinary, bytes({0, 1, 0xff})) +
      frame(Opcode::kText, "", false) + frame(Opcode::kContinuation, "", false) +
      frame(Opcode::kContinuation, "ab", false) + frame(Opcode::kContinuation, "");
  const Result r = decode(input);
  CHECK(r.log == "text [0] \nbinary [0] \nping [0] \npong [0] \nbinary [3] " + bytes({0, 1, 0xff}) +
                     "\ntext [2] ab\n");
  CHECK_FALSE(r.done);
  CHECK(r.buffered == 0);
}

TEST_CASE("websocket decoder: masking keys of every shape") {
  Build b;
  for (uint8_t k : {0x00, 0xff, 0x80}) {
    b.key[0] = k;
    b.key[1] = static_cast<uint8_t>(k + 1);
    b.key[2] = static_cast<uint8_t>(~k);
    b.key[3] = 0x5a;
    const std::string payload = pattern(37);
    CHECK(decode_log(frame(Opcode::kBinary, payload, true, b)) == "binary [37] " + payload + "\n");
  }
}

TEST_CASE("websocket decoder: 16-bit and 64-bit lengths") {
  SUBCASE("300 bytes: a 16-bit length") {
    const std::string payload = pattern(300);
    const std::string f = frame(Opcode::kBinary, payload);
    CHECK(static_cast<uint8_t>(f[1]) == (0x80 | 126));
    CHECK(decode_log(f) == "binary [300] " + payload + "\n");
  }
  SUBCASE("65535 and 65536 bytes: the largest 16-bit length and the smallest 64-bit one") {
    for (size_t n : {size_t{65535}, size_t{65536}}) {
      const std::string payload = pattern(n);
      const std::string f = frame(Opcode::kBinary, payload);
      CHECK(static_cast<uint8_t>(f[1]) == (0x80 | (n == 65535 ? 126 : 127)));
      CHECK(decode_log(f) == "binary [" + std::to_string(n) + "] " + payload + "\n");
    }
  }
  SUBCASE("70000 bytes: a 64-bit length") {
    const std::string payload = pattern(70000);
    const std::string f = frame(Opcode::kBinary, payload);
    CHECK(static_cast<uint8_t>(f[1]) == (0x80 | 127));
    CHECK(decode_log(f) == "binary [70000] " + payload + "\n");
  }
  SUBCASE("70000 bytes of multi-byte text over three fragments") {
    const std::string text = repeat("h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e!", 4500);  // 72000
    // Cut inside multi-byte sequences: the UTF-8 check carries over fragments.
    const std::string input = frame(Opcode::kText, text.substr(0, 2), false) +
                              frame(Opcode::kContinuation, text.substr(2, 30000), false) +
                              frame(Opcode::kContinuation, text.substr(30002));
    CHECK(decode_log(input) == "text [72000] " + text + "\n");
  }
  SUBCASE("non-minimal length encodings are accepted") {
    CHECK(decode_log(frame(Opcode::kText, "Hi", true, {.length_bytes = 2})) == "text [2] Hi\n");
    CHECK(decode_log(frame(Opcode::kText, "Hi", true, {.length_bytes = 8})) == "text [2] Hi\n");
    CHECK(decode_log(frame(Opcode::kPing, "", true, {.length_bytes = 8})) == "ping [0] \n");
    CHECK(decode_log(frame(Opcode::kPong, "x", true, {.length_bytes = 2})) == "pong [1] x\n");
    CHECK(decode_log(frame(Opcode::kClose, close_payload(1000, "r"), true, {.length_bytes = 8})) ==
          "close 1000 [1] r\n");
    CHECK(decode_log(frame(Opcode::kBinary, pattern(300), true, {.length_bytes = 8})) ==
          "binary [300] " + pattern(300) + "\n");
  }
}

TEST_CASE("websocket decoder: control frames between fragments") {
  SUBCASE("a ping between fragments") {
    const std::string input = frame(Opcode::kText, "Hel", false) + frame(Opcode::kPing, "p1") +
                              frame(Opcode::kContinuation, "lo");
    const Result r = decode(input);
    CHECK(r.log == "ping [2] p1\ntext [5] Hello\n");
    CHECK(r.buffered == 0);
  }
  SUBCASE("pings and pongs between every fragment of a binary message") {
    const std::string input = frame(Opcode::kPing, "a") + frame(Opcode::kBinary, "1", false) +
                              frame(Opcode::kPong, "") + frame(Opcode::kContinuation, "2", false) +
                              frame(Opcode::kPing, std::string(125, 'z')) +
                              frame(Opcode::kContinuation, "3") + frame(Opcode::kPong, "b");
    CHECK(decode_log(input) == "ping [1] a\npong [0] \nping [125] " + std::string(125, 'z') +
                                   "\nbinary [3] 123\npong [1] b\n");
  }
  SUBCASE("a close in the middle of a fragmented message") {
    const std::string input = frame(Opcode::kText, "Hel", false) +
                              frame(Opcode::kClose, close_payload(1001, "going")) +
                              frame(Opcode::kContinuation, "lo");
    const Result r = decode(input);
    CHECK(r.log == "close 1001 [5] going\n");
    CHECK(r.done);
    CHECK(r.consumed == input.size() - frame(Opcode::kContinuation, "lo").size());
  }
}

TEST_CASE("websocket decoder: close frames") {
  SUBCASE("no payload: code 1005") {
    const Result r = decode(frame(Opcode::kClose, ""));
    CHECK(r.log == "close 1005 [0] \n");
    CHECK(r.done);
    CHECK(r.buffered == 0);
  }
  SUBCASE("a code without a reason") {
    CHECK(decode_log(frame(Opcode::kClose, bytes({0x03, 0xe8}))) == "close 1000 [0] \n");
  }
  SUBCASE("a code and a UTF-8 reason") {
    CHECK(decode_log(frame(Opcode::kClose, bytes({0x0f, 0xa0}) + "bye \xc3\xa9")) ==
          "close 4000 [6] bye \xc3\xa9\n");
  }
  SUBCASE("the largest close payload") {
    const std::string reason(123, 'r');
    CHECK(decode_log(frame(Opcode::kClose, close_payload(1000, reason))) ==
          "close 1000 [123] " + reason + "\n");
  }
  SUBCASE("every valid code is reported") {
    for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                          3000, 3999, 4000, 4999}) {
      CHECK(decode_log(frame(Opcode::kClose, close_payload(code, "x"))) ==
            "close " + std::to_string(code) + " [1] x\n");
    }
  }
  SUBCASE("what follows the close frame is not consumed") {
    const std::string close = frame(Opcode::kClose, close_payload(1000, ""));
    const Result r = decode(close + frame(Opcode::kText, "after") + "garbage");
    CHECK(r.log == "close 1000 [0] \n");
    CHECK(r.consumed == close.size());
  }
}

TEST_CASE("websocket decoder: protocol errors (1002)") {
  auto error = [](std::string_view input, uint64_t max = kDefaultMax) {
    const Result r = decode(input, max);
    CHECK(r.done);
    CHECK(r.buffered == 0);
    return r.log;
  };
  SUBCASE("reserved bits") {
    for (uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
      CHECK(error(raw_frame(static_cast<uint8_t>(0x81 | rsv), "Hello")) == "error 1002\n");
      CHECK(error(raw_frame(static_cast<uint8_t>(0x89 | rsv), "")) == "error 1002\n");
    }
    // Reported on the first byte: nothing after it is consumed.
    CHECK(decode(raw_frame(0xC1, "Hello")).consumed == 1);
  }
  SUBCASE("unknown opcodes") {
    for (uint8_t op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
      CHECK(error(raw_frame(static_cast<uint8_t>(0x80 | op), "x")) == "error 1002\n");
      CHECK(error(raw_frame(op, "x")) == "error 1002\n");
    }
  }
  SUBCASE("unmasked frames") {
    CHECK(error(frame(Opcode::kText, "Hello", true, {.masked = false})) == "error 1002\n");
    CHECK(error(frame(Opcode::kPing, "", true, {.masked = false})) == "error 1002\n");
    CHECK(error(frame(Opcode::kClose, "", true, {.masked = false})) == "error 1002\n");
    CHECK(error(frame(Opcode::kText, "a") + frame(Opcode::kText, "b", true, {.masked = false})) ==
          "text [1] a\nerror 1002\n");
  }
  SUBCASE("control frames over 125 bytes") {
    CHECK(error(frame(Opcode::kPing, std::string(126, 'p'))) == "error 1002\n");
    CHECK(error(frame(Opcode::kPong, std::string(126, 'p'))) == "error 1002\n");
    CHECK(error(frame(Opcode::kClose, close_payload(1000, "") + std::string(124, 'c'))) ==
          "error 1002\n");
    // Reported once the length is read, before the masking key and the payload.
    CHECK(decode(frame(Opcode::kPing, std::string(126, 'p'))).consumed == 4);
  }
  SUBCASE("fragmented control frames") {
    CHECK(error(frame(Opcode::kPing, "x", false)) == "error 1002\n");
    CHECK(error(frame(Opcode::kPong, "", false)) == "error 1002\n");
    CHECK(error(frame(Opcode::kClose, "", false)) == "error 1002\n");
    CHECK(error(frame(Opcode::kText, "a", false) + frame(Opcode::kPing, "x", false)) ==
          "error 1002\n");
  }
  SUBCASE("continuation without a message in progress") {
    CHECK(error(frame(Opcode::kContinuation, "lo")) == "error 1002\n");
    CHECK(error(frame(Opcode::kContinuation, "lo", false)) == "error 1002\n");
    CHECK(error(frame(Opcode::kText, "Hello") + frame(Opcode::kContinuation, "!")) ==
          "text [5] Hello\nerror 1002\n");
  }
  SUBCASE("a new message while a fragmented one is in progress") {
    CHECK(error(frame(Opcode::kText, "Hel", false) + frame(Opcode::kText, "lo")) == "error 1002\n");
    CHECK(error(frame(Opcode::kBinary, "a", false) + frame(Opcode::kPing, "") +
                frame(Opcode::kBinary, "b", false)) == "ping [0] \nerror 1002\n");
    CHECK(error(frame(Opcode::kText, "a", false) + frame(Opcode::kBinary, "b")) == "error 1002\n");
  }
  SUBCASE("a 64-bit length with its most significant bit set") {
    const std::string f = frame(Opcode::kBinary, "", true, {.declared = 0x8000000000000005ULL});
    CHECK(error(f) == "error 1002\n");
    CHECK(error(frame(Opcode::kBinary, "", true, {.declared = UINT64_MAX - 1})) == "error 1002\n");
    CHECK(decode(f).consumed == 3);  // reported on the first length byte
  }
  SUBCASE("a close payload of one byte") {
    CHECK(error(frame(Opcode::kClose, "\x03")) == "error 1002\n");
  }
  SUBCASE("close codes that must not be sent") {
    for (uint16_t code : {0, 999, 1004, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
      CHECK_MESSAGE(error(frame(Opcode::kClose, close_payload(code, ""))) == "error 1002\n",
                    "code ", code);
    }
    // 1005 through close_payload is the empty payload: write it by hand.
    CHECK(error(frame(Opcode::kClose, bytes({0x03, 0xed}))) == "error 1002\n");
    CHECK(error(frame(Opcode::kClose, bytes({0x03, 0xee, 'x'}))) == "error 1002\n");
  }
}

TEST_CASE("websocket decoder: invalid UTF-8 (1007)") {
  auto log = [](std::string_view input) { return decode_log(input); };
  SUBCASE("in a single-frame text message") {
    CHECK(log(frame(Opcode::kText, "ab\xff")) == "error 1007\n");
    CHECK(log(frame(Opcode::kText, "\xc0\x80")) == "error 1007\n");          // overlong NUL
    CHECK(log(frame(Opcode::kText, "\xed\xa0\x80")) == "error 1007\n");      // a surrogate
    CHECK(log(frame(Opcode::kText, "\xf4\x90\x80\x80")) == "error 1007\n");  // past U+10FFFF
    CHECK(log(frame(Opcode::kText, "Hello \xe2\x82")) == "error 1007\n");    // truncated at the end
    CHECK(log(frame(Opcode::kText, pattern(300))) == "error 1007\n");
  }
  SUBCASE("in a fragmented text message") {
    CHECK(log(frame(Opcode::kText, "Hel", false) + frame(Opcode::kContinuation, "\x80lo")) ==
          "error 1007\n");
    // The message ends in the middle of a sequence.
    CHECK(log(frame(Opcode::kText, "a\xe2", false) + frame(Opcode::kContinuation, "\x82")) ==
          "error 1007\n");
    // A sequence split over fragments is fine.
    CHECK(log(frame(Opcode::kText, "a\xe2", false) + frame(Opcode::kContinuation, "\x82", false) +
              frame(Opcode::kContinuation,
                    "\xac"
                    "b")) ==
          "text [5] a\xe2\x82\xac"
          "b\n");
    // Nor does a ping between the halves of a sequence disturb it.
    CHECK(log(frame(Opcode::kText, "\xc3", false) + frame(Opcode::kPing, "\xff") +
              frame(Opcode::kContinuation, "\xa9")) == "ping [1] \xff\ntext [2] \xc3\xa9\n");
  }
  SUBCASE("reported as soon as the bad byte arrives, before the message ends") {
    const std::string first = frame(Opcode::kText, "ok \xc3\x28 and more", false);
    Decoder decoder;
    Recorder sink;
    const size_t consumed = decoder.feed(first, sink);
    CHECK(sink.log == "error 1007\n");
    CHECK(decoder.done());
    CHECK(consumed == first.size() - std::string_view(" and more").size());
  }
  SUBCASE("binary messages and pings are not checked") {
    CHECK(log(frame(Opcode::kBinary, "\xff\xfe")) == "binary [2] \xff\xfe\n");
    CHECK(log(frame(Opcode::kPong, "\xff")) == "pong [1] \xff\n");
  }
  SUBCASE("in a close reason") {
    CHECK(log(frame(Opcode::kClose, close_payload(1000, "") + "\xc3")) == "error 1007\n");
    CHECK(log(frame(Opcode::kClose, close_payload(1000, "") + "\xed\xbf\xbf")) == "error 1007\n");
  }
}

TEST_CASE("websocket decoder: message size limit (1009)") {
  SUBCASE("a single frame over the limit is refused from its header") {
    const Result r = decode(frame(Opcode::kBinary, std::string(101, 'x')), 100);
    CHECK(r.log == "error 1009\n");
    CHECK(r.consumed == 2);  // the length byte, before the masking key and the payload
    CHECK(decode_log(frame(Opcode::kText, std::string(100, 'x')), 100) ==
          "text [100] " + std::string(100, 'x') + "\n");
  }
  SUBCASE("a huge declared length, without its payload") {
    Decoder decoder;
    Recorder sink;
    const std::string header =
        frame(Opcode::kBinary, "", true, {.declared = uint64_t{1} << 40}).substr(0, 10);
    CHECK(decoder.feed(header, sink) == 10);
    CHECK(sink.log == "error 1009\n");
    CHECK(decoder.buffered() == 0);
  }
  SUBCASE("a 16-bit length over the limit") {
    const Result r = decode(frame(Opcode::kBinary, std::string(300, 'x')), 299);
    CHECK(r.log == "error 1009\n");
    CHECK(r.consumed == 4);
  }
  SUBCASE("fragments adding up to more than the limit") {
    const std::string input = frame(Opcode::kText, std::string(60, 'a'), false) +
                              frame(Opcode::kPing, "") +
                              frame(Opcode::kContinuation, std::string(40, 'b'), false) +
                              frame(Opcode::kContinuation, "c");
    CHECK(decode_log(input, 100) == "ping [0] \nerror 1009\n");
    CHECK(decode_log(input, 101) ==
          "ping [0] \ntext [101] " + std::string(60, 'a') + std::string(40, 'b') + "c\n");
  }
  SUBCASE("the limit is per message") {
    const std::string input = frame(Opcode::kBinary, std::string(80, 'a')) +
                              frame(Opcode::kBinary, std::string(30, 'b'), false) +
                              frame(Opcode::kContinuation, std::string(70, 'c'));
    CHECK(decode_log(input, 100) == "binary [80] " + std::string(80, 'a') + "\nbinary [100] " +
                                        std::string(30, 'b') + std::string(70, 'c') + "\n");
  }
}

TEST_CASE("websocket decoder: buffered bytes") {
  Decoder decoder;
  Recorder sink;
  const std::string f = frame(Opcode::kText, "Hel", false);
  CHECK(decoder.buffered() == 0);
  CHECK(decoder.feed(f.substr(0, 3), sink) == 3);  // part of the header
  CHECK(decoder.buffered() == 3);
  CHECK(decoder.feed(f.substr(3), sink) == f.size() - 3);
  CHECK(decoder.buffered() == 3);  // the first fragment, held for its message
  const std::string ping = frame(Opcode::kPing, "abcd");
  CHECK(decoder.feed(ping.substr(0, ping.size() - 1), sink) == ping.size() - 1);
  CHECK(decoder.buffered() == 3 + 3);  // and three bytes of the ping's payload
  CHECK(decoder.feed(ping.substr(ping.size() - 1) + frame(Opcode::kContinuation, "lo"), sink) ==
        1 + 8);
  CHECK(decoder.buffered() == 0);
  CHECK(sink.log == "ping [4] abcd\ntext [5] Hello\n");
  CHECK(decoder.feed("", sink) == 0);
  CHECK_FALSE(decoder.done());
}

// ---------------------------------------------------------------------------------------------
// Encoder

TEST_CASE("websocket encode_frame: headers for every length form") {
  // RFC 6455 5.7's unmasked frames.
  CHECK(encode_frame(Opcode::kText, "Hello") == bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  CHECK(encode_frame(Opcode::kPing, "Hello") == bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  CHECK(encode_frame(Opcode::kClose, "") == bytes({0x88, 0x00}));
  CHECK(encode_frame(Opcode::kPong, "") == bytes({0x8a, 0x00}));

  const std::string p125 = pattern(125);
  CHECK(encode_frame(Opcode::kBinary, p125) == bytes({0x82, 125}) + p125);
  const std::string p126 = pattern(126);
  CHECK(encode_frame(Opcode::kBinary, p126) == bytes({0x82, 126, 0x00, 0x7e}) + p126);
  const std::string p256 = pattern(256);  // the RFC's 256-byte example header
  CHECK(encode_frame(Opcode::kBinary, p256) == bytes({0x82, 0x7e, 0x01, 0x00}) + p256);
  const std::string p65535 = pattern(65535);
  CHECK(encode_frame(Opcode::kBinary, p65535) == bytes({0x82, 126, 0xff, 0xff}) + p65535);
  const std::string p65536 = pattern(65536);  // the RFC's 64 KiB example header
  CHECK(encode_frame(Opcode::kBinary, p65536) ==
        bytes({0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}) + p65536);
  const std::string p70000 = pattern(70000);
  CHECK(encode_frame(Opcode::kText, p70000) ==
        bytes({0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70}) + p70000);
}

TEST_CASE("websocket encode_frame: what the server sends, masked, decodes back") {
  // A server frame becomes a client frame by setting MASK, inserting a key and masking.
  auto as_client = [](const std::string& server) {
    const uint8_t len7 = static_cast<uint8_t>(server[1]) & 0x7f;
    const size_t header = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
    const uint8_t key[4] = {0xa1, 0x02, 0xf3, 0x44};
    std::string out = server.substr(0, header);
    out[1] = static_cast<char>(server[1] | 0x80);
    for (uint8_t k : key) out.push_back(static_cast<char>(k));
    for (size_t i = header; i < server.size(); ++i) {
      out.push_back(static_cast<char>(static_cast<uint8_t>(server[i]) ^ key[(i - header) % 4]));
    }
    return out;
  };
  for (size_t n : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{1000}}) {
    const std::string payload = pattern(n);
    CHECK(decode_log(as_client(encode_frame(Opcode::kBinary, payload))) ==
          "binary [" + std::to_string(n) + "] " + payload + "\n");
  }
  CHECK(decode_log(as_client(encode_frame(Opcode::kClose, close_payload(1011, "oops")))) ==
        "close 1011 [4] oops\n");
}

TEST_CASE("websocket close_payload: code and reason, truncated whole") {
  CHECK(close_payload(1005, "ignored") == "");
  CHECK(close_payload(1000, "") == bytes({0x03, 0xe8}));
  CHECK(close_payload(1000, "bye") == bytes({0x03, 0xe8}) + "bye");
  CHECK(close_payload(4999, "") == bytes({0x13, 0x87}));

  // ASCII: cut at 123 bytes of reason.
  const std::string ascii = close_payload(1011, std::string(200, 'x'));
  CHECK(ascii.size() == 125);
  CHECK(ascii == bytes({0x03, 0xf3}) + std::string(123, 'x'));
  CHECK(close_payload(1000, std::string(123, 'x')).size() == 125);
  CHECK(close_payload(1000, std::string(122, 'x')).size() == 124);

  // Two-byte characters: byte 123 would be the second half of one, so 122 bytes of reason.
  const std::string two = close_payload(1000, repeat("\xc3\xa9", 100));
  CHECK(two.size() == 124);
  CHECK(two.substr(2) == repeat("\xc3\xa9", 61));
  // Three-byte characters: 41 of them fit exactly.
  const std::string three = close_payload(1000, repeat("\xe2\x82\xac", 50));
  CHECK(three.size() == 125);
  CHECK(three.substr(2) == repeat("\xe2\x82\xac", 41));
  // Four-byte characters: 30 of them (120 bytes); a 31st would end at 124.
  const std::string four = close_payload(1000, repeat("\xf0\x9d\x84\x9e", 40));
  CHECK(four.size() == 122);
  CHECK(four.substr(2) == repeat("\xf0\x9d\x84\x9e", 30));
  // Mixed, every offset of a four-byte character around the cut.
  for (size_t lead = 118; lead <= 124; ++lead) {
    const std::string p =
        close_payload(1000, std::string(lead, 'a') + repeat("\xf0\x9d\x84\x9e", 3));
    CHECK(p.size() <= 125);
    CHECK(valid_utf8(p.substr(2)));
    CHECK(p.size() >= 122);
  }
}

TEST_CASE("websocket valid_close_code") {
  for (unsigned code = 0; code <= 65535; ++code) {
    const bool expected = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                          (code >= 3000 && code <= 4999);
    if (valid_close_code(static_cast<uint16_t>(code)) != expected) {
      FAIL_CHECK("close code ", code);
    }
  }
  CHECK(valid_close_code(1000));
  CHECK(valid_close_code(1011));
  CHECK(valid_close_code(3000));
  CHECK(valid_close_code(4999));
  CHECK_FALSE(valid_close_code(1004));
  CHECK_FALSE(valid_close_code(1005));
  CHECK_FALSE(valid_close_code(1006));
  CHECK_FALSE(valid_close_code(1015));
  CHECK_FALSE(valid_close_code(2999));
  CHECK_FALSE(valid_close_code(5000));
}

TEST_CASE("websocket valid_utf8") {
  // Valid: ASCII, every length of sequence, the boundaries of each range.
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("Hello, world"));
  CHECK(valid_utf8(std::string(1, '\0')));
  CHECK(valid_utf8("\x7f"));
  CHECK(valid_utf8("\xc2\x80"));          // U+0080
  CHECK(valid_utf8("\xc3\xa9"));          // é
  CHECK(valid_utf8("\xdf\xbf"));          // U+07FF
  CHECK(valid_utf8("\xe0\xa0\x80"));      // U+0800
  CHECK(valid_utf8("\xe2\x82\xac"));      // €
  CHECK(valid_utf8("\xed\x9f\xbf"));      // U+D7FF, just below the surrogates
  CHECK(valid_utf8("\xee\x80\x80"));      // U+E000, just above them
  CHECK(valid_utf8("\xef\xbf\xbf"));      // U+FFFF
  CHECK(valid_utf8("\xf0\x90\x80\x80"));  // U+10000
  CHECK(valid_utf8("\xf0\x9d\x84\x9e"));  // 𝄞
  CHECK(valid_utf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
  CHECK(valid_utf8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"));  // κόσμε
  CHECK(valid_utf8(repeat("abcdefgh", 10) + "\xc3\xa9" + repeat("12345678", 3)));

  // Overlongs.
  CHECK_FALSE(valid_utf8("\xc0\x80"));
  CHECK_FALSE(valid_utf8("\xc1\xbf"));
  CHECK_FALSE(valid_utf8("\xe0\x80\x80"));
  CHECK_FALSE(valid_utf8("\xe0\x9f\xbf"));
  CHECK_FALSE(valid_utf8("\xf0\x80\x80\x80"));
  CHECK_FALSE(valid_utf8("\xf0\x8f\xbf\xbf"));
  // Surrogates.
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));
  CHECK_FALSE(valid_utf8("\xed\xbf\xbf"));
  CHECK_FALSE(valid_utf8("\xed\xa0\x80\xed\xb0\x80"));  // a CESU-8 pair
  // Past U+10FFFF.
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));
  CHECK_FALSE(valid_utf8("\xf5\x80\x80\x80"));
  CHECK_FALSE(valid_utf8("\xf7\xbf\xbf\xbf"));
  CHECK_FALSE(valid_utf8("\xf8\x88\x80\x80\x80"));
  // Bytes that never appear.
  CHECK_FALSE(valid_utf8("\xfe"));
  CHECK_FALSE(valid_utf8("\xff"));
  // Stray continuation bytes.
  CHECK_FALSE(valid_utf8("\x80"));
  CHECK_FALSE(valid_utf8("a\xbf"));
  CHECK_FALSE(valid_utf8("\xc3\xa9\xa9"));
  // Truncated sequences, at the end or followed by something else.
  CHECK_FALSE(valid_utf8("\xc3"));
  CHECK_FALSE(valid_utf8("\xe2\x82"));
  CHECK_FALSE(valid_utf8("\xf0\x9d\x84"));
  CHECK_FALSE(
      valid_utf8("\xc3"
                 "A"));
  CHECK_FALSE(
      valid_utf8("\xe2\x82"
                 "A"));
  CHECK_FALSE(valid_utf8("\xf0\x9d\x84\xc3\xa9"));
  CHECK_FALSE(valid_utf8(repeat("abcdefgh", 4) + "\xe2"));
  CHECK_FALSE(valid_utf8(repeat("abcdefgh", 4) + "\x80" + repeat("abcdefgh", 4)));
}
