// WebSocket (RFC 6455) handshake arithmetic: SHA-1, base64, Sec-WebSocket-Accept, the key check
// and header tokens.
#include <doctest/doctest.h>

#include <string>

#include "websocket_frames.hpp"
#include "workers/websocket/handshake.hpp"

using rotor::test::bytes;
using rotor::test::hex;
using rotor::ws::accept_key;
using rotor::ws::base64;
using rotor::ws::has_token;
using rotor::ws::sha1;
using rotor::ws::valid_client_key;

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
