#include "supervisor/memory_budget.hpp"

#include <algorithm>
#include <cmath>

namespace rotor::budget {

namespace {

constexpr double kMaterial = 0.2;
// A worker that has not doubled its size at ready (nor grown by 1 MiB) has not grown: its first
// requests alone make pages it shared with the template its own.
constexpr uint64_t kGrownKib = 1024;

}  // namespace

// One share more than there are workers: a retiring worker holds all it grew until it has exited,
// while its successor and the others go on growing (without it, 2 workers leaking 1 MiB per run
// at full speed were OOM-killed 4 times in 2000 runs under `--memory-budget auto`; with it, none).
double share(const Sizing& s) {
  return static_cast<double>(s.budget_kib) / (s.workers + 1);
}

bool too_small(const Sizing& s) {
  return s.workers < 1 || s.ready_kib >= kPressure * share(s);
}

uint64_t request_limit(const Sizing& s) {
  if (s.workers < 1 || s.kib_per_request < kMinGrowthKib || too_small(s)) return 0;
  double requests = std::floor((share(s) - s.ready_kib) / s.kib_per_request - s.overshoot_requests);
  return static_cast<uint64_t>(std::max(1.0, requests));
}

uint64_t jittered(uint64_t limit, std::mt19937_64& rng) {
  if (limit == 0) return 0;
  auto most = static_cast<uint64_t>(static_cast<double>(limit) * kJitter);
  uint64_t cut = most ? std::uniform_int_distribution<uint64_t>(0, most)(rng) : 0;
  return std::max<uint64_t>(1, limit - cut);
}

uint64_t staggered(uint64_t limit, size_t k, size_t n) {
  if (limit == 0 || n == 0 || k >= n) return limit;
  return std::max<uint64_t>(1, limit * (n - k) / n);
}

uint64_t tighter_limit(uint64_t budget_limit, uint64_t max_requests_limit) {
  if (budget_limit == 0) return max_requests_limit;
  if (max_requests_limit == 0) return budget_limit;
  return std::min(budget_limit, max_requests_limit);
}

bool Limiter::update(const Sizing& s) {
  uint64_t next = request_limit(s);
  bool moved = !known_ || (next == 0) != (limit_ == 0) ||
               std::fabs(static_cast<double>(next) - static_cast<double>(limit_)) >
                   kMaterial * static_cast<double>(limit_);
  known_ = true;
  if (moved) limit_ = next;
  return moved;
}

std::optional<PressureRetire> pressure_retire(const PressureInputs& in) {
  uint64_t total = 0, draining = 0;
  const WorkerMemory* largest = nullptr;
  for (const WorkerMemory& w : in.workers) {
    total += w.private_kib;
    if (w.draining) draining += w.private_kib;
    if (w.draining || in.now_ns - w.ready_ns < in.min_age_ns) continue;
    if (!largest || w.private_kib > largest->private_kib) largest = &w;
  }
  total = std::max(total, in.cgroup_total_kib);
  double budget = static_cast<double>(in.budget_kib);
  double pressure = std::min(kPressure * budget, budget - static_cast<double>(in.reaction_kib));
  if (static_cast<double>(total) <= pressure || !largest) return std::nullopt;
  // A draining worker's memory is on its way back: wait for it, unless the rest is over anyway.
  if (draining && static_cast<double>(total - draining + in.successor_kib) <= pressure) {
    return std::nullopt;
  }
  bool after = total + in.successor_kib + in.reaction_kib > in.budget_kib;
  if (largest->retiring && !after) return std::nullopt;  // already on its way, with room
  uint64_t grown = std::max(kGrownKib, largest->ready_kib);
  bool at_once = largest->ready_kib > 0 && largest->private_kib <= largest->ready_kib + grown;
  return PressureRetire{largest->id, total, after, at_once};
}

}  // namespace rotor::budget
