// libFuzzer target: a control socket request line (supervisor/json, supervisor/control_command),
// what any local client of the socket may send. Besides ASan/UBSan: a JSON value dumps to text
// that parses back to the same value, and a request the master accepts survives its own line
// form unchanged. Built and run by scripts/fuzz.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "supervisor/control_command.hpp"
#include "supervisor/json.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_control_request: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rotor;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  if (auto v = json::parse(text, &error)) {
    std::string once = json::dump(*v);
    auto again = json::parse(once, &error);
    if (!again || json::dump(*again) != once) fail("a dumped value does not parse back the same");
  }
  auto r = control::from_line(text, &error);
  if (!r) return 0;
  auto back = control::from_line(control::to_line(*r), &error);
  if (!back || back->verb != r->verb || back->pid != r->pid || back->all != r->all ||
      back->fast != r->fast)
    fail("an accepted request does not survive its line form");
  if ((r->verb == control::Verb::kScale || r->verb == control::Verb::kAdd ||
       r->verb == control::Verb::kRemove) &&
      back->n != r->n)
    fail("a count does not survive its line form");
  return 0;
}
