#include "supervisor/request_metrics.hpp"

namespace rotor {

size_t bucket_index(std::span<const int64_t> bounds_ns, int64_t ns) {
  size_t i = 0;
  while (i < bounds_ns.size() && ns > bounds_ns[i]) ++i;
  return i;
}

void RequestCounters::reset() {
  for (auto& c : by_status_class) c.store(0, std::memory_order_relaxed);
  for (auto& c : duration_buckets) c.store(0, std::memory_order_relaxed);
  duration_sum_ns.store(0, std::memory_order_relaxed);
}

void RequestTotals::add(const RequestCounters& c) {
  for (size_t i = 0; i < by_status_class.size(); ++i)
    by_status_class[i] += c.by_status_class[i].load(std::memory_order_relaxed);
  for (size_t i = 0; i < duration_buckets.size(); ++i)
    duration_buckets[i] += c.duration_buckets[i].load(std::memory_order_relaxed);
  duration_sum_ns += c.duration_sum_ns.load(std::memory_order_relaxed);
}

uint64_t RequestTotals::requests() const {
  uint64_t n = 0;
  for (uint64_t b : duration_buckets) n += b;
  return n;
}

void RequestTotals::add(const RequestTotals& t) {
  for (size_t i = 0; i < by_status_class.size(); ++i) by_status_class[i] += t.by_status_class[i];
  for (size_t i = 0; i < duration_buckets.size(); ++i) duration_buckets[i] += t.duration_buckets[i];
  duration_sum_ns += t.duration_sum_ns;
}

}  // namespace rotor
