// The WebSocket decoder of client frames (RFC 6455 section 5), each input fed whole, split at every
// byte boundary and byte by byte: lengths, masks, fragments, close frames, and the errors that
// close a session (1002, 1007, 1009).
#include <doctest/doctest.h>

#include <string>

#include "websocket_frames.hpp"
#include "workers/websocket/frame.hpp"

using rotor::test::Build;
using rotor::test::bytes;
using rotor::test::decode;
using rotor::test::decode_log;
using rotor::test::frame;
using rotor::test::kDefaultMax;
using rotor::test::pattern;
using rotor::test::raw_frame;
using rotor::test::Recorder;
using rotor::test::repeat;
using rotor::test::Result;
using rotor::ws::close_payload;
using rotor::ws::Decoder;
using rotor::ws::Opcode;

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
