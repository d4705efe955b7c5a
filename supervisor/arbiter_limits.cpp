// The master's side of the rotation limits: whether a worker reached its request limit, its
// memory limits (resident or private, sampled once a second) or its lifetime, and the guard
// that backs a limit off when a new worker is already over it.
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "supervisor/arbiter.hpp"
#include "supervisor/memory.hpp"

namespace rotor {

namespace {

constexpr size_t kTrendGenerations = 4;

// A value with `decimals` decimals, or "-" when there is none.
std::string optional_text(std::optional<double> v, int decimals) {
  return v ? fmt::format("{:.{}f}", *v, decimals) : "-";
}

uint64_t read_rss_bytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

// Whether the worker reached a limit (requests, memory, age): then it has a reason to leave.
void Arbiter::check_limits(Worker& w, uint64_t requests, int64_t now) {
  policy::RetireInputs in;
  in.requests = requests;
  in.request_limit = w.request_limit;
  in.max_rss_bytes = static_cast<uint64_t>(cfg_.max_rss_mb) << 20;
  in.max_private_bytes = static_cast<uint64_t>(cfg_.max_private_mb) << 20;
  if (now - w.memory_checked_ns >= kMemorySampleNs) sample_memory(w, now, in);
  in.now_ns = now;
  in.deadline_ns = w.deadline_ns;
  in.ready_ns = w.ready_ns;
  in.rss_min_age_ns = rss_guard_.min_age_ns();
  in.private_min_age_ns = private_guard_.min_age_ns();
  in.lifetime_min_age_ns = lifetime_guard_.min_age_ns();
  auto reason = policy::retire_reason(in);
  if (!reason) return;
  w.reason = exit_reason_from(*reason);
  if (w.reason == ExitReason::kMaxRequests && w.limit_from_budget) {
    w.reason = ExitReason::kMemoryBudget;
  }
  spdlog::debug("event=retire pid={} reason={} requests={} limit={} rss_mb={}", w.pid, *reason,
                in.requests, w.request_limit, in.rss_bytes >> 20);
  if (w.reason != ExitReason::kMaxRequests && w.reason != ExitReason::kMemoryBudget) {
    on_limit_retire(w, in);
  }
}

// Whether the worker will reach a limit within a successor's boot time (latched once true).
void Arbiter::check_due_soon(Worker& w, uint64_t requests, int64_t now) {
  policy::DueInputs due;
  due.requests = requests;
  due.request_limit = w.request_limit;
  due.ready_ns = w.ready_ns;
  due.deadline_ns =
      policy::guarded_deadline(w.deadline_ns, w.ready_ns, lifetime_guard_.min_age_ns());
  due.now_ns = now;
  due.lead_ns = policy::rotation_lead_ns(spawn_latency_.ns(), kSweepMs * kNsPerMs);
  auto due_reason = policy::rotation_due_soon(due);
  w.due_soon = due_reason.has_value();
  if (!w.due_soon) return;
  w.due_reason = exit_reason_from(*due_reason);
  if (w.due_reason == ExitReason::kMaxRequests && w.limit_from_budget) {
    w.due_reason = ExitReason::kMemoryBudget;
  }
  spdlog::debug("event=rotation-due pid={} requests={} limit={} lead_ms={}", w.pid, requests,
                w.request_limit, due.lead_ns / kNsPerMs);
}

// Reads what the memory limits in `in` compare (nothing when none is set): the resident size
// from statm (cheap), the private size from smaps_rollup only for --max-private or the budget.
void Arbiter::sample_memory(Worker& w, int64_t now, policy::RetireInputs& in) {
  w.memory_checked_ns = now;
  if (in.max_rss_bytes) {
    in.rss_bytes = read_rss_bytes(w.pid);
    if (in.rss_bytes > 0 && in.rss_bytes <= in.max_rss_bytes) w.rss_seen_under = true;
  }
  if (!in.max_private_bytes && !budget_on()) return;
  auto m = read_memory(w.pid);
  if (!m) return;
  w.last_memory = *m;
  w.growth.add(in.requests, m->private_kib);
  in.private_bytes = m->private_kib << 10;
  if (in.private_bytes <= in.max_private_bytes) w.private_seen_under = true;
}

// The worker's memory as it starts serving: for its exit line, and the first sample of the
// memory limits (a new worker already over one is what the limit's guard backs off for).
void Arbiter::note_ready_memory(Worker& w, int64_t now) {
  if (auto m = read_memory(w.pid)) {
    w.ready_memory = *m;
    w.growth.add(0, m->private_kib);
    note_budget_ready(w);
  }
  policy::RetireInputs in;
  in.max_rss_bytes = static_cast<uint64_t>(cfg_.max_rss_mb) << 20;
  in.max_private_bytes = static_cast<uint64_t>(cfg_.max_private_mb) << 20;
  if (!in.max_rss_bytes && !in.max_private_bytes) return;
  sample_memory(w, now, in);
  w.fresh_rss = in.rss_bytes;
}

// The worker's memory as it is asked to leave: what its exit line shows (its pages are gone
// by the time it is reaped).
void Arbiter::note_leaving_memory(Worker& w) {
  auto m = read_memory(w.pid);
  if (!m) return;
  w.last_memory = *m;
  const Slot& s = scoreboard_->slot(w.slot);
  if (s.token.load(std::memory_order_acquire) != w.id) return;
  w.growth.add(s.requests.load(std::memory_order_relaxed), m->private_kib);
}

// A limit that a new worker already exceeds makes every successor leave at its minimum age:
// the guard doubles that age, and the operator is told once what the limit and a new worker are.
void Arbiter::on_limit_retire(const Worker& w, const policy::RetireInputs& in) {
  bool rss = w.reason == ExitReason::kMaxRss;
  bool priv = w.reason == ExitReason::kMaxPrivate;
  policy::LimitGuard& guard = rss ? rss_guard_ : priv ? private_guard_ : lifetime_guard_;
  const char* limit = exit_reason_name(w.reason);
  bool at_once = policy::retired_at_once(limit, in,
                                         rss    ? w.rss_seen_under
                                         : priv ? w.private_seen_under
                                                : false);
  if (at_once) {
    spdlog::debug("event=limit-backoff limit={} pid={} min_age_s={:.0f}", limit, w.pid,
                  seconds(std::min(kLimitCapNs, 2 * guard.min_age_ns())));
  }
  if (guard.on_retire(at_once)) warn_limit_below_new_worker(w, in);
}

void Arbiter::warn_limit_below_new_worker(const Worker& w, const policy::RetireInputs& in) {
  std::string detail = fmt::format(
      "detail=\"a new worker is already over the limit; workers are retired on it no "
      "sooner than min_age_s after they start serving, doubling up to {:.0f} s; "
      "they keep serving meanwhile\"",
      seconds(kLimitCapNs));
  if (w.reason == ExitReason::kMaxRss) {
    spdlog::warn(
        "event=limit-below-new-worker limit=max_rss max_rss_mb={} worker_rss_mb={} "
        "pid={} min_age_s={:.0f} {}",
        cfg_.max_rss_mb, (w.fresh_rss ? w.fresh_rss : in.rss_bytes) >> 20, w.pid,
        seconds(rss_guard_.min_age_ns()), detail);
  } else if (w.reason == ExitReason::kMaxPrivate) {
    uint64_t fresh_kib =
        w.ready_memory.private_kib ? w.ready_memory.private_kib : in.private_bytes >> 10;
    spdlog::warn(
        "event=limit-below-new-worker limit=max_private max_private_mb={} "
        "worker_private_mb={} pid={} min_age_s={:.0f} {}",
        cfg_.max_private_mb, fresh_kib >> 10, w.pid, seconds(private_guard_.min_age_ns()), detail);
  } else {
    spdlog::warn(
        "event=limit-below-new-worker limit=max_lifetime max_lifetime_s={} "
        "worker_lifetime_s={:.3f} pid={} min_age_s={:.0f} {}",
        cfg_.max_lifetime, seconds(in.deadline_ns - w.started_ns), w.pid,
        seconds(lifetime_guard_.min_age_ns()), detail);
  }
}

// A generation's growth estimate takes in each worker's exit; logged when it changes materially.
void Arbiter::note_memory_trend(const Worker& w, uint64_t requests, int64_t ready_ns, int64_t now) {
  std::optional<double> slope = w.growth.kib_per_request();
  if (!slope || stopping_) return;  // a worker stopped with the master says little
  ExitGrowth exit{*slope, static_cast<double>(w.ready_memory.private_kib), 0};
  if (ready_ns > 0 && now > ready_ns) exit.requests_per_second = requests * 1e9 / (now - ready_ns);
  if (!memory_trends_.count(w.generation)) {
    while (memory_trends_.size() >= kTrendGenerations) memory_trends_.erase(memory_trends_.begin());
  }
  MemoryTrend& trend = memory_trends_[w.generation];
  if (!trend.add(exit)) return;
  ExitGrowth e = *trend.estimate();
  uint64_t limit = cfg_.max_requests > 0 ? cfg_.max_requests + cfg_.max_requests_jitter / 2 : 0;
  spdlog::info(
      "event=memory-trend generation={} kib_per_request={:.2f} projected_private_mb_at_limit={} "
      "seconds_to_max_private={}",
      w.generation, e.kib_per_request, optional_text(private_mib_at_limit(e, limit), 1),
      optional_text(seconds_to_max_private(e, static_cast<uint64_t>(cfg_.max_private_mb) << 10),
                    0));
}

}  // namespace rotor
