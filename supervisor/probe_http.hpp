// The little HTTP/1.1 the master's metrics listener speaks: one request per connection, GET or
// HEAD, no body. Pure functions on bytes, so that what a hostile scraper sends is judged in unit
// tests; the sockets are supervisor/metrics_server.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rotor::probe {

// A request head larger than this is refused (431) as soon as it is seen.
constexpr size_t kMaxHead = 8192;

struct Head {
  enum class Verdict { kIncomplete, kComplete, kBad, kTooLarge };
  Verdict verdict = Verdict::kIncomplete;
  std::string method;
  std::string path;  // without the query
};

// What the bytes received so far come to. A request line that cannot be HTTP is refused as soon
// as its line ends, or at once when it holds a control character.
Head parse_head(std::string_view received);

// A whole response with Connection: close; HEAD gets the headers only.
std::string response(int status, std::string_view content_type, std::string_view body,
                     bool head_only, std::string_view extra_headers = {});

const char* reason_phrase(int status);

}  // namespace rotor::probe
