// What the master's metrics listener makes of the bytes a client sends: a request, not yet, or
// a refusal (400, 431) decided as early as the bytes allow.
#include <doctest/doctest.h>

#include <string>

#include "supervisor/probe_http.hpp"

using rotor::probe::Head;
using rotor::probe::parse_head;
using V = Head::Verdict;

TEST_SUITE("probe http") {
  TEST_CASE("a whole GET head is a request for its path, without the query") {
    Head h = parse_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(h.verdict == V::kComplete);
    CHECK(h.method == "GET");
    CHECK(h.path == "/metrics");
    CHECK(parse_head("HEAD /readyz HTTP/1.0\n\n").verdict == V::kComplete);
  }

  TEST_CASE("a head still arriving is incomplete, whatever the split") {
    std::string full = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
    for (size_t n = 0; n < full.size(); ++n)
      CHECK(parse_head(full.substr(0, n)).verdict == V::kIncomplete);
  }

  TEST_CASE("garbage is refused as soon as its first line ends, or at a control byte") {
    CHECK(parse_head("hello\r\n").verdict == V::kBad);
    CHECK(parse_head("GET metrics HTTP/1.1\r\n").verdict == V::kBad);
    CHECK(parse_head("GET /metrics HTTP/2\r\n").verdict == V::kBad);
    CHECK(parse_head("G(T /metrics HTTP/1.1\r\n").verdict == V::kBad);
    CHECK(parse_head("GET /a b HTTP/1.1\r\n").verdict == V::kBad);
    CHECK(parse_head(std::string("\x16\x03\x01\x02\x00", 5)).verdict == V::kBad);  // TLS
  }

  TEST_CASE("a head over the limit is too large, complete or not") {
    std::string big = "GET / HTTP/1.1\r\nX: " + std::string(rotor::probe::kMaxHead, 'a');
    CHECK(parse_head(big).verdict == V::kTooLarge);
    CHECK(parse_head(big + "\r\n\r\n").verdict == V::kTooLarge);
    CHECK(parse_head(std::string(rotor::probe::kMaxHead + 1, 'G')).verdict == V::kTooLarge);
  }

  TEST_CASE("a response says its length and closes; HEAD has no body") {
    std::string r = rotor::probe::response(503, "text/plain", "stopping\n", false);
    CHECK(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    CHECK(r.find("Content-Length: 9\r\n") != std::string::npos);
    CHECK(r.find("Connection: close\r\n") != std::string::npos);
    CHECK(r.ends_with("\r\n\r\nstopping\n"));
    CHECK(rotor::probe::response(200, "text/plain", "ok\n", true).ends_with("\r\n\r\n"));
  }
}
