#include "workers/http/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <vector>

namespace rotor::http {

namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr size_t kV2Fixed = 16;  // signature, version and command, family, length

// v2's address blocks (section 2.2): IPv4 and IPv6 are kept, unix paths are not used.
constexpr size_t kInetBlock = 12;
constexpr size_t kInet6Block = 36;
constexpr size_t kUnixBlock = 216;

bool is_prefix(std::string_view start, std::string_view of) {
  return of.substr(0, std::min(start.size(), of.size())) == start.substr(0, of.size());
}

// A v1 port: decimal, 0..65535, without leading zeros (the spec forbids them).
bool parse_port(std::string_view text, int* port) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *port = value;
  return value <= 65535;
}

// A v1 address of `family`, in the text inet_pton reads back (so the scope gets it as sent).
bool parse_address(std::string_view text, int family, std::string* out) {
  char buf[INET6_ADDRSTRLEN];
  unsigned char bytes[16];
  if (text.empty() || text.size() >= sizeof buf) return false;
  text.copy(buf, text.size());
  buf[text.size()] = '\0';
  if (inet_pton(family, buf, bytes) != 1) return false;
  out->assign(text);
  return true;
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    size_t space = line.find(' ');
    fields.push_back(line.substr(0, space));
    if (space == std::string_view::npos) return fields;
    line.remove_prefix(space + 1);
  }
}

std::string address_text(int family, const char* bytes) {
  char buf[INET6_ADDRSTRLEN] = "";
  inet_ntop(family, bytes, buf, sizeof buf);
  return buf;
}

int port_at(const std::string& b, size_t at) {
  return (static_cast<uint8_t>(b[at]) << 8) | static_cast<uint8_t>(b[at + 1]);
}

}  // namespace

ProxyHeaderParser::Result ProxyHeaderParser::feed(std::string_view data, size_t* used) {
  *used = 0;
  for (size_t i = 0; i < data.size() && state_ != State::kDone && state_ != State::kError; ++i) {
    state_ = step(data[i]);
    *used = i + 1;
  }
  if (state_ == State::kDone) return Result::kDone;
  return state_ == State::kError ? Result::kError : Result::kNeedMore;
}

ProxyHeaderParser::State ProxyHeaderParser::fail(const char* why) {
  error_ = why;
  return State::kError;
}

ProxyHeaderParser::State ProxyHeaderParser::step(char c) {
  switch (state_) {
    case State::kStart:
      return start(c);
    case State::kV1:
      buf_ += c;
      if (c == '\n') {
        if (buf_[buf_.size() - 2] != '\r') return fail("v1 line ends without CRLF");
        return v1_line();
      }
      if (buf_.size() >= kProxyV1MaxLine) return fail("v1 line longer than 107 bytes");
      return State::kV1;
    case State::kV2Fixed:
      buf_ += c;
      return buf_.size() < kV2Fixed ? State::kV2Fixed : v2_fixed();
    case State::kV2Block:
      if (buf_.size() < kV2Fixed + kInet6Block) buf_ += c;  // TLVs are skipped
      return ++block_seen_ < block_len_ ? State::kV2Block : v2_done();
    case State::kDone:
    case State::kError:
      break;
  }
  return state_;
}

// The signature, byte by byte: "PROXY " for v1, the 12 binary bytes for v2.
ProxyHeaderParser::State ProxyHeaderParser::start(char c) {
  buf_ += c;
  if (is_prefix(buf_, kV1Prefix)) return buf_.size() == kV1Prefix.size() ? State::kV1 : state_;
  if (is_prefix(buf_, kV2Signature)) {
    return buf_.size() == kV2Signature.size() ? State::kV2Fixed : state_;
  }
  return fail(buf_.size() == 1 ? "no PROXY header" : "bad PROXY signature");
}

ProxyHeaderParser::State ProxyHeaderParser::v1_line() {
  std::string_view line(buf_);
  line = line.substr(kV1Prefix.size(), line.size() - kV1Prefix.size() - 2);
  std::vector<std::string_view> f = split_spaces(line);
  if (f[0] == "UNKNOWN") return State::kDone;  // anything may follow it, and is ignored
  int family = f[0] == "TCP4" ? AF_INET : f[0] == "TCP6" ? AF_INET6 : 0;
  if (family == 0) return fail("v1 protocol is not TCP4, TCP6 or UNKNOWN");
  if (f.size() != 5) return fail("v1 line is not PROTO SRC DST SPORT DPORT");
  if (!parse_address(f[1], family, &addr_.src_host) ||
      !parse_address(f[2], family, &addr_.dst_host)) {
    return fail("v1 address is not one of its protocol");
  }
  if (!parse_port(f[3], &addr_.src_port) || !parse_port(f[4], &addr_.dst_port)) {
    return fail("v1 port is not 0..65535");
  }
  addr_.relayed = true;
  return State::kDone;
}

ProxyHeaderParser::State ProxyHeaderParser::v2_fixed() {
  int version = static_cast<uint8_t>(buf_[12]) >> 4, command = buf_[12] & 0x0f;
  int family = static_cast<uint8_t>(buf_[13]) >> 4, transport = buf_[13] & 0x0f;
  block_len_ = static_cast<size_t>(port_at(buf_, 14));
  if (version != 2) return fail("v2 version is not 2");
  if (command > 1) return fail("v2 command is not LOCAL or PROXY");
  if (family > 3) return fail("v2 address family is unknown");
  if (transport > 2) return fail("v2 transport is unknown");
  if (block_len_ > kProxyV2MaxBlock) return fail("v2 length is over 4096 bytes");
  if (command == 1) {
    size_t need = family == 1   ? kInetBlock
                  : family == 2 ? kInet6Block
                  : family == 3 ? kUnixBlock
                                : 0;
    if (block_len_ < need) return fail("v2 length is shorter than its addresses");
    if (transport == 2) return fail("v2 transport is a datagram, not a stream");
  }
  return block_len_ == 0 ? v2_done() : State::kV2Block;
}

// A LOCAL header (the balancer's own health check), UNSPEC or unix addresses leave the
// connection's endpoints as they are.
ProxyHeaderParser::State ProxyHeaderParser::v2_done() {
  bool proxy = (buf_[12] & 0x0f) == 1;
  int family = static_cast<uint8_t>(buf_[13]) >> 4;
  bool stream = (buf_[13] & 0x0f) == 1;
  if (!proxy || !stream || (family != 1 && family != 2)) return State::kDone;
  const char* block = buf_.data() + kV2Fixed;
  if (family == 1) {
    addr_.src_host = address_text(AF_INET, block);
    addr_.dst_host = address_text(AF_INET, block + 4);
    addr_.src_port = port_at(buf_, kV2Fixed + 8);
    addr_.dst_port = port_at(buf_, kV2Fixed + 10);
  } else {
    addr_.src_host = address_text(AF_INET6, block);
    addr_.dst_host = address_text(AF_INET6, block + 16);
    addr_.src_port = port_at(buf_, kV2Fixed + 32);
    addr_.dst_port = port_at(buf_, kV2Fixed + 34);
  }
  addr_.relayed = true;
  return State::kDone;
}

ProxySniff sniff_proxy_header(std::string_view start) {
  for (std::string_view sig : {kV1Prefix, kV2Signature}) {
    if (!is_prefix(start, sig)) continue;
    return start.size() >= sig.size() ? ProxySniff::kHeader : ProxySniff::kUndecided;
  }
  return ProxySniff::kNotHeader;
}

}  // namespace rotor::http
