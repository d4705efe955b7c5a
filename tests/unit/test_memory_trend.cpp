// A generation's growth estimate from its workers' exits, and what it projects.
#include <doctest/doctest.h>

#include "supervisor/memory_trend.hpp"

using rotor::ExitGrowth;
using rotor::MemoryTrend;

static ExitGrowth slope(double kib) {
  return {kib, 20000, 10};
}

TEST_CASE("the first exit is reported, small moves are not, a material one is") {
  MemoryTrend t;
  CHECK_FALSE(t.estimate());
  CHECK(t.add(slope(100)));
  CHECK_FALSE(t.add(slope(110)));  // median 105
  CHECK_FALSE(t.add(slope(120)));  // 110
  CHECK_FALSE(t.add(slope(200)));  // 115: one outlier does not move the median much
  CHECK_FALSE(t.add(slope(300)));  // 120
  CHECK(t.add(slope(400)));        // the window is 110..400: median 200, twice the reported
  CHECK(t.estimate()->kib_per_request == doctest::Approx(200));
  CHECK_FALSE(t.add(slope(230)));  // 230 against 200 reported: 15%
}

TEST_CASE("noise around zero growth is not reported") {
  MemoryTrend t;
  CHECK(t.add(slope(0.5)));
  CHECK_FALSE(t.add(slope(1.5)));  // median 1.0: doubled, but by half a KiB
  CHECK_FALSE(t.add(slope(-0.2)));
}

TEST_CASE("the estimate is the median of the last exits") {
  MemoryTrend t(3);
  t.add({10, 1000, 5});
  t.add({10, 3000, 0});  // rate unknown: left out of the rate's median
  t.add({10, 2000, 7});
  auto e = *t.estimate();
  CHECK(e.ready_private_kib == doctest::Approx(2000));
  CHECK(e.requests_per_second == doctest::Approx(6));
  CHECK_FALSE(t.add({50, 2000, 9}));  // 10, 10, 50
  CHECK(t.add({50, 2000, 9}));        // 10, 50, 50: the first exits left the window
  CHECK(t.estimate()->kib_per_request == doctest::Approx(50));
}

TEST_CASE("projection at the request limit") {
  ExitGrowth e{1024, 10240, 4};
  CHECK_FALSE(rotor::private_mib_at_limit(e, 0));
  CHECK(*rotor::private_mib_at_limit(e, 50) == doctest::Approx(60));
}

TEST_CASE("seconds until --max-private") {
  ExitGrowth e{1024, 10240, 4};  // 4 MiB/s from 10 MiB
  CHECK(*rotor::seconds_to_max_private(e, 100 * 1024) == doctest::Approx(22.5));
  CHECK(*rotor::seconds_to_max_private(e, 5 * 1024) == 0);  // over it from the start
  CHECK_FALSE(rotor::seconds_to_max_private(e, 0));
  CHECK_FALSE(rotor::seconds_to_max_private({1024, 10240, 0}, 100 * 1024));
  CHECK_FALSE(rotor::seconds_to_max_private({0, 10240, 4}, 100 * 1024));
  CHECK_FALSE(rotor::seconds_to_max_private({-3, 10240, 4}, 100 * 1024));
}
