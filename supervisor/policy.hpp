// Pure supervision decisions: request limits, lifetimes, crash backoff and the plan of which
// workers to spawn and drain. No I/O and no clock of their own (time comes in as a value), so
// they are unit-tested with a fake clock; the arbiter only carries the plan out.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace rotor::policy {

// max_requests + uniform_int(0, jitter); 0 when max_requests is 0 (no limit).
uint64_t draw_request_limit(int64_t max_requests, int64_t jitter, std::mt19937_64& rng);

// Nanoseconds a worker may live: max_lifetime + uniform(0, jitter); 0 when max_lifetime is 0.
int64_t draw_lifetime_ns(double max_lifetime, double jitter, std::mt19937_64& rng);

// Why a running worker should be rotated now, if at all. Checked in this order. Memory and
// age never retire a worker that has served for less than its limit's minimum age (a limit a
// new worker already exceeds would otherwise replace workers as fast as they start).
struct RetireInputs {
  uint64_t requests = 0;
  uint64_t request_limit = 0;      // 0 = none
  uint64_t rss_bytes = 0;          // 0 = unknown
  uint64_t max_rss_bytes = 0;      // 0 = none
  uint64_t private_bytes = 0;      // 0 = unknown
  uint64_t max_private_bytes = 0;  // 0 = none
  int64_t now_ns = 0;
  int64_t deadline_ns = 0;  // end of lifetime, 0 = none
  int64_t ready_ns = 0;     // when it started accepting
  int64_t rss_min_age_ns = 0;
  int64_t private_min_age_ns = 0;
  int64_t lifetime_min_age_ns = 0;
};
std::optional<std::string> retire_reason(const RetireInputs& in);

// The end of a worker's lifetime once its minimum age is applied (0 = none).
int64_t guarded_deadline(int64_t deadline_ns, int64_t ready_ns, int64_t min_age_ns);

// Whether a worker retired on "max-rss", "max-private" or "max-lifetime" was over that limit
// from the start: its memory was never sampled below the limit (`seen_under` is false), or its
// lifetime ended before its minimum age did. Its successor will be too, so the limit's guard
// backs off.
bool retired_at_once(const std::string& reason, const RetireInputs& in, bool seen_under);

// The minimum age of one limit (memory or age): `floor` while the limit is one a worker
// reaches by living; each worker retired on it at once doubles it, up to `cap`; a worker that
// was under the limit for a while brings it back to the floor.
class LimitGuard {
 public:
  LimitGuard(int64_t floor_ns, int64_t cap_ns)
      : floor_ns_(floor_ns), cap_ns_(cap_ns), min_age_ns_(floor_ns) {}
  int64_t min_age_ns() const { return min_age_ns_; }
  // True the first time a worker is retired at once: the caller warns, once.
  bool on_retire(bool at_once);
  // A HUP may have changed the limit: start from the floor again (the warning stays given).
  void reset() { min_age_ns_ = floor_ns_; }

 private:
  int64_t floor_ns_, cap_ns_, min_age_ns_;
  bool warned_ = false;
};

// Whether a worker's death is a failure to boot, backed off, or the loss of a worker that was
// serving, replaced at once (as gunicorn does: a request that crashes its worker must not leave
// the pool empty). A worker that died before it was ready failed to boot; so did one that was
// ready for less than `settle_ns` and never took a connection (it would otherwise fork-loop).
struct DeathInputs {
  bool was_ready = false;
  int64_t ready_for_ns = 0;  // how long it had been ready
  bool took_work = false;    // served, or was serving, a request or held a connection
};
bool death_is_boot_failure(const DeathInputs& in, int64_t settle_ns);

// Anticipated rotation: a successor takes a while to boot (spawn latency), and a worker that
// keeps serving past its limit meanwhile keeps leaking. So the successor is started `lead_ns`
// before the worker is expected to reach its request limit (at its average rate since it
// became ready) or its lifetime, and is ready when the worker gets there. The rate counts only
// once the worker has served for at least one lead: a rate over a near-zero uptime (a burst
// hitting a worker that just became ready) would start successors nobody needs.
struct DueInputs {
  uint64_t requests = 0;
  uint64_t request_limit = 0;  // 0 = none
  int64_t ready_ns = 0;        // when the worker started accepting
  int64_t deadline_ns = 0;     // end of lifetime, 0 = none
  int64_t now_ns = 0;
  int64_t lead_ns = 0;
};
// The limit it is about to reach ("max-lifetime", "max-requests"), or nothing.
std::optional<std::string> rotation_due_soon(const DueInputs& in);

// How far ahead to start a successor: the expected spawn latency with a margin, plus one
// sweep of the master (it only looks that often when nothing wakes it).
int64_t rotation_lead_ns(int64_t spawn_latency_ns, int64_t sweep_ns);

// A running average of spawn latencies (the newest weighs a quarter); 0 until one is known.
class LatencyAverage {
 public:
  void add(int64_t ns) { average_ns_ = average_ns_ ? (3 * average_ns_ + ns) / 4 : ns; }
  int64_t ns() const { return average_ns_; }

 private:
  int64_t average_ns_ = 0;
};

// Respawn backoff after crashes: the first crash respawns at once; crashes that follow within
// `window` double the delay from `base` up to `max`. A quiet window resets it.
class Backoff {
 public:
  Backoff(int64_t base_ns, int64_t max_ns, int64_t window_ns)
      : base_ns_(base_ns), max_ns_(max_ns), window_ns_(window_ns) {}
  void on_crash(int64_t now_ns);
  // Forget the crashes: an operator's HUP says the cause may be fixed, so no delay is earned.
  void reset() { *this = Backoff(base_ns_, max_ns_, window_ns_); }
  bool allows_spawn(int64_t now_ns) const { return now_ns >= not_before_ns_; }
  int64_t not_before_ns() const { return not_before_ns_; }
  int64_t delay_ns() const { return delay_ns_; }
  int crashes() const { return crashes_; }

 private:
  int64_t base_ns_, max_ns_, window_ns_;
  int crashes_ = 0;
  int64_t last_crash_ns_ = 0;
  int64_t delay_ns_ = 0;
  int64_t not_before_ns_ = 0;
};

// One worker as the planner sees it.
enum class Phase { kBooting, kReady, kDraining };
struct WorkerView {
  uint64_t id = 0;
  Phase phase = Phase::kBooting;
  bool retiring = false;      // has a retire reason, still serving
  bool due_soon = false;      // expected to reach a limit within the spawn latency
  int64_t ready_ns = 0;       // when it started accepting (0 while booting)
  uint64_t successor = 0;     // id of the worker booting to replace it, 0 = none yet
  bool is_successor = false;  // booted to replace a retiring worker
  int64_t started_ns = 0;
};

struct Plan {
  int spawn_fresh = 0;                   // initial boot, crash replacement, scale up
  std::vector<uint64_t> start_rotation;  // retiring workers that get a successor now
  std::vector<uint64_t> drain;           // retiring workers whose successor is ready
  // Of those, the ones drained before they reached their limit: their successor has been
  // ready for `early_grace_ns` while they had not (the load dropped).
  std::vector<uint64_t> drain_early;
  std::vector<uint64_t> scale_down;  // surplus workers to drain
};

// Spawn-before-retire with at most `max_concurrent_rotations` successors booting at once;
// retiring workers get theirs before workers that are only due soon. `spawn_allowed` is false
// while a boot-failure backoff runs: then no successor is started and the `held_back` places
// of the workers that failed to boot wait for it; a place a serving worker left by dying is
// filled at once.
struct PlanTiming {
  int64_t now_ns = 0;
  int64_t early_grace_ns = 0;  // 0: a due-soon worker is never drained before its limit
  int held_back = 0;           // places that wait for the backoff (only when !spawn_allowed)
};
Plan plan(const std::vector<WorkerView>& workers, int desired, int max_concurrent_rotations,
          bool spawn_allowed, PlanTiming timing = {});

// What the master does when a template process exits.
enum class TemplateExit {
  kIgnore,        // it was asked to leave (replaced, stopping, threads fallback)
  kBootFailed,    // nothing was ever served: the app cannot load, the master exits
  kReloadFailed,  // a HUP's new template failed; the running generation keeps serving
  kRestart,       // it died while it was needed: start another (with crash backoff)
};
struct TemplateExitInputs {
  bool asked = false;        // the master retired it or is stopping
  bool was_ready = false;    // it had imported the app
  bool other_ready = false;  // another template is ready (an older generation during a HUP)
  bool ever_served = false;  // some worker of this master has been ready
  bool for_reload = false;   // started by a HUP whose config has not taken effect yet
};
TemplateExit template_exit(const TemplateExitInputs& in);

// Whether the master should start a template now: when none is alive at all (after a crash,
// even if the last reload failed: the code may be fixed by now), or when the newest generation
// has none and its import has not failed already.
struct TemplateNeedInputs {
  bool any_alive = false;       // booting or ready, not retired
  bool current_alive = false;   // one of the newest generation
  bool current_failed = false;  // the newest generation's import failed (until next HUP)
  bool spawn_allowed = true;    // crash backoff
};
bool need_template(const TemplateNeedInputs& in);

// --workers auto: a CPU quota's CPUs rounded up (1.5 CPUs: 2 workers), else the CPUs rotor may
// run on (its affinity mask); within 1..max_workers. Never the host's core count: a container
// sees every core of its node. A quota is `quota_us` per `period_us`; quota_us <= 0 is none.
int auto_workers(int64_t quota_us, int64_t period_us, int affinity_cpus, int max_workers);

}  // namespace rotor::policy
