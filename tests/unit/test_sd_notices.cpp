#include <doctest/doctest.h>

#include <string>

#include "supervisor/sd_notices.hpp"

using rotor::sd::Notices;
using rotor::sd::Snapshot;
using rotor::sd::watchdog_interval_ns;

namespace {

constexpr int64_t kMs = 1'000'000;

Snapshot running(int ready, int desired, uint64_t generation = 1) {
  Snapshot s;
  s.ready = s.serving = ready;
  s.desired = desired;
  s.generation = s.in_force = generation;
  return s;
}

bool has(const std::string& message, const std::string& line) {
  return ("\n" + message + "\n").find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("sd_notify: READY=1 (with MAINPID) once every worker of the first generation is ready") {
  Notices n(42, 0);
  std::string first = n.tick(running(1, 2), 0);
  CHECK_FALSE(has(first, "READY=1"));
  CHECK(has(first, "STATUS=starting: 1 of 2 workers ready, 0 requests served, generation 1"));
  std::string ready = n.tick(running(2, 2), 10 * kMs);
  CHECK(has(ready, "READY=1"));
  CHECK(has(ready, "MAINPID=42"));
  CHECK(ready.back() != '\n');
  CHECK(n.tick(running(2, 2), 20 * kMs).empty());  // said once
}

TEST_CASE("sd_notify: a HUP sends RELOADING=1 with the monotonic time, READY=1 when it is in") {
  Notices n(42, 0);
  n.tick(running(2, 2), 0);
  std::string reloading = n.reloading(running(2, 2), 5'000'000'123);
  CHECK(has(reloading, "RELOADING=1"));
  CHECK(has(reloading, "MONOTONIC_USEC=5000000"));
  // The new generation imports: the old one serves, nothing of the new is ready.
  Snapshot importing = running(2, 2, 1);
  importing.generation = 2;
  importing.ready = 0;
  CHECK_FALSE(has(n.tick(importing, 6'000'000'000), "READY=1"));
  Snapshot rolling = running(1, 2, 2);
  rolling.serving = 3;
  CHECK_FALSE(has(n.tick(rolling, 7'000'000'000), "READY=1"));
  std::string in = n.tick(running(2, 2, 2), 8'000'000'000);
  CHECK(has(in, "READY=1"));
  CHECK_FALSE(has(in, "MAINPID=42"));
}

TEST_CASE("sd_notify: a reload that fails (config or import) still ends with READY=1") {
  Notices n(42, 0);
  n.tick(running(2, 2), 0);
  n.reloading(running(2, 2), kMs);
  // A config error: the generation never moved on.
  CHECK(has(n.tick(running(2, 2), 2 * kMs), "READY=1"));
  n.reloading(running(2, 2), 3 * kMs);
  Snapshot failed = running(2, 2, 1);
  failed.generation = 2;
  CHECK_FALSE(has(n.tick(failed, 4 * kMs), "READY=1"));
  failed.failed = 2;
  std::string out = n.tick(failed, 5 * kMs);
  CHECK(has(out, "READY=1"));
  CHECK(out.find("the reload to generation 2 failed") != std::string::npos);
}

TEST_CASE("sd_notify: a HUP before the first READY is not announced; READY covers it") {
  Notices n(42, 0);
  n.tick(running(0, 2), 0);
  CHECK(n.reloading(running(0, 2), kMs).empty());
  Snapshot s = running(2, 2, 1);
  s.generation = 2;
  CHECK_FALSE(has(n.tick(s, 2 * kMs), "READY=1"));
  CHECK(has(n.tick(running(2, 2, 2), 3 * kMs), "READY=1"));
}

TEST_CASE("sd_notify: STOPPING=1 once, whatever came before") {
  Notices n(42, 0);
  n.tick(running(2, 2), 0);
  n.reloading(running(2, 2), kMs);
  CHECK(has(n.stopping(running(2, 2), 2 * kMs), "STOPPING=1"));
  CHECK(n.stopping(running(2, 2), 3 * kMs).empty());
  CHECK_FALSE(has(n.tick(running(2, 2, 2), 4 * kMs), "READY=1"));
}

TEST_CASE("sd_notify: STATUS follows changes at most once a second") {
  Notices n(42, 0);
  n.tick(running(1, 1), 0);
  Snapshot s = running(1, 1);
  s.requests = 5;
  CHECK(n.tick(s, 500 * kMs).empty());
  std::string later = n.tick(s, 1000 * kMs);
  CHECK(has(later, "STATUS=1 of 1 workers ready, 5 requests served, generation 1"));
  CHECK(n.tick(s, 5000 * kMs).empty());  // unchanged: nothing
}

TEST_CASE("sd_notify: WATCHDOG=1 every half of WATCHDOG_USEC") {
  Notices n(42, 100 * kMs);
  CHECK(has(n.tick(running(0, 1), 0), "WATCHDOG=1"));
  CHECK(n.next_watchdog_ns() == 100 * kMs);
  CHECK_FALSE(has(n.tick(running(0, 1), 99 * kMs), "WATCHDOG=1"));
  CHECK(has(n.tick(running(0, 1), 100 * kMs), "WATCHDOG=1"));
  CHECK(n.next_watchdog_ns() == 200 * kMs);
  CHECK(Notices(42, 0).next_watchdog_ns() == 0);
}

TEST_CASE("sd_notify: the watchdog is ours only when WATCHDOG_PID is unset or names us") {
  CHECK(watchdog_interval_ns("200000", "", 7) == 100 * kMs);
  CHECK(watchdog_interval_ns("200000", "7", 7) == 100 * kMs);
  CHECK(watchdog_interval_ns("200000", "8", 7) == 0);
  CHECK(watchdog_interval_ns("", "", 7) == 0);
  CHECK(watchdog_interval_ns("0", "", 7) == 0);
  CHECK(watchdog_interval_ns("abc", "", 7) == 0);
  CHECK(watchdog_interval_ns("200000", "x", 7) == 0);
}
