// What rotor tells systemd (sd_notify), and when: a pure decision on the master's state and a
// clock, so that the order READY, RELOADING, READY, STOPPING and the rates are unit-tested.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace rotor::sd {

// The master's state, as each sweep sees it.
struct Snapshot {
  int ready = 0;            // workers of the generation in force, ready and not draining
  int serving = 0;          // ready workers of any generation, not draining
  int desired = 0;          // workers wanted
  uint64_t requests = 0;    // served since start, retired workers included
  uint64_t generation = 0;  // the newest asked for (a HUP's, while it imports)
  uint64_t in_force = 0;    // the generation whose config and workers are in force
  uint64_t failed = 0;      // the newest generation whose import failed (0: none)
};

// The watchdog interval for WATCHDOG_USEC and WATCHDOG_PID (as systemd sets them, empty when
// unset): half the timeout, or 0 when there is no watchdog or it watches another process.
int64_t watchdog_interval_ns(const std::string& usec, const std::string& pid, pid_t self);

class Notices {
 public:
  Notices(pid_t main_pid, int64_t watchdog_interval_ns)
      : main_pid_(main_pid), watchdog_ns_(watchdog_interval_ns) {}

  // Each returns the datagram to send ("" for nothing): newline-separated assignments.
  std::string reloading(const Snapshot& s, int64_t now_ns);  // a HUP; now_ns is CLOCK_MONOTONIC
  std::string stopping(const Snapshot& s, int64_t now_ns);   // TERM, INT, QUIT
  std::string tick(const Snapshot& s, int64_t now_ns);       // every sweep

  // When tick() next has a watchdog ping to send (0: never), for the loop's poll timeout.
  int64_t next_watchdog_ns() const { return watchdog_ns_ ? next_ping_ns_ : 0; }

  static constexpr int64_t kStatusIntervalNs = 1'000'000'000;  // STATUS at most once a second

 private:
  enum class Phase { kStarting, kReady, kReloading, kStopping };
  std::string status(const Snapshot& s) const;
  void add_status(std::string& out, const Snapshot& s, int64_t now_ns);

  pid_t main_pid_;
  int64_t watchdog_ns_;
  int64_t next_ping_ns_ = 0;  // 0: at the first tick
  Phase phase_ = Phase::kStarting;
  std::string last_status_;
  int64_t status_ns_ = 0;  // when the last STATUS was sent
  bool status_sent_ = false;
};

}  // namespace rotor::sd
