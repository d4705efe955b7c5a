// The master's side of --memory-budget: what the workers may use together (given, or the
// cgroup's limit less what the master, the template and a successor take, measured), the
// request limit each new worker gets from the measured growth, and the largest worker rotated
// first when the workers' total comes close to the budget. The decisions are memory_budget's.
#include <algorithm>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/arbiter.hpp"
#include "supervisor/memory.hpp"

namespace rotor {

namespace {

constexpr size_t kReadyWindow = 5;  // latest workers whose size at ready is the estimate

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double mib(double kib) {
  return kib / 1024;
}

}  // namespace

// At start and on each config that takes effect: the budget as given, or auto's cgroup limit
// (the budget itself is resolved once the workers are ready and can be measured).
void Arbiter::start_memory_budget() {
  budget_.kib = 0;
  budget_.auto_pending = false;
  budget_.limiter = {};
  budget_guard_.reset();
  if (cfg_.memory_budget_mb == 0) return;
  if (cfg_.memory_budget_mb != conf::kMemoryBudgetAuto) {
    budget_.kib = static_cast<uint64_t>(cfg_.memory_budget_mb) << 10;
    spdlog::info(
        "event=memory-budget budget_mib={:.1f} source=flag per_worker_limit=- "
        "growth_kib_per_request=- workers={}",
        mib(static_cast<double>(budget_.kib)), desired_);
    return;
  }
  budget_.cgroup = cgroup::find_memory_limit("");
  if (!budget_.cgroup.bytes) {
    spdlog::warn(
        "event=memory-budget-off reason=no-cgroup-limit cgroup={} detail=\"--memory-budget "
        "auto needs a memory limit on rotor's cgroup; rotating without a budget\"",
        log::quote(budget_.cgroup.dir.empty() ? "-" : budget_.cgroup.dir));
    return;
  }
  budget_.auto_pending = true;
}

// The budget's request limit for a new worker (jittered), or --max-requests' when tighter.
void Arbiter::set_request_limit(Worker& w) {
  uint64_t drawn = policy::draw_request_limit(cfg_.max_requests, cfg_.max_requests_jitter, rng_);
  uint64_t from_budget = budget_on() ? budget::jittered(budget_.limiter.limit(), rng_) : 0;
  w.request_limit = budget::tighter_limit(from_budget, drawn);
  w.limit_from_budget = from_budget > 0 && (drawn == 0 || from_budget < drawn);
}

void Arbiter::note_budget_ready(const Worker& w) {
  if (!budget_on() && !budget_.auto_pending) return;
  budget_.ready_kib.push_back(w.ready_memory.private_kib);
  while (budget_.ready_kib.size() > kReadyWindow) budget_.ready_kib.pop_front();
}

// Once per sampling period (the limits' second; each sweep while there is no growth estimate
// yet or the workers hold more than half the budget: a fast leak fills the rest within seconds):
// resolve auto, refresh the estimate, rotate under pressure.
void Arbiter::check_memory_budget(int64_t now) {
  int64_t period = budget_.hot ? kSweepMs * kNsPerMs : kMemorySampleNs;
  if (now - budget_.checked_ns < period) return;
  budget_.checked_ns = now;
  sample_for_budget(now, period);
  if (budget_.auto_pending) resolve_auto_budget();
  if (!budget_on()) return;
  std::optional<budget::Sizing> sizing = budget_sizing();
  if (sizing) update_budget_limit(*sizing);
  budget::PressureInputs in;
  in.budget_kib = budget_.kib;
  in.now_ns = now;
  in.min_age_ns = budget_guard_.min_age_ns();
  in.successor_kib = sizing ? static_cast<uint64_t>(sizing->ready_kib) : 0;
  if (sizing) {
    in.reaction_kib =
        static_cast<uint64_t>(std::max(0.0, sizing->overshoot_requests * sizing->kib_per_request));
  }
  uint64_t total = 0;
  for (const auto& [pid, w] : children_.workers()) {
    if (w.phase == policy::Phase::kBooting) continue;
    in.workers.push_back({w.id, w.last_memory.private_kib, w.ready_memory.private_kib, w.ready_ns,
                          w.phase == policy::Phase::kDraining, w.reason != ExitReason::kNone});
    total += w.last_memory.private_kib;
  }
  budget_.hot = !sizing || sizing->kib_per_request == 0 || 2 * total > budget_.kib;
  if (budget_.cgroup.bytes && !budget_.auto_pending) {
    remeasure_reserved(total);
    std::optional<uint64_t> usage = cgroup::read_memory_usage(budget_.cgroup);
    if (usage && (*usage >> 10) > budget_.reserved_kib) {
      in.cgroup_total_kib = (*usage >> 10) - budget_.reserved_kib;
    }
  }
  std::optional<budget::PressureRetire> r = budget::pressure_retire(in);
  if (!r) return;
  r->at_once = r->at_once || (sizing && budget::too_small(*sizing));
  retire_for_budget(*children_.find(r->id), *r);
}

// The workers' private memory (a retiring or draining worker's too: it keeps growing until its
// successor is ready, and while it finishes its requests).
void Arbiter::sample_for_budget(int64_t now, int64_t period) {
  for (auto& [pid, w] : children_.workers()) {
    if (w.phase == policy::Phase::kBooting || now - w.budget_checked_ns < period) continue;
    w.budget_checked_ns = now;
    auto m = read_memory(w.pid);
    if (!m) continue;
    w.last_memory = *m;
    const Slot& s = scoreboard_->slot(w.slot);
    if (s.token.load(std::memory_order_acquire) == w.id) {
      w.growth.add(s.requests.load(std::memory_order_relaxed), m->private_kib);
    }
  }
}

// auto: the cgroup's limit less what is not the workers' (the cgroup's usage now less the
// workers' private memory: the master, the template, the kernel's and the page cache's share)
// and a successor's size at ready; measured once the workers in force are all ready.
void Arbiter::resolve_auto_budget() {
  uint64_t workers_kib = 0;
  int ready = 0;
  for (const auto& [pid, w] : children_.workers()) {
    if (w.phase != policy::Phase::kReady || w.ready_memory.private_kib == 0) continue;
    workers_kib += std::max(w.last_memory.private_kib, w.ready_memory.private_kib);
    ++ready;
  }
  std::optional<uint64_t> usage = cgroup::read_memory_usage(budget_.cgroup);
  if (ready < desired_ || budget_.ready_kib.empty() || !usage) return;
  budget_.auto_pending = false;
  uint64_t limit_kib = *budget_.cgroup.bytes >> 10;
  uint64_t reserved_kib = (*usage >> 10) > workers_kib ? (*usage >> 10) - workers_kib : 0;
  std::vector<double> sizes(budget_.ready_kib.begin(), budget_.ready_kib.end());
  auto successor_kib = static_cast<uint64_t>(median(sizes));
  budget_.reserved_kib = reserved_kib;
  budget_.successor_kib = successor_kib;
  uint64_t taken = reserved_kib + successor_kib;
  budget_.kib = limit_kib > taken + 1024 ? limit_kib - taken : 1024;  // at least 1 MiB
  update_budget_limit(*budget_sizing(),
                      fmt::format(" cgroup_limit_mib={} reserved_mib={:.1f} successor_mib={:.1f} "
                                  "cgroup={}",
                                  limit_kib >> 10, mib(reserved_kib), mib(successor_kib),
                                  log::quote(budget_.cgroup.dir)));
}

// What the budget knows: the size at ready of the latest workers, and the growth per request of
// the newest generation's exits, else of the workers serving now.
std::optional<budget::Sizing> Arbiter::budget_sizing() const {
  if (budget_.ready_kib.empty()) return std::nullopt;
  budget::Sizing s;
  s.budget_kib = budget_.kib;
  s.workers = desired_;
  s.ready_kib = median(std::vector<double>(budget_.ready_kib.begin(), budget_.ready_kib.end()));
  std::vector<double> slopes;
  for (const auto& [pid, w] : children_.workers()) {
    if (auto slope = w.growth.kib_per_request(); slope && w.phase != policy::Phase::kBooting)
      slopes.push_back(*slope);
  }
  if (!budget_.overshoot.empty()) {
    s.overshoot_requests =
        median(std::vector<double>(budget_.overshoot.begin(), budget_.overshoot.end()));
  }
  if (!memory_trends_.empty()) {
    s.kib_per_request = memory_trends_.rbegin()->second.estimate()->kib_per_request;
  } else if (!slopes.empty()) {
    s.kib_per_request = median(slopes);
  }
  return s;
}

// A new estimate: when the per-worker limit moves materially it is logged and applied to the
// serving workers whose limit is looser (each drawn with its own jitter). `detail` (auto's
// measurements) is logged with it.
void Arbiter::update_budget_limit(const budget::Sizing& sizing, const std::string& detail) {
  if (budget::too_small(sizing)) warn_budget_too_small(sizing.ready_kib);
  if (!budget_.limiter.update(sizing) && detail.empty()) return;
  log_budget(sizing, detail);
  uint64_t limit = budget_.limiter.limit();
  if (limit == 0) return;
  std::vector<Worker*> unlimited;  // started together, before any estimate: staggered
  for (auto& [pid, w] : children_.workers()) {
    if (w.phase != policy::Phase::kReady || w.reason != ExitReason::kNone) continue;
    uint64_t own = budget::jittered(limit, rng_);
    if (w.request_limit == 0) unlimited.push_back(&w);
    if (w.request_limit != 0 && w.request_limit <= own) continue;
    w.request_limit = own;
    w.limit_from_budget = true;
  }
  for (size_t k = 0; k < unlimited.size(); ++k) {
    unlimited[k]->request_limit =
        budget::staggered(unlimited[k]->request_limit, k, unlimited.size());
  }
}

void Arbiter::log_budget(const budget::Sizing& sizing, const std::string& extra) const {
  uint64_t limit = budget::request_limit(sizing);
  spdlog::info(
      "event=memory-budget budget_mib={:.1f} source={} per_worker_limit={} "
      "growth_kib_per_request={} workers={} ready_private_mib={:.1f}{}",
      mib(budget_.kib), cfg_.memory_budget_mb == conf::kMemoryBudgetAuto ? "auto" : "flag",
      limit ? std::to_string(limit) : "-",
      sizing.kib_per_request > 0 ? fmt::format("{:.2f}", sizing.kib_per_request) : "-",
      sizing.workers, mib(sizing.ready_kib), extra);
}

void Arbiter::warn_budget_too_small(double ready_kib) {
  if (budget_.warned_small) return;
  budget_.warned_small = true;
  spdlog::warn(
      "event=memory-budget-too-small budget_mib={:.1f} workers={} worker_ready_private_mib={:.1f} "
      "detail=\"the workers take most of the budget as they start; workers are rotated on it no "
      "sooner than min_age_s after they start serving, doubling up to {:.0f} s\"",
      mib(budget_.kib), desired_, mib(ready_kib), seconds(kLimitCapNs));
}

// The largest worker leaves first; before its successor starts when there is no room for both.
void Arbiter::retire_for_budget(Worker& w, const budget::PressureRetire& r) {
  if (budget_guard_.on_retire(r.at_once)) warn_budget_too_small(w.ready_memory.private_kib);
  spdlog::info(
      "event=budget-retire pid={} private_mib={:.1f} total_mib={:.1f} budget_mib={:.1f} "
      "successor={} min_age_s={:.0f}",
      w.pid, mib(w.last_memory.private_kib), mib(r.total_kib), mib(budget_.kib),
      r.successor_after ? "after" : "before", seconds(budget_guard_.min_age_ns()));
  if (r.successor_after) {
    drain_worker(w, ExitReason::kMemoryBudget);
  } else {
    w.reason = ExitReason::kMemoryBudget;
  }
}

// The requests a worker limited by the budget served past its limit (while its successor booted
// and it drained): the next limits leave room for them.
void Arbiter::note_budget_exit(const Worker& w, uint64_t requests) {
  if (!budget_on() || !w.limit_from_budget || w.reason != ExitReason::kMemoryBudget) return;
  if (requests < w.request_limit) return;  // rotated near the budget before its limit
  budget_.overshoot.push_back(requests - w.request_limit);
  while (budget_.overshoot.size() > kReadyWindow) budget_.overshoot.pop_front();
}

// auto: what the cgroup uses outside the workers grows under load (socket buffers, page tables,
// page cache); the budget shrinks to the most of it measured, while every worker is serving
// and sampled (a draining worker's memory is not the rest's).
void Arbiter::remeasure_reserved(uint64_t workers_kib) {
  for (const auto& [pid, w] : children_.workers()) {
    if (w.phase != policy::Phase::kReady) return;
  }
  std::optional<uint64_t> usage = cgroup::read_memory_usage(budget_.cgroup);
  if (!usage || (*usage >> 10) <= workers_kib + budget_.reserved_kib) return;
  budget_.reserved_kib = (*usage >> 10) - workers_kib;
  uint64_t limit_kib = *budget_.cgroup.bytes >> 10;
  uint64_t taken = budget_.reserved_kib + budget_.successor_kib;
  budget_.kib = limit_kib > taken + 1024 ? limit_kib - taken : 1024;
}

}  // namespace rotor
