// libFuzzer target: workers/http/proxy_protocol (the PROXY protocol header, v1 and v2). Besides
// ASan/UBSan: the input fed in fuzzer-chosen pieces must be read exactly like the whole input
// (same result, same end of the header, same addresses). Byte 0 picks the split pattern; the
// rest is what a balancer sends. Built and run by scripts/fuzz.sh.
#include <cstdint>
#include <string_view>

#include "fuzz/verdict.hpp"
#include "workers/http/proxy_protocol.hpp"

namespace {

using rotor::http::ProxyHeaderParser;

struct Read {
  ProxyHeaderParser::Result result = ProxyHeaderParser::Result::kNeedMore;
  size_t end = 0;  // bytes used when the result came
  ProxyHeaderParser parser;
};

void read(std::string_view in, const std::vector<size_t>& pieces, Read* r) {
  size_t off = 0;
  for (size_t i = 0; off < in.size() && r->result == ProxyHeaderParser::Result::kNeedMore; ++i) {
    size_t n = i < pieces.size() ? std::min(pieces[i], in.size() - off) : in.size() - off;
    size_t used = 0;
    r->result = r->parser.feed(in.substr(off, n), &used);
    if (used > n) rotor::fuzz::fail("used more than it was given");
    if (r->result == ProxyHeaderParser::Result::kNeedMore && used != n) {
      rotor::fuzz::fail("needs more but left bytes unused");
    }
    off += used;
  }
  r->end = off;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  Read whole, split;
  read(in, {}, &whole);
  read(in, rotor::fuzz::pieces_from_seed(data[0], in.size()), &split);
  const auto& a = whole.parser.addresses();
  const auto& b = split.parser.addresses();
  if (whole.result != split.result || whole.end != split.end || a.relayed != b.relayed ||
      a.src_host != b.src_host || a.dst_host != b.dst_host || a.src_port != b.src_port ||
      a.dst_port != b.dst_port) {
    rotor::fuzz::fail("a split header was read differently");
  }
  if (a.relayed && (a.src_host.empty() || a.dst_host.empty() || a.src_port < 0 ||
                    a.src_port > 65535 || a.dst_port < 0 || a.dst_port > 65535)) {
    rotor::fuzz::fail("relayed addresses out of range");
  }
  return 0;
}
