// What the master counts for /metrics beyond the scoreboard: the requests of workers it reaped
// (so that counters never go back), exits by reason, spawn durations, reloads by result, and a
// short-lived cache of worker memory samples (smaps_rollup walks page tables: not per scrape).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>

#include "supervisor/children.hpp"
#include "supervisor/memory.hpp"
#include "supervisor/request_metrics.hpp"

namespace rotor {

// Spawn to ready, nanoseconds: a warm fork is milliseconds, a cold import seconds.
inline constexpr std::array<int64_t, 12> kSpawnDurationBoundsNs = {
    5'000'000,   10'000'000,    25'000'000,    50'000'000,    100'000'000,    250'000'000,
    500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000, 30'000'000'000};

struct MasterMetrics {
  RequestTotals retired;                 // of the workers reaped so far
  std::map<ExitReason, uint64_t> exits;  // as logged by event=worker-exit
  std::array<uint64_t, kSpawnDurationBoundsNs.size() + 1> spawn_buckets{};
  int64_t spawn_sum_ns = 0;
  uint64_t reloads_succeeded = 0;
  uint64_t reloads_failed = 0;
  double start_time_seconds = 0;  // the master's, since the epoch

  struct MemorySample {
    uint64_t worker_id = 0;
    int64_t taken_ns = 0;
    MemoryUsage usage;
  };
  std::map<size_t, MemorySample> memory;  // by slot

  void add_spawn(int64_t ns) {
    ++spawn_buckets[bucket_index(kSpawnDurationBoundsNs, ns)];
    spawn_sum_ns += ns;
  }
};

}  // namespace rotor
