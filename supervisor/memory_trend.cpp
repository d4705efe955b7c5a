#include "supervisor/memory_trend.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace rotor {

namespace {

constexpr double kMaterial = 0.25;
constexpr double kNoiseKib = 1.0;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

bool MemoryTrend::add(const ExitGrowth& exit) {
  recent_.push_back(exit);
  while (recent_.size() > std::max<size_t>(window_, 1)) recent_.pop_front();
  double now = estimate()->kib_per_request;
  bool changed = !reported_ || (std::fabs(now - *reported_) > kMaterial * std::fabs(*reported_) &&
                                std::fabs(now - *reported_) > kNoiseKib);
  if (changed) reported_ = now;
  return changed;
}

std::optional<ExitGrowth> MemoryTrend::estimate() const {
  if (recent_.empty()) return std::nullopt;
  std::vector<double> slope, ready, rate;
  for (const auto& e : recent_) {
    slope.push_back(e.kib_per_request);
    ready.push_back(e.ready_private_kib);
    if (e.requests_per_second > 0) rate.push_back(e.requests_per_second);
  }
  return ExitGrowth{median(slope), median(ready), rate.empty() ? 0 : median(rate)};
}

std::optional<double> private_mib_at_limit(const ExitGrowth& e, uint64_t request_limit) {
  if (request_limit == 0) return std::nullopt;
  return (e.ready_private_kib + e.kib_per_request * static_cast<double>(request_limit)) / 1024;
}

std::optional<double> seconds_to_max_private(const ExitGrowth& e, uint64_t max_private_kib) {
  if (max_private_kib == 0 || e.kib_per_request <= 0 || e.requests_per_second <= 0) {
    return std::nullopt;
  }
  double room = static_cast<double>(max_private_kib) - e.ready_private_kib;
  return std::max(0.0, room / (e.kib_per_request * e.requests_per_second));
}

}  // namespace rotor
