// The PROXY protocol header parser (v1 text, v2 binary): what it reads, however the bytes are
// split, and every malformation it refuses.
#include <doctest/doctest.h>

#include <string>

#include "workers/http/proxy_protocol.hpp"

using rotor::http::ProxyAddresses;
using rotor::http::ProxyHeaderParser;
using rotor::http::ProxySniff;
using rotor::http::sniff_proxy_header;
using Result = ProxyHeaderParser::Result;

namespace {

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: version/command, family/transport, then `block` with its length.
std::string v2(uint8_t ver_cmd, uint8_t family, const std::string& block) {
  std::string h = kSig;
  h += static_cast<char>(ver_cmd);
  h += static_cast<char>(family);
  h += static_cast<char>(block.size() >> 8);
  h += static_cast<char>(block.size() & 0xff);
  return h + block;
}

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s += static_cast<char>(b);
  return s;
}

// 192.0.2.1:56324 -> 198.51.100.7:443
const std::string kInetBlock = bytes({192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb});

std::string inet6_block() {
  std::string b(36, '\0');
  b[0] = 0x20, b[1] = 0x01, b[2] = 0x0d, b[3] = static_cast<char>(0xb8), b[15] = 1;  // 2001:db8::1
  b[16] = 0x20, b[17] = 0x01, b[18] = 0x0d, b[19] = static_cast<char>(0xb8), b[31] = 2;
  b[32] = 0x30, b[33] = 0x39, b[34] = 0x00, b[35] = 0x50;  // 12345 -> 80
  return b;
}

struct Outcome {
  Result result;
  size_t used = 0;
  ProxyAddresses addr;
  std::string error;
};

// Feeds `input` whole, then byte by byte: both must agree; the byte-by-byte `used` counts from
// the start of the input.
Outcome parse(const std::string& input) {
  ProxyHeaderParser whole;
  Outcome o;
  o.result = whole.feed(input, &o.used);
  o.addr = whole.addresses();
  o.error = whole.error();
  ProxyHeaderParser split;
  Result r = Result::kNeedMore;
  size_t at = 0;
  while (at < input.size() && r == Result::kNeedMore) {
    size_t used = 0;
    r = split.feed(std::string_view(input).substr(at, 1), &used);
    CHECK(used == 1);
    at += used;
  }
  CHECK(r == o.result);
  if (r != Result::kNeedMore) CHECK(at == o.used);
  CHECK(split.addresses().src_host == o.addr.src_host);
  CHECK(split.addresses().src_port == o.addr.src_port);
  CHECK(std::string(split.error()) == o.error);
  return o;
}

void check_error(const std::string& input, const std::string& why) {
  Outcome o = parse(input);
  CHECK_MESSAGE(o.result == Result::kError, input);
  CHECK(o.error == why);
}

}  // namespace

TEST_CASE("proxy v1: TCP4 names the client and the balancer's address; the request follows") {
  std::string header = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
  Outcome o = parse(header + "GET / HTTP/1.1\r\n");
  REQUIRE(o.result == Result::kDone);
  CHECK(o.used == header.size());
  CHECK(o.addr.relayed);
  CHECK(o.addr.src_host == "192.0.2.1");
  CHECK(o.addr.src_port == 56324);
  CHECK(o.addr.dst_host == "198.51.100.7");
  CHECK(o.addr.dst_port == 443);
}

TEST_CASE("proxy v1: TCP6, ports 0 and 65535") {
  Outcome o = parse("PROXY TCP6 2001:db8::1 ::1 0 65535\r\n");
  REQUIRE(o.result == Result::kDone);
  CHECK(o.addr.src_host == "2001:db8::1");
  CHECK(o.addr.dst_host == "::1");
  CHECK(o.addr.src_port == 0);
  CHECK(o.addr.dst_port == 65535);
}

TEST_CASE("proxy v1: UNKNOWN keeps the connection's own endpoints, whatever follows it") {
  for (std::string h : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
    Outcome o = parse(h + "GET");
    REQUIRE(o.result == Result::kDone);
    CHECK(o.used == h.size());
    CHECK_FALSE(o.addr.relayed);
  }
}

TEST_CASE("proxy v1: the longest line (107 bytes) is read; a longer one is refused") {
  std::string full =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  REQUIRE(full.size() == 104);
  std::string longest = "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n";
  REQUIRE(longest.size() == 107);
  CHECK(parse(full).result == Result::kDone);
  CHECK(parse(longest).result == Result::kDone);
  check_error("PROXY UNKNOWN " + std::string(107 - 15, 'x') + "\r\n",
              "v1 line longer than 107 bytes");
  // No CRLF at all within 107 bytes: refused as soon as the 107th byte is not its end.
  Outcome o = parse("PROXY TCP4 " + std::string(200, '1'));
  CHECK(o.result == Result::kError);
  CHECK(o.used == 107);
}

TEST_CASE("proxy v1: malformed lines are refused") {
  check_error("PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n", "v1 line ends without CRLF");
  check_error("PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n",
              "v1 protocol is not TCP4, TCP6 or UNKNOWN");
  check_error("PROXY \r\n", "v1 protocol is not TCP4, TCP6 or UNKNOWN");
  check_error("PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n",
              "v1 line is not PROTO SRC DST SPORT DPORT");
  check_error("PROXY TCP4 192.0.2.1  198.51.100.7 1 2\r\n",
              "v1 line is not PROTO SRC DST SPORT DPORT");
  check_error("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n",
              "v1 line is not PROTO SRC DST SPORT DPORT");
  check_error("PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n",
              "v1 address is not one of its protocol");
  check_error("PROXY TCP6 192.0.2.1 ::1 1 2\r\n", "v1 address is not one of its protocol");
  check_error("PROXY TCP4 192.0.2.256 198.51.100.7 1 2\r\n",
              "v1 address is not one of its protocol");
  check_error("PROXY TCP4 example.com 198.51.100.7 1 2\r\n",
              "v1 address is not one of its protocol");
  for (const char* port : {"65536", "01", "-1", "1a", "", "123456", "+1"}) {
    check_error(std::string("PROXY TCP4 192.0.2.1 198.51.100.7 ") + port + " 80\r\n",
                "v1 port is not 0..65535");
  }
  check_error("proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n", "no PROXY header");
  check_error("PROXYTCP4", "bad PROXY signature");
}

TEST_CASE("proxy: plain HTTP where a header is expected is refused at its first byte") {
  Outcome o = parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(o.result == Result::kError);
  CHECK(o.used == 1);
  CHECK(o.error == "no PROXY header");
}

TEST_CASE("proxy v2: PROXY over TCP4 and TCP6; the request follows; TLVs are skipped") {
  std::string h4 = v2(0x21, 0x11, kInetBlock);
  Outcome o = parse(h4 + "GET / HTTP/1.1\r\n");
  REQUIRE(o.result == Result::kDone);
  CHECK(o.used == h4.size());
  CHECK(o.addr.relayed);
  CHECK(o.addr.src_host == "192.0.2.1");
  CHECK(o.addr.src_port == 56324);
  CHECK(o.addr.dst_host == "198.51.100.7");
  CHECK(o.addr.dst_port == 443);

  std::string tlvs = bytes({0x04, 0x00, 0x03, 'a', 'b', 'c', 0xea, 0x00, 0x01, 'v'});
  std::string h6 = v2(0x21, 0x21, inet6_block() + tlvs);
  o = parse(h6 + "G");
  REQUIRE(o.result == Result::kDone);
  CHECK(o.used == h6.size());
  CHECK(o.addr.src_host == "2001:db8::1");
  CHECK(o.addr.dst_host == "2001:db8::2");
  CHECK(o.addr.src_port == 12345);
  CHECK(o.addr.dst_port == 80);
}

TEST_CASE("proxy v2: LOCAL, UNSPEC and unix addresses keep the real peer") {
  for (std::string h : {v2(0x20, 0x00, ""), v2(0x20, 0x11, kInetBlock), v2(0x21, 0x00, "xyz"),
                        v2(0x21, 0x10, kInetBlock), v2(0x21, 0x31, std::string(216, 'p'))}) {
    Outcome o = parse(h + "GET");
    REQUIRE(o.result == Result::kDone);
    CHECK(o.used == h.size());
    CHECK_FALSE(o.addr.relayed);
  }
}

TEST_CASE("proxy v2: the longest block is read; a longer one is refused before it is read") {
  std::string longest = v2(0x21, 0x11, kInetBlock + std::string(4096 - 12, '\0'));
  CHECK(parse(longest).result == Result::kDone);
  Outcome o = parse(v2(0x21, 0x11, kInetBlock + std::string(4097 - 12, '\0')));
  CHECK(o.result == Result::kError);
  CHECK(o.error == "v2 length is over 4096 bytes");
  CHECK(o.used == 16);
  check_error(kSig + bytes({0x21, 0x11, 0xff, 0xff}), "v2 length is over 4096 bytes");
}

TEST_CASE("proxy v2: malformed headers are refused") {
  std::string bad_sig = kSig;
  bad_sig[8] = 'X';
  check_error(bad_sig + bytes({0x21, 0x11, 0, 12}) + kInetBlock, "bad PROXY signature");
  check_error(v2(0x11, 0x11, kInetBlock), "v2 version is not 2");
  check_error(v2(0x31, 0x11, kInetBlock), "v2 version is not 2");
  check_error(v2(0x22, 0x11, kInetBlock), "v2 command is not LOCAL or PROXY");
  check_error(v2(0x21, 0x41, kInetBlock), "v2 address family is unknown");
  check_error(v2(0x21, 0x13, kInetBlock), "v2 transport is unknown");
  check_error(v2(0x21, 0x12, kInetBlock), "v2 transport is a datagram, not a stream");
  check_error(v2(0x21, 0x11, kInetBlock.substr(0, 11)), "v2 length is shorter than its addresses");
  check_error(v2(0x21, 0x21, kInetBlock), "v2 length is shorter than its addresses");
  check_error(v2(0x21, 0x31, std::string(215, 'p')), "v2 length is shorter than its addresses");
}

TEST_CASE("proxy: an incomplete header needs more, and uses every byte it was given") {
  for (std::string part : {std::string("PROXY TCP4 192.0.2.1"), std::string("P"), kSig.substr(0, 5),
                           v2(0x21, 0x11, kInetBlock).substr(0, 20)}) {
    Outcome o = parse(part);
    CHECK(o.result == Result::kNeedMore);
    CHECK(o.used == part.size());
  }
}

TEST_CASE("proxy: sniffing a disallowed peer's first bytes") {
  CHECK(sniff_proxy_header("") == ProxySniff::kUndecided);
  CHECK(sniff_proxy_header("PROX") == ProxySniff::kUndecided);
  CHECK(sniff_proxy_header("PROXY ") == ProxySniff::kHeader);
  CHECK(sniff_proxy_header("PROXY TCP4 1.2.3.4") == ProxySniff::kHeader);
  CHECK(sniff_proxy_header("POST / HTTP/1.1") == ProxySniff::kNotHeader);
  CHECK(sniff_proxy_header("PROXYx") == ProxySniff::kNotHeader);
  CHECK(sniff_proxy_header(kSig.substr(0, 11)) == ProxySniff::kUndecided);
  CHECK(sniff_proxy_header(kSig) == ProxySniff::kHeader);
  CHECK(sniff_proxy_header("\r\nGET / HTTP/1.1") == ProxySniff::kNotHeader);
  CHECK(sniff_proxy_header("GET / HTTP/1.1") == ProxySniff::kNotHeader);
}
