// What each worker counts of the requests it answers, in its own scoreboard slot: responses by
// status class and a request-duration histogram with buckets fixed at compile time. Every answer
// counts, error answers the engine gave for a failing app included (the slot's `requests`, which
// --max-requests compares, counts whole answers only). The worker
// is the only writer of its slot, so a count is a relaxed load and store (no locked add); the
// master reads them and, when it reaps the worker, folds them into its own totals.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace rotor {

// Upper bounds of the request-duration buckets, in nanoseconds; one more bucket is +Inf.
inline constexpr std::array<int64_t, 14> kRequestDurationBoundsNs = {
    500'000,       1'000'000,     2'500'000,     5'000'000,     10'000'000,
    25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
inline constexpr size_t kRequestDurationBuckets = kRequestDurationBoundsNs.size() + 1;

// The bucket `ns` falls in: the first whose bound it does not exceed (Prometheus' `le`), else
// one past the bounds (+Inf).
size_t bucket_index(std::span<const int64_t> bounds_ns, int64_t ns);
inline size_t request_duration_bucket(int64_t ns) {
  return bucket_index(kRequestDurationBoundsNs, ns);
}

// 1xx..5xx -> 0..4; anything else (a status outside 100..599) -> 5, which no class reports.
inline size_t status_class_index(int status) {
  unsigned c = static_cast<unsigned>(status / 100 - 1);
  return c < 5 ? c : 5;
}

struct RequestCounters {
  std::array<std::atomic<uint64_t>, 6> by_status_class{};  // [5]: outside 1xx..5xx
  std::array<std::atomic<uint64_t>, kRequestDurationBuckets> duration_buckets{};  // not cumulative
  std::atomic<uint64_t> duration_sum_ns{0};

  // Single writer (the slot's worker).
  void record(int status, int64_t duration_ns) {
    bump(by_status_class[status_class_index(status)], 1);
    bump(duration_buckets[request_duration_bucket(duration_ns)], 1);
    bump(duration_sum_ns, duration_ns > 0 ? static_cast<uint64_t>(duration_ns) : 0);
  }
  void reset();  // by the master, before the slot's next worker is forked

 private:
  static void bump(std::atomic<uint64_t>& a, uint64_t by) {
    a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
};

// Plain sums of counters: the master's totals of reaped workers, and what a scrape adds up.
struct RequestTotals {
  std::array<uint64_t, 6> by_status_class{};
  std::array<uint64_t, kRequestDurationBuckets> duration_buckets{};
  uint64_t duration_sum_ns = 0;

  void add(const RequestCounters& c);
  void add(const RequestTotals& t);
  uint64_t requests() const;  // the histogram's count
};

}  // namespace rotor
