// --memory-budget as pure decisions: the request limit that keeps N workers within the private
// memory they may use together (from the measured size at ready and growth per request), and
// which worker to rotate first when their total comes close to the budget anyway. No I/O and no
// clock of their own (time comes in as a value): unit-tested with plain inputs.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

namespace rotor::budget {

// Above this share of the budget the largest worker is rotated first.
constexpr double kPressure = 0.9;
// Growth below this many KiB per request is noise: the budget sets no request limit for it.
constexpr double kMinGrowthKib = 1.0;
// A worker's limit is drawn from [limit * (1 - kJitter), limit], so they do not rotate together.
constexpr double kJitter = 0.2;

struct Sizing {
  uint64_t budget_kib = 0;
  int workers = 1;
  double ready_kib = 0;        // a fresh worker's private memory when it becomes ready
  double kib_per_request = 0;  // its growth, measured
  // Requests a worker serves past its limit (while its successor boots and it drains), measured
  // at the exits: the limit leaves room for them.
  double overshoot_requests = 0;
};

// A worker's share: budget / (workers + 1), the one more for a retiring worker's memory.
double share(const Sizing& s);

// Whether a worker at ready already takes most of its share (a rotation would find the next one
// over too).
bool too_small(const Sizing& s);

// The requests after which one worker reaches its share of the budget (share()), less
// its overshoot: 0 when the growth is too small to set one, or the budget too small
// (too_small()); else at least 1.
uint64_t request_limit(const Sizing& s);

// A worker's own limit: `limit` less a random part of up to kJitter; 0 stays 0, and it is >= 1.
uint64_t jittered(uint64_t limit, std::mt19937_64& rng);

// Workers that start together (the first ones) would reach the same limit together: the k-th of
// n gets (n - k) / n of it, so their rotations spread over a worker's life. At least 1.
uint64_t staggered(uint64_t limit, size_t k, size_t n);

// The tighter of the budget's limit and --max-requests' (0 = none, for either).
uint64_t tighter_limit(uint64_t budget_limit, uint64_t max_requests_limit);

// The per-worker limit in force; moves only when a new estimate changes it materially (by more
// than a fifth, or from none to one and back), so the log and the workers' limits do not churn.
class Limiter {
 public:
  // True when the limit is new or moved materially: the caller logs it and applies it.
  bool update(const Sizing& s);
  uint64_t limit() const { return limit_; }
  bool known() const { return known_; }

 private:
  bool known_ = false;
  uint64_t limit_ = 0;
};

// One worker's memory as the master sampled it last.
struct WorkerMemory {
  uint64_t id = 0;
  uint64_t private_kib = 0;
  uint64_t ready_kib = 0;  // when it became ready (0: not read)
  int64_t ready_ns = 0;
  bool draining = false;  // no longer accepting: its memory is about to be freed
  bool retiring = false;  // has a reason to leave; still serving until its successor is ready
};

struct PressureInputs {
  uint64_t budget_kib = 0;
  uint64_t successor_kib = 0;  // what a successor takes when it becomes ready
  std::vector<WorkerMemory> workers;
  int64_t now_ns = 0;
  int64_t min_age_ns = 0;  // a worker younger than this (served for less) is not rotated
  // auto: the cgroup's usage less what it uses outside the workers; the total when it is more
  // than the workers' samples add up to (memory between two samples, a dying worker's pages).
  uint64_t cgroup_total_kib = 0;
  // What a worker grows by between its limit and its exit (measured overshoot times growth):
  // the master reacts no faster, so it is kept free below the budget too.
  uint64_t reaction_kib = 0;
};

struct PressureRetire {
  uint64_t id = 0;
  uint64_t total_kib = 0;
  // No room for a successor beside it: it leaves before its successor starts.
  bool successor_after = false;
  // It had not doubled its size at ready: the budget is too small for the workers as they
  // start, and rotating them will not help.
  bool at_once = false;
};

// Which worker to rotate now, if any: with the workers' total above kPressure of the budget (or
// within reaction_kib of it, when that is less), the
// largest one old enough (not draining). Nothing while a worker drains if the others and a
// successor are within it (its memory is on its way back), nor for a worker already retiring
// that has room for its successor.
std::optional<PressureRetire> pressure_retire(const PressureInputs& in);

}  // namespace rotor::budget
