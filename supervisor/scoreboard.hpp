// The scoreboard: one shared-memory slot per worker, created by the master before any fork.
// Workers write their own slot with relaxed atomics on the hot path; the master only reads
// them (and validates what it reads) except for the fields it owns (identity, limit, flags).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "supervisor/request_metrics.hpp"

namespace rotor {

enum class WorkerState : uint32_t {
  kFree = 0,      // slot unused
  kBooting = 1,   // forked, not accepting yet
  kReady = 2,     // accepting
  kRetiring = 3,  // hit a limit; still accepting until its successor is ready
  kDraining = 4,  // not accepting; finishing what it has
};

const char* to_string(WorkerState state);

struct alignas(64) Slot {
  // Written by the master at spawn, read by the worker.
  std::atomic<uint64_t> token{0};  // spawn sequence number: tells a reused slot from its old owner
  std::atomic<uint64_t> request_limit{0};  // 0 = no limit
  std::atomic<uint64_t> generation{0};
  std::atomic<uint32_t> leak_trace{0};  // 1: trace its memory (--leak-report)
  // Written by the worker.
  std::atomic<uint32_t> state{0};
  std::atomic<uint32_t> connections{0};
  std::atomic<uint32_t> in_flight{0};
  std::atomic<uint64_t> requests{0};     // completed responses
  std::atomic<int64_t> heartbeat_ns{0};  // CLOCK_MONOTONIC
  std::atomic<int64_t> ready_ns{0};      // when it started accepting
  RequestCounters request_counters;      // by status class and duration, for /metrics
};

class Scoreboard {
 public:
  explicit Scoreboard(size_t slots);  // mmap MAP_SHARED|MAP_ANONYMOUS; throws on failure
  ~Scoreboard();
  Scoreboard(const Scoreboard&) = delete;
  Scoreboard& operator=(const Scoreboard&) = delete;

  size_t size() const { return size_; }
  // One past the highest slot index ever claimed: scans stop there.
  size_t high_water() const { return header_->high_water.load(std::memory_order_acquire); }
  Slot& slot(size_t index) { return slots_[index]; }
  const Slot& slot(size_t index) const { return slots_[index]; }
  // A free slot, or -1 when every slot is taken.
  long find_free() const;
  // Reset a slot for a new worker before the fork.
  void claim(size_t index, uint64_t token, uint64_t request_limit);
  void release(size_t index);

 private:
  struct alignas(64) Header {
    std::atomic<uint32_t> high_water{0};
  };
  Header* header_;
  Slot* slots_;
  size_t size_;
};

int64_t monotonic_ns();
constexpr int64_t kNsPerMs = 1'000'000;  // of monotonic_ns()

}  // namespace rotor
