// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the header an L4 load
// balancer sends before its client's bytes, naming the client's address and its own. Read
// incrementally, as the bytes arrive (byte by byte if need be), keeping only what it needs: a
// v1 line (at most 107 bytes) or v2's fixed part and address block (its TLVs are skipped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rotor::http {

// The longest v1 line, "PROXY TCP6 <two full IPv6 addresses> 65535 65535\r\n" (the spec's).
inline constexpr size_t kProxyV1MaxLine = 107;
// The longest v2 block after the 16-byte fixed part that we read: the unix addresses (216
// bytes) and room for a balancer's TLVs (AWS, Azure and GCP send a few dozen bytes).
inline constexpr size_t kProxyV2MaxBlock = 4096;

// What a complete header says. `relayed` false (LOCAL, UNKNOWN, UNSPEC or unix addresses):
// the connection's own endpoints stand.
struct ProxyAddresses {
  bool relayed = false;
  std::string src_host, dst_host;  // textual IPv4 or IPv6 addresses
  int src_port = 0, dst_port = 0;
};

class ProxyHeaderParser {
 public:
  enum class Result : uint8_t { kNeedMore, kDone, kError };

  // Reads the header from `data`, the connection's next bytes. kDone sets *used to where the
  // header ends in `data` (what follows is the start of the HTTP request); kNeedMore used all
  // of it. Anything that is not a valid header is kError, also when no header starts at all.
  Result feed(std::string_view data, size_t* used);

  const ProxyAddresses& addresses() const { return addr_; }  // after kDone
  const char* error() const { return error_; }               // after kError: why, briefly

 private:
  enum class State : uint8_t { kStart, kV1, kV2Fixed, kV2Block, kDone, kError };
  State step(char c);
  State start(char c);
  State fail(const char* why);
  State v1_line();
  State v2_fixed();
  State v2_done();

  State state_ = State::kStart;
  std::string buf_;  // the v1 line, or v2's fixed part then the first address bytes
  size_t block_len_ = 0;
  size_t block_seen_ = 0;
  ProxyAddresses addr_;
  const char* error_ = "";
};

// Whether a connection's first bytes start a PROXY header ("PROXY " or the v2 signature), for
// a peer not allowed to send one. kUndecided while they are a strict prefix of either.
enum class ProxySniff : uint8_t { kHeader, kNotHeader, kUndecided };
ProxySniff sniff_proxy_header(std::string_view start);

// The most bytes sniff_proxy_header needs to decide.
inline constexpr size_t kProxySniffBytes = 12;

}  // namespace rotor::http
