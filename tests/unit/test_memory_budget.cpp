// --memory-budget's decisions from plain inputs and a fake clock: the request limit that keeps
// the workers within the budget, its jitter and re-evaluation, and which worker leaves first
// (and whether before its successor) when their total comes close to the budget.
#include <doctest/doctest.h>

#include <random>
#include <set>

#include "supervisor/memory_budget.hpp"

using namespace rotor::budget;

namespace {

constexpr int64_t kSec = 1'000'000'000;

// 2 workers, 400 MiB, 20 MiB each at ready, 1 MiB per request.
Sizing leaking() {
  return {400 << 10, 2, 20 << 10, 1024};
}

WorkerMemory worker(uint64_t id, uint64_t private_mib, int64_t ready_ns = 0) {
  return {id, private_mib << 10, 20 << 10, ready_ns, false, false};
}

PressureInputs pressure(std::vector<WorkerMemory> workers, uint64_t budget_mib = 400) {
  return {budget_mib << 10, 20 << 10, std::move(workers), 100 * kSec, 2 * kSec};
}

}  // namespace

TEST_SUITE("memory budget") {
  TEST_CASE("each worker may grow to its share of the budget: (share - ready) / growth") {
    // The share is budget / (workers + 1): a retiring worker's memory is not freed at once.
    CHECK(share(leaking()) == doctest::Approx((400 << 10) / 3.0));
    CHECK(request_limit(leaking()) == 113);  // (133.3 - 20) MiB at 1 MiB per request
    Sizing four = leaking();
    four.workers = 4;
    CHECK(request_limit(four) == 60);  // 400 / 5 - 20
    Sizing slow = leaking();
    slow.kib_per_request = 10;
    CHECK(request_limit(slow) == 11605);  // (400 / 3 - 20) MiB in KiB, / 10
  }

  TEST_CASE("the requests served past the limit, measured, come off it") {
    Sizing s = leaking();
    s.overshoot_requests = 25.5;
    CHECK(request_limit(s) == 87);  // 113.3 - 25.5
    s.overshoot_requests = 500;
    CHECK(request_limit(s) == 1);
  }

  TEST_CASE("no limit from the budget for growth that is noise, nor for a budget too small") {
    Sizing flat = leaking();
    flat.kib_per_request = 0.5;
    CHECK(request_limit(flat) == 0);
    flat.kib_per_request = -3;
    CHECK(request_limit(flat) == 0);
    Sizing small = leaking();
    small.budget_kib = 60 << 10;  // a share of 20 MiB: a worker takes all of it at ready
    CHECK(too_small(small));
    CHECK(request_limit(small) == 0);
    CHECK_FALSE(too_small(leaking()));
  }

  TEST_CASE("a share just above the ready size still gives at least one request") {
    Sizing tight = leaking();
    tight.budget_kib = 67 << 10;  // 22.3 MiB shares, 20 at ready: not too small (20 < 20.1)
    CHECK_FALSE(too_small(tight));
    CHECK(request_limit(tight) == 2);
    tight.kib_per_request = 100 << 10;
    CHECK(request_limit(tight) == 1);
  }

  TEST_CASE("jitter spreads the limits over the top fifth, never above the limit") {
    std::mt19937_64 rng(7);
    std::set<uint64_t> seen;
    for (int i = 0; i < 200; ++i) {
      uint64_t l = jittered(100, rng);
      CHECK(l >= 80);
      CHECK(l <= 100);
      seen.insert(l);
    }
    CHECK(seen.size() > 10);  // staggered, not one value
    CHECK(jittered(0, rng) == 0);
    CHECK(jittered(1, rng) == 1);
  }

  TEST_CASE("workers that started together are staggered over a worker's life") {
    CHECK(staggered(100, 0, 2) == 100);
    CHECK(staggered(100, 1, 2) == 50);
    CHECK(staggered(90, 2, 3) == 30);
    CHECK(staggered(1, 1, 2) == 1);
    CHECK(staggered(0, 1, 2) == 0);
    CHECK(staggered(100, 3, 2) == 100);
  }

  TEST_CASE("never above --max-requests when that is set") {
    CHECK(tighter_limit(180, 100) == 100);
    CHECK(tighter_limit(80, 100) == 80);
    CHECK(tighter_limit(0, 100) == 100);
    CHECK(tighter_limit(80, 0) == 80);
    CHECK(tighter_limit(0, 0) == 0);
  }

  TEST_CASE("the limit is re-evaluated only when the estimate changes it materially") {
    Limiter l;
    CHECK_FALSE(l.known());
    Sizing s = leaking();
    CHECK(l.update(s));  // the first is always news
    CHECK(l.limit() == 113);
    s.kib_per_request = 1100;  // 105: 7 % less
    CHECK_FALSE(l.update(s));
    CHECK(l.limit() == 113);
    s.kib_per_request = 2048;  // 56: half
    CHECK(l.update(s));
    CHECK(l.limit() == 56);
    s.kib_per_request = 0;  // the leak is gone: no limit from the budget
    CHECK(l.update(s));
    CHECK(l.limit() == 0);
    CHECK_FALSE(l.update(s));
  }

  TEST_CASE("below nine tenths of the budget nobody is rotated") {
    CHECK_FALSE(pressure_retire(pressure({worker(1, 150), worker(2, 200)})));  // 350 of 400
  }

  TEST_CASE("close to the budget the largest worker is rotated first, its successor before") {
    auto r = pressure_retire(pressure({worker(1, 150), worker(2, 215), worker(3, 0)}));
    REQUIRE(r);
    CHECK(r->id == 2);
    CHECK(r->total_kib == 365 << 10);
    CHECK_FALSE(r->successor_after);  // 365 + 20 fits in 400
    CHECK_FALSE(r->at_once);
  }

  TEST_CASE("the cgroup's usage counts when the samples add up to less") {
    PressureInputs in = pressure({worker(1, 150), worker(2, 180)});  // 330 of 400
    CHECK_FALSE(pressure_retire(in));
    in.cgroup_total_kib = 370 << 10;
    auto r = pressure_retire(in);
    REQUIRE(r);
    CHECK(r->id == 2);
    CHECK(r->total_kib == 370 << 10);
    CHECK_FALSE(r->successor_after);
    in.cgroup_total_kib = 300 << 10;  // less than the samples: they count
    CHECK_FALSE(pressure_retire(in));
  }

  TEST_CASE("the growth the master cannot react to in time is kept free too") {
    PressureInputs in = pressure({worker(1, 150), worker(2, 180)});  // 330 of 400
    CHECK_FALSE(pressure_retire(in));
    in.reaction_kib = 60 << 10;  // rotate above 340
    CHECK_FALSE(pressure_retire(in));
    in.reaction_kib = 80 << 10;  // above 320
    auto r = pressure_retire(in);
    REQUIRE(r);
    CHECK(r->id == 2);
    CHECK(r->successor_after);  // 330 + 20 + 80 > 400
  }

  TEST_CASE("with no room for a successor the worker leaves before its successor starts") {
    auto r = pressure_retire(pressure({worker(1, 180), worker(2, 205)}));
    REQUIRE(r);
    CHECK(r->id == 2);
    CHECK(r->successor_after);  // 385 + 20 > 400
  }

  TEST_CASE("a worker retiring already is left alone while its successor has room") {
    PressureInputs in = pressure({worker(1, 150), worker(2, 215)});
    in.workers[1].retiring = true;
    CHECK_FALSE(pressure_retire(in));
    in.workers[0].private_kib = 180 << 10;  // now no room: it leaves first
    auto r = pressure_retire(in);
    REQUIRE(r);
    CHECK(r->id == 2);
    CHECK(r->successor_after);
  }

  TEST_CASE("while a worker drains, the others are rotated only if they are over without it") {
    PressureInputs in = pressure({worker(1, 200), worker(2, 150), worker(3, 20)});
    in.workers[0].draining = true;
    CHECK_FALSE(pressure_retire(in));  // 170 + 20 without it: its memory is on its way back
    in.workers[1].private_kib = 330 << 10;
    in.budget_kib = 500 << 10;  // 550 in all, 350 + 20 without the drainer: over 450
    CHECK_FALSE(pressure_retire(in));
    in.workers[1].private_kib = 440 << 10;  // 460 + 20 without it
    auto r = pressure_retire(in);
    REQUIRE(r);
    CHECK(r->id == 2);  // the largest that is not draining
    CHECK(r->successor_after);
  }

  TEST_CASE("a worker younger than the minimum age is not rotated (fake clock)") {
    // Worker 2 became ready at 99 s; at 100 s it has served 1 s of the 2 s minimum.
    PressureInputs in = pressure({worker(1, 150, 10 * kSec), worker(2, 215, 99 * kSec)});
    auto r = pressure_retire(in);
    REQUIRE(r);
    CHECK(r->id == 1);  // the largest old enough
    in.workers[0].ready_ns = 99 * kSec;
    CHECK_FALSE(pressure_retire(in));
    in.now_ns = 101 * kSec;
    CHECK(pressure_retire(in)->id == 2);
  }

  TEST_CASE("a worker that hardly grew since ready is retired at once: the budget is too small") {
    // Three workers of 20 MiB at ready in a 60 MiB budget.
    PressureInputs in = pressure({worker(1, 20), worker(2, 21), worker(3, 20)}, 60);
    auto r = pressure_retire(in);
    REQUIRE(r);
    CHECK(r->at_once);
    in.workers[1].private_kib = 30 << 10;  // 1.5 times its size at ready: not grown yet
    in.budget_kib = 75 << 10;
    r = pressure_retire(in);
    REQUIRE(r);
    CHECK(r->at_once);
    in.workers[1].private_kib = 45 << 10;  // more than doubled: a leak, not a small budget
    in.budget_kib = 90 << 10;
    r = pressure_retire(in);
    REQUIRE(r);
    CHECK(r->id == 2);
    CHECK_FALSE(r->at_once);
  }
}
