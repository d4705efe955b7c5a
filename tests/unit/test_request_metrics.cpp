// The request counters each worker keeps in its slot: buckets by Prometheus' `le`, status
// classes, and the master's sums.
#include <doctest/doctest.h>

#include "supervisor/master_metrics.hpp"
#include "supervisor/request_metrics.hpp"

using namespace rotor;

TEST_SUITE("request metrics") {
  TEST_CASE("a duration falls in the first bucket whose bound it does not exceed") {
    CHECK(request_duration_bucket(0) == 0);
    CHECK(request_duration_bucket(-5) == 0);       // a clock that stepped back: the smallest
    CHECK(request_duration_bucket(500'000) == 0);  // le="0.0005" includes its bound
    CHECK(request_duration_bucket(500'001) == 1);
    CHECK(request_duration_bucket(1'000'000) == 1);
    CHECK(request_duration_bucket(10'000'000'000) == kRequestDurationBoundsNs.size() - 1);
    CHECK(request_duration_bucket(10'000'000'001) == kRequestDurationBoundsNs.size());  // +Inf
  }

  TEST_CASE("the bounds rise, so that cumulative buckets are monotonic") {
    for (size_t i = 1; i < kRequestDurationBoundsNs.size(); ++i)
      CHECK(kRequestDurationBoundsNs[i] > kRequestDurationBoundsNs[i - 1]);
    for (size_t i = 1; i < kSpawnDurationBoundsNs.size(); ++i)
      CHECK(kSpawnDurationBoundsNs[i] > kSpawnDurationBoundsNs[i - 1]);
  }

  TEST_CASE("status classes are 1xx to 5xx; anything else is set apart") {
    CHECK(status_class_index(101) == 0);
    CHECK(status_class_index(200) == 1);
    CHECK(status_class_index(304) == 2);
    CHECK(status_class_index(499) == 3);
    CHECK(status_class_index(599) == 4);
    CHECK(status_class_index(600) == 5);
    CHECK(status_class_index(99) == 5);
    CHECK(status_class_index(0) == 5);
  }

  TEST_CASE("recorded requests add up, and reset clears them") {
    RequestCounters c;
    c.record(200, 300'000);
    c.record(200, 2'000'000);
    c.record(503, 20'000'000'000);
    CHECK(c.by_status_class[1].load() == 2);
    CHECK(c.by_status_class[4].load() == 1);
    CHECK(c.duration_buckets[0].load() == 1);
    CHECK(c.duration_buckets[2].load() == 1);
    CHECK(c.duration_buckets[kRequestDurationBuckets - 1].load() == 1);
    CHECK(c.duration_sum_ns.load() == 20'002'300'000);

    RequestTotals t;
    t.add(c);
    CHECK(t.requests() == 3);
    RequestTotals sum;
    sum.add(t);
    sum.add(c);
    CHECK(sum.requests() == 6);
    CHECK(sum.by_status_class[1] == 4);
    CHECK(sum.duration_sum_ns == 2 * 20'002'300'000);

    c.reset();
    CHECK(c.by_status_class[1].load() == 0);
    CHECK(c.duration_buckets[0].load() == 0);
    CHECK(c.duration_sum_ns.load() == 0);
  }

  TEST_CASE("spawn durations are bucketed and summed") {
    MasterMetrics m;
    m.add_spawn(3'000'000);       // a warm fork
    m.add_spawn(2'000'000'000);   // a cold import
    m.add_spawn(90'000'000'000);  // past the last bound
    CHECK(m.spawn_buckets[0] == 1);
    CHECK(m.spawn_buckets[8] == 1);  // le="2.5"
    CHECK(m.spawn_buckets[kSpawnDurationBoundsNs.size()] == 1);
    CHECK(m.spawn_sum_ns == 92'003'000'000);
  }
}

#include "supervisor/scoreboard.hpp"

TEST_CASE("a slot claimed for a new worker starts with no counts of the one before") {
  Scoreboard sb(1);
  sb.claim(0, 1, 0);
  sb.slot(0).request_counters.record(200, 1000);
  sb.release(0);
  sb.claim(0, 2, 0);
  RequestTotals t;
  t.add(sb.slot(0).request_counters);
  CHECK(t.requests() == 0);
  CHECK(t.by_status_class[1] == 0);
}
