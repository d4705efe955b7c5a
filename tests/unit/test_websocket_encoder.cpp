// What the WebSocket server sends (frames in every length form, close payloads) and the checks it
// applies to close codes and UTF-8 text.
#include <doctest/doctest.h>

#include <string>

#include "websocket_frames.hpp"
#include "workers/websocket/frame.hpp"

using rotor::test::bytes;
using rotor::test::decode_log;
using rotor::test::frame;
using rotor::test::pattern;
using rotor::test::repeat;
using rotor::ws::close_payload;
using rotor::ws::encode_frame;
using rotor::ws::Opcode;
using rotor::ws::valid_close_code;
using rotor::ws::valid_utf8;

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
