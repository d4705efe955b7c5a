// Rotation policy with a fake clock: limits, lifetimes, backoff and the spawn/drain plan.
#include <doctest/doctest.h>

#include <algorithm>

#include "supervisor/policy.hpp"

using namespace rotor::policy;

namespace {
constexpr int64_t kSec = 1000000000;

WorkerView ready(uint64_t id, int64_t started = 0) {
  WorkerView v;
  v.id = id;
  v.phase = Phase::kReady;
  v.started_ns = started;
  return v;
}
WorkerView booting(uint64_t id, bool successor = false) {
  WorkerView v;
  v.id = id;
  v.phase = Phase::kBooting;
  v.is_successor = successor;
  return v;
}
WorkerView retiring(uint64_t id, uint64_t successor = 0, int64_t started = 0) {
  WorkerView v = ready(id, started);
  v.retiring = true;
  v.successor = successor;
  return v;
}
}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("request limit is max_requests plus jitter within range") {
    std::mt19937_64 rng(42);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 5000; ++i) {
      uint64_t l = draw_request_limit(1000, 100, rng);
      CHECK(l >= 1000);
      CHECK(l <= 1100);
      lo = std::min(lo, l);
      hi = std::max(hi, l);
    }
    // The whole range is used, both ends included.
    CHECK(lo == 1000);
    CHECK(hi == 1100);
    CHECK(draw_request_limit(0, 100, rng) == 0);
    CHECK(draw_request_limit(50, 0, rng) == 50);
  }

  TEST_CASE("lifetime is max_lifetime plus jitter, zero when off") {
    std::mt19937_64 rng(7);
    for (int i = 0; i < 1000; ++i) {
      int64_t l = draw_lifetime_ns(10, 5, rng);
      CHECK(l >= 10 * kSec);
      CHECK(l <= 15 * kSec);
    }
    CHECK(draw_lifetime_ns(0, 5, rng) == 0);
  }

  TEST_CASE("retire reasons in order: requests, rss, lifetime") {
    RetireInputs in;
    CHECK_FALSE(retire_reason(in).has_value());
    in.request_limit = 100;
    in.requests = 99;
    CHECK_FALSE(retire_reason(in).has_value());
    in.requests = 100;
    CHECK(*retire_reason(in) == "max-requests");
    in.requests = 0;
    in.max_rss_bytes = 100 << 20;
    in.rss_bytes = 99 << 20;
    CHECK_FALSE(retire_reason(in).has_value());
    in.rss_bytes = 101 << 20;
    CHECK(*retire_reason(in) == "max-rss");
    in.rss_bytes = 0;  // unknown RSS never retires
    CHECK_FALSE(retire_reason(in).has_value());
    in.deadline_ns = 50 * kSec;
    in.now_ns = 49 * kSec;
    CHECK_FALSE(retire_reason(in).has_value());
    in.now_ns = 50 * kSec;
    CHECK(*retire_reason(in) == "max-lifetime");
  }

  TEST_CASE("backoff: first crash respawns at once, repeats double up to the cap") {
    Backoff b(100 * 1000000, 1 * kSec, 30 * kSec);
    int64_t t = 1000 * kSec;
    CHECK(b.allows_spawn(t));
    b.on_crash(t);
    CHECK(b.delay_ns() == 0);
    CHECK(b.allows_spawn(t));
    b.on_crash(t + 1);
    CHECK(b.delay_ns() == 100 * 1000000);
    CHECK_FALSE(b.allows_spawn(t + 2));
    CHECK(b.allows_spawn(t + 1 + 100 * 1000000));
    b.on_crash(t + 2);
    CHECK(b.delay_ns() == 200 * 1000000);
    for (int i = 0; i < 20; ++i) b.on_crash(t + 3 + i);
    CHECK(b.delay_ns() == 1 * kSec);  // capped
    // A quiet window resets the count.
    int64_t later = t + 100 * kSec;
    b.on_crash(later);
    CHECK(b.delay_ns() == 0);
    CHECK(b.crashes() == 1);
  }

  TEST_CASE("backoff: a reset allows a spawn at once and starts the count again") {
    Backoff b(100 * 1000000, 1 * kSec, 30 * kSec);
    int64_t t = 1000 * kSec;
    for (int i = 0; i < 5; ++i) b.on_crash(t + i);
    CHECK_FALSE(b.allows_spawn(t + 10));
    b.reset();
    CHECK(b.allows_spawn(t + 10));
    CHECK(b.crashes() == 0);
    b.on_crash(t + 11);
    CHECK(b.delay_ns() == 0);  // the first crash after a reset
    b.on_crash(t + 12);
    CHECK(b.delay_ns() == 100 * 1000000);
  }

  TEST_CASE("plan: boots the desired number, no more") {
    Plan p = plan({}, 3, 1, true);
    CHECK(p.spawn_fresh == 3);
    p = plan({booting(1), ready(2)}, 3, 1, true);
    CHECK(p.spawn_fresh == 1);
    p = plan({ready(1), ready(2), ready(3)}, 3, 1, true);
    CHECK(p.spawn_fresh == 0);
    CHECK(p.drain.empty());
    CHECK(p.scale_down.empty());
  }

  TEST_CASE("plan: during a boot backoff only the places of boot failures wait") {
    // One worker failed to boot (held back), one that was serving died: the serving one's
    // place is filled at once, the other waits for the backoff.
    PlanTiming t;
    t.held_back = 1;
    Plan p = plan({ready(1)}, 3, 1, false, t);
    CHECK(p.spawn_fresh == 1);
    t.held_back = 2;
    CHECK(plan({ready(1)}, 3, 1, false, t).spawn_fresh == 0);
    // The pool is never left empty because a serving worker died: all places come back.
    t.held_back = 0;
    CHECK(plan({}, 2, 1, false, t).spawn_fresh == 2);
    // Once the backoff is over, held places are spawned too.
    t.held_back = 2;
    CHECK(plan({ready(1)}, 3, 1, true, t).spawn_fresh == 2);
    // No successor is started during a boot backoff: it would likely fail as well.
    p = plan({retiring(1), ready(2)}, 2, 1, false);
    CHECK(p.start_rotation.empty());
  }

  TEST_CASE("death: before ready, or ready briefly with no work, is a boot failure") {
    const int64_t settle = kSec;
    DeathInputs d;
    CHECK(death_is_boot_failure(d, settle));  // never ready
    d.was_ready = true;
    d.ready_for_ns = 10 * 1000000;
    CHECK(death_is_boot_failure(d, settle));  // ready then died at once, nothing served
    d.took_work = true;  // a request that calls os._exit(0), or the OOM killer under load
    CHECK_FALSE(death_is_boot_failure(d, settle));
    d.took_work = false;
    d.ready_for_ns = 5 * kSec;  // an idle worker killed after it settled
    CHECK_FALSE(death_is_boot_failure(d, settle));
  }

  TEST_CASE("memory and age never retire a worker younger than the limit's minimum age") {
    RetireInputs in;
    in.max_rss_bytes = 1 << 20;
    in.rss_bytes = 23 << 20;  // a fresh worker is already over
    in.ready_ns = 100 * kSec;
    in.rss_min_age_ns = 2 * kSec;
    in.now_ns = 100 * kSec + 1000000;  // 1 ms after it became ready
    CHECK_FALSE(retire_reason(in).has_value());
    in.now_ns = 102 * kSec - 1;
    CHECK_FALSE(retire_reason(in).has_value());
    in.now_ns = 102 * kSec;
    CHECK(*retire_reason(in) == "max-rss");
    CHECK(retired_at_once("max-rss", in, false));
    CHECK_FALSE(retired_at_once("max-rss", in, true));  // it was under once: a real leak
    // A lifetime shorter than the minimum age ends with the minimum age.
    in = {};
    in.ready_ns = 100 * kSec;
    in.deadline_ns = 100 * kSec + 1;  // --max-lifetime 1e-9
    in.lifetime_min_age_ns = 2 * kSec;
    in.now_ns = 101 * kSec;
    CHECK_FALSE(retire_reason(in).has_value());
    in.now_ns = 102 * kSec;
    CHECK(*retire_reason(in) == "max-lifetime");
    CHECK(retired_at_once("max-lifetime", in, false));
    CHECK(guarded_deadline(in.deadline_ns, in.ready_ns, 2 * kSec) == 102 * kSec);
    CHECK(guarded_deadline(0, in.ready_ns, 2 * kSec) == 0);  // no lifetime limit
    // A lifetime past the minimum age is kept as it is.
    in.deadline_ns = 110 * kSec;
    CHECK(guarded_deadline(in.deadline_ns, in.ready_ns, 2 * kSec) == 110 * kSec);
    in.now_ns = 110 * kSec;
    CHECK_FALSE(retired_at_once("max-lifetime", in, false));
    CHECK_FALSE(retired_at_once("max-requests", in, false));
  }

  TEST_CASE("private memory retires after rss, before lifetime, and only past its minimum age") {
    RetireInputs in;
    in.max_private_bytes = 50 << 20;
    in.private_bytes = 50 << 20;
    CHECK_FALSE(retire_reason(in).has_value());  // at the limit is within it
    in.private_bytes = 51 << 20;
    CHECK(*retire_reason(in) == "max-private");
    in.private_bytes = 0;  // unknown private memory never retires
    CHECK_FALSE(retire_reason(in).has_value());
    // A big import shared from the template: resident over --max-rss, private well under.
    in.private_bytes = 20 << 20;
    in.rss_bytes = 130 << 20;
    CHECK_FALSE(retire_reason(in).has_value());
    in.max_rss_bytes = 100 << 20;
    CHECK(*retire_reason(in) == "max-rss");
    in.max_rss_bytes = 0;
    in.private_bytes = 60 << 20;
    in.deadline_ns = 1;
    in.now_ns = 5 * kSec;
    CHECK(*retire_reason(in) == "max-private");
    // Its own minimum age, apart from --max-rss's.
    in.ready_ns = 4 * kSec;
    in.private_min_age_ns = 2 * kSec;
    in.rss_min_age_ns = 0;
    CHECK(*retire_reason(in) == "max-lifetime");
    in.deadline_ns = 0;
    CHECK_FALSE(retire_reason(in).has_value());
    in.now_ns = 6 * kSec;
    CHECK(*retire_reason(in) == "max-private");
    CHECK(retired_at_once("max-private", in, false));
    CHECK_FALSE(retired_at_once("max-private", in, true));  // it was under once: a real leak
  }

  TEST_CASE("limit guard: a --max-private below a new worker rotates ever more slowly") {
    LimitGuard g(2 * kSec, 300 * kSec);
    int64_t now = 0;
    int spawns = 0;
    bool warned = false;
    while (now < 600 * kSec) {
      RetireInputs in;
      in.max_private_bytes = 1 << 20;
      in.private_bytes = 12 << 20;  // a fresh worker's own pages
      in.ready_ns = now;
      in.private_min_age_ns = g.min_age_ns();
      in.now_ns = now + 1;
      CHECK_FALSE(retire_reason(in).has_value());
      now += g.min_age_ns();
      in.now_ns = now;
      REQUIRE(retire_reason(in).has_value());
      CHECK(*retire_reason(in) == "max-private");
      bool warn = g.on_retire(retired_at_once(*retire_reason(in), in, false));
      CHECK_FALSE((warn && warned));  // once
      warned = warned || warn;
      ++spawns;
    }
    CHECK(warned);
    CHECK(spawns <= 10);
  }

  TEST_CASE("limit guard: successors retired at once double the minimum age, capped, warn once") {
    LimitGuard g(2 * kSec, 60 * kSec);
    CHECK(g.min_age_ns() == 2 * kSec);
    CHECK(g.on_retire(true));  // the first time: warn
    CHECK(g.min_age_ns() == 4 * kSec);
    CHECK_FALSE(g.on_retire(true));  // never again
    CHECK(g.min_age_ns() == 8 * kSec);
    for (int i = 0; i < 20; ++i) CHECK_FALSE(g.on_retire(true));
    CHECK(g.min_age_ns() == 60 * kSec);
    // A worker that grew over the limit while serving: the limit works, back to the floor.
    CHECK_FALSE(g.on_retire(false));
    CHECK(g.min_age_ns() == 2 * kSec);
    g.on_retire(true);
    g.reset();
    CHECK(g.min_age_ns() == 2 * kSec);
    CHECK_FALSE(g.on_retire(true));  // warned already
  }

  TEST_CASE("limit guard: with a fake clock, a limit below a new worker rotates ever more slowly") {
    // Workers are replaced as soon as the guard allows: the times of the first rotations.
    LimitGuard g(2 * kSec, 300 * kSec);
    int64_t now = 0;
    int spawns = 0;
    while (now < 600 * kSec) {
      RetireInputs in;
      in.max_rss_bytes = 1 << 20;
      in.rss_bytes = 23 << 20;
      in.ready_ns = now;
      in.rss_min_age_ns = g.min_age_ns();
      in.now_ns = now + 1;
      CHECK_FALSE(retire_reason(in).has_value());
      now += g.min_age_ns();
      in.now_ns = now;
      REQUIRE(retire_reason(in).has_value());
      g.on_retire(retired_at_once(*retire_reason(in), in, false));
      ++spawns;
    }
    CHECK(spawns <= 10);  // 2+4+...+256 s, then one every 300 s
  }

  TEST_CASE("plan: spawn before retire") {
    // Worker 1 hit its limit: a successor is started, worker 1 keeps serving.
    Plan p = plan({retiring(1), ready(2)}, 2, 1, true);
    CHECK(p.spawn_fresh == 0);
    REQUIRE(p.start_rotation.size() == 1);
    CHECK(p.start_rotation[0] == 1);
    CHECK(p.drain.empty());
    // Successor 3 booting: nothing more to do, capacity unchanged.
    p = plan({retiring(1, 3), ready(2), booting(3, true)}, 2, 1, true);
    CHECK(p.spawn_fresh == 0);
    CHECK(p.start_rotation.empty());
    CHECK(p.drain.empty());
    // Successor ready: now worker 1 drains.
    WorkerView s = ready(3);
    s.is_successor = true;
    p = plan({retiring(1, 3), ready(2), s}, 2, 1, true);
    REQUIRE(p.drain.size() == 1);
    CHECK(p.drain[0] == 1);
    CHECK(p.spawn_fresh == 0);
  }

  TEST_CASE("plan: at most max_concurrent_rotations successors boot at once") {
    std::vector<WorkerView> ws = {retiring(1, 0, 10), retiring(2, 0, 5), retiring(3, 0, 20),
                                  ready(4)};
    Plan p = plan(ws, 4, 1, true);
    REQUIRE(p.start_rotation.size() == 1);
    CHECK(p.start_rotation[0] == 2);  // the oldest first
    p = plan(ws, 4, 2, true);
    CHECK(p.start_rotation.size() == 2);
    // One rotation already running with cap 1: the others wait.
    ws[1].successor = 9;
    ws.push_back(booting(9, true));
    p = plan(ws, 4, 1, true);
    CHECK(p.start_rotation.empty());
    CHECK(p.spawn_fresh == 0);
    p = plan(ws, 4, 3, true);
    CHECK(p.start_rotation.size() == 2);
  }

  TEST_CASE("plan: a successor that died leaves its predecessor waiting again") {
    // successor id 7 is gone from the census
    Plan p = plan({retiring(1, 7), ready(2)}, 2, 1, true);
    CHECK(p.spawn_fresh == 0);
    REQUIRE(p.start_rotation.size() == 1);
    CHECK(p.start_rotation[0] == 1);
  }

  TEST_CASE("plan: draining workers hold no place, crashed ones are replaced") {
    WorkerView d = ready(1);
    d.phase = Phase::kDraining;
    Plan p = plan({d, ready(2)}, 2, 1, true);
    CHECK(p.spawn_fresh == 1);
  }

  TEST_CASE("plan: scale down sheds leaving workers first, then the oldest") {
    Plan p = plan({ready(1, 30), ready(2, 10), ready(3, 20)}, 2, 1, true);
    REQUIRE(p.scale_down.size() == 1);
    CHECK(p.scale_down[0] == 2);
    p = plan({ready(1, 30), retiring(2, 0, 40), ready(3, 20)}, 2, 1, true);
    REQUIRE(p.scale_down.size() == 1);
    CHECK(p.scale_down[0] == 2);
    p = plan({ready(1, 30), ready(2, 10), ready(3, 20)}, 1, 1, true);
    CHECK(p.scale_down.size() == 2);
    CHECK(p.spawn_fresh == 0);
  }

  TEST_CASE("plan: scale up while a rotation runs") {
    Plan p = plan({retiring(1, 3), ready(2), booting(3, true)}, 3, 1, true);
    CHECK(p.spawn_fresh == 1);
  }

  TEST_CASE("due soon: the successor starts one lead ahead of the limit, at the average rate") {
    DueInputs in;
    in.request_limit = 1000;
    in.ready_ns = 0;
    in.now_ns = 1 * kSec;
    in.lead_ns = 100 * kSec / 1000;  // 100 ms
    in.requests = 800;               // 800 req/s: 200 left take 250 ms
    CHECK_FALSE(rotation_due_soon(in));
    in.requests = 900;  // 900 req/s: 100 left take 111 ms
    CHECK_FALSE(rotation_due_soon(in));
    in.requests = 910;  // 90 left take 99 ms
    CHECK(rotation_due_soon(in) == "max-requests");
    in.requests = 1000;  // at the limit it is retiring, not due
    CHECK_FALSE(rotation_due_soon(in));
    in.requests = 0;  // no traffic: never due by requests
    CHECK_FALSE(rotation_due_soon(in));
    in.request_limit = 0;
    in.requests = 5;
    CHECK_FALSE(rotation_due_soon(in));
    in.deadline_ns = in.now_ns + in.lead_ns;  // the lifetime ends within the lead
    CHECK(rotation_due_soon(in) == "max-lifetime");
    in.deadline_ns = in.now_ns + 2 * in.lead_ns;
    CHECK_FALSE(rotation_due_soon(in));
  }

  TEST_CASE("due soon: the rate counts only over at least one lead of serving") {
    // A successor 1 ms old that took a burst of 20 requests is not due: its rate over a
    // near-zero uptime says nothing about the next lead.
    DueInputs fast;
    fast.request_limit = 50;
    fast.requests = 20;
    fast.ready_ns = 10 * kSec;
    fast.now_ns = 10 * kSec + 1000000;
    fast.lead_ns = 105 * 1000000;
    CHECK_FALSE(rotation_due_soon(fast));
    fast.now_ns = 10 * kSec + fast.lead_ns - 1;
    CHECK_FALSE(rotation_due_soon(fast));
    // After one lead at that rate (20 per 105 ms), 30 left take about 158 ms: not yet.
    fast.now_ns = 10 * kSec + fast.lead_ns;
    CHECK_FALSE(rotation_due_soon(fast));
    fast.requests = 30;  // 20 left at 30 per 105 ms: within the lead
    CHECK(rotation_due_soon(fast) == "max-requests");
    // A worker faster than the lead is due once it has served for one lead.
    fast.requests = 1;
    fast.lead_ns = 2 * kSec;
    fast.request_limit = 1000000;
    fast.now_ns = fast.ready_ns + 1000;
    CHECK_FALSE(rotation_due_soon(fast));
    fast.requests = 999000;
    fast.now_ns = fast.ready_ns + 2 * kSec;
    CHECK(rotation_due_soon(fast));
  }

  TEST_CASE("lead and latency average") {
    CHECK(rotation_lead_ns(0, 100) == 100);
    CHECK(rotation_lead_ns(40, 100) == 160);
    LatencyAverage avg;
    CHECK(avg.ns() == 0);
    avg.add(100);
    CHECK(avg.ns() == 100);
    avg.add(500);
    CHECK(avg.ns() == 200);
  }

  TEST_CASE("plan: a due-soon worker gets its successor, and drains only at its limit") {
    WorkerView due = ready(1);
    due.due_soon = true;
    Plan p = plan({due, ready(2)}, 2, 1, true);
    REQUIRE(p.start_rotation.size() == 1);
    CHECK(p.start_rotation[0] == 1);
    CHECK(p.spawn_fresh == 0);
    // Successor ready while worker 1 is still under its limit: both serve, nothing drains.
    due.successor = 3;
    WorkerView s = ready(3);
    s.is_successor = true;
    s.ready_ns = 10 * kSec;
    PlanTiming t{11 * kSec, 2 * kSec};
    p = plan({due, ready(2), s}, 2, 1, true, t);
    CHECK(p.drain.empty());
    CHECK(p.scale_down.empty());
    CHECK(p.spawn_fresh == 0);
    // It reaches its limit: it drains at once, its successor is already serving.
    WorkerView at_limit = due;
    at_limit.retiring = true;
    p = plan({at_limit, ready(2), s}, 2, 1, true, t);
    CHECK(p.drain == std::vector<uint64_t>{1});
    CHECK(p.drain_early.empty());
    // The load dropped and it never got there: it leaves once the grace is over.
    t.now_ns = 12 * kSec;
    p = plan({due, ready(2), s}, 2, 1, true, t);
    CHECK(p.drain == std::vector<uint64_t>{1});
    CHECK(p.drain_early == std::vector<uint64_t>{1});
    CHECK(plan({due, ready(2), s}, 2, 1, true, {12 * kSec, 0}).drain.empty());  // no grace
  }

  TEST_CASE("plan: retiring workers get successors before due-soon ones") {
    WorkerView due = ready(1, 1);
    due.due_soon = true;
    Plan p = plan({due, retiring(2, 0, 5), ready(3)}, 3, 1, true);
    CHECK(p.start_rotation == std::vector<uint64_t>{2});
    p = plan({due, retiring(2, 0, 5), ready(3)}, 3, 2, true);
    CHECK(p.start_rotation == std::vector<uint64_t>{2, 1});
  }

  TEST_CASE("template exit: boot failure, failed reload, restart, or nothing when asked") {
    TemplateExitInputs in;
    CHECK(template_exit(in) == TemplateExit::kBootFailed);  // the first import failed
    in.asked = true;
    CHECK(template_exit(in) == TemplateExit::kIgnore);
    in = {};
    in.ever_served = true;
    in.other_ready = true;  // a HUP's template failed while the old one serves
    CHECK(template_exit(in) == TemplateExit::kReloadFailed);
    in.was_ready = true;  // a serving template died (SIGKILL, crash)
    CHECK(template_exit(in) == TemplateExit::kRestart);
    in = {};
    in.ever_served = true;  // a restarted template failed and none is left: retry, backed off
    CHECK(template_exit(in) == TemplateExit::kRestart);
    in.was_ready = true;
    in.ever_served = false;  // ready but no worker came up yet, then died: start another
    CHECK(template_exit(in) == TemplateExit::kRestart);
    in = {};
    in.ever_served = true;
    in.for_reload = true;  // a HUP from cold workers to a template, whose import failed
    CHECK(template_exit(in) == TemplateExit::kReloadFailed);
    in.ever_served = false;  // a HUP before anything served: still the app cannot load
    CHECK(template_exit(in) == TemplateExit::kBootFailed);
  }

  TEST_CASE("need template: none alive, or the newest generation lacks one it did not fail") {
    TemplateNeedInputs in;
    CHECK(need_template(in));
    in.spawn_allowed = false;
    CHECK_FALSE(need_template(in));  // crash backoff
    in = {};
    in.any_alive = true;
    CHECK(need_template(in));  // HUP: the old generation is alive, the new one is not yet
    in.current_alive = true;
    CHECK_FALSE(need_template(in));
    in.current_alive = false;
    in.current_failed = true;
    CHECK_FALSE(need_template(in));  // a failed reload waits for the next HUP
    in.any_alive = false;
    CHECK(need_template(in));  // ...unless nothing is left to fork from
  }
}

#include "workers/balance.hpp"

TEST_SUITE("balance") {
  TEST_CASE("a worker takes connections only up to one more than the least loaded other") {
    using rotor::worker::kNoOtherWorker;
    using rotor::worker::may_take_connection;
    CHECK(may_take_connection(0, kNoOtherWorker));
    CHECK(may_take_connection(1000, kNoOtherWorker));  // alone: always
    CHECK(may_take_connection(0, 0));
    CHECK(may_take_connection(1, 0));
    CHECK_FALSE(may_take_connection(2, 0));
    CHECK(may_take_connection(16, 16));
    CHECK(may_take_connection(17, 16));
    CHECK_FALSE(may_take_connection(18, 16));
    // The least loaded worker itself always may: nobody waits for everyone to decline.
    CHECK(may_take_connection(5, 9));
  }
}
