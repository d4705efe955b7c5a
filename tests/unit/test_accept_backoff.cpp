#include <doctest/doctest.h>

#include "workers/http/accept_backoff.hpp"

using rotor::http::AcceptBackoff;

TEST_SUITE("accept backoff") {
  TEST_CASE("failures pause accepting, longer while they go on, and reset on a success") {
    AcceptBackoff b;
    CHECK(b.on_failure(0).pause_ms == 100);
    CHECK(b.on_failure(100).pause_ms == 200);
    CHECK(b.on_failure(300).pause_ms == 400);
    CHECK(b.on_failure(700).pause_ms == 800);
    CHECK(b.on_failure(1500).pause_ms == 1000);
    CHECK(b.on_failure(2500).pause_ms == 1000);
    b.on_success();
    CHECK(b.on_failure(2600).pause_ms == 100);
  }

  TEST_CASE("one line per interval, counting the failures it stands for") {
    AcceptBackoff b;
    AcceptBackoff::Step first = b.on_failure(5000);
    CHECK(first.log);
    CHECK(first.count == 1);
    uint64_t now = 5000;
    for (int i = 0; i < 9; ++i) {
      now += 100;
      b.on_success();  // a connection got through in between: still no extra line
      CHECK_FALSE(b.on_failure(now).log);
    }
    AcceptBackoff::Step next = b.on_failure(6000);
    CHECK(next.log);
    CHECK(next.count == 10);
    CHECK_FALSE(b.on_failure(6999).log);
    CHECK(b.on_failure(7000).count == 2);
  }
}
