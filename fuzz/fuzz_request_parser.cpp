// libFuzzer target: workers/http/parser (llhttp in strict mode plus rotor's scanner and header
// judging). Besides ASan/UBSan: the input split at fuzzer-chosen points must be judged exactly
// like the whole input. Byte 0 picks the limits, byte 1 the split pattern; the rest is the
// byte stream a client sends. Built and run by scripts/fuzz.sh.
#include <cstdint>
#include <cstdio>

#include "fuzz/verdict.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rotor::fuzz;
  if (size < 2) return 0;
  rotor::http::ParseLimits limits = limits_from(data[0]);
  uint32_t seed = data[1];
  data += 2;
  size -= 2;
  Verdict whole = judge(data, size, {}, limits);
  Verdict split = judge(data, size, pieces_from_seed(seed, size), limits);
  if (!(whole == split)) {
    std::fprintf(stderr, "whole: error=%d messages=%zu; split: error=%d messages=%zu\n",
                 whole.error, whole.messages.size(), split.error, split.messages.size());
    fail("a split input was judged differently");
  }
  return 0;
}
