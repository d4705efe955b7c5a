// A generation's memory growth: from the growth per request of its workers as they exit, an
// estimate the master logs (`event=memory-trend`) when it changes materially, never per request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

namespace rotor {

// What one exiting worker tells about its generation.
struct ExitGrowth {
  double kib_per_request = 0;      // least-squares slope of its private memory over requests
  double ready_private_kib = 0;    // when it became ready
  double requests_per_second = 0;  // over its time serving; 0 = unknown
};

// The median of the last `window` exits of a generation (one worker that allocated a cache
// once does not swing it, as a mean would).
class MemoryTrend {
 public:
  explicit MemoryTrend(size_t window = 5) : window_(window) {}
  // Returns true when the estimate is the first or moved by more than a quarter (and by more
  // than 1 KiB per request, so that noise around zero growth is not logged).
  bool add(const ExitGrowth& exit);
  // Nothing before the first exit.
  std::optional<ExitGrowth> estimate() const;

 private:
  size_t window_;
  std::deque<ExitGrowth> recent_;
  std::optional<double> reported_;  // the kib_per_request last reported
};

// Projections from an estimate: private MiB at the request limit (nothing without one), and
// seconds until --max-private is reached at the current rate (nothing without the limit, a rate
// or growth; 0 when a new worker is already over it).
std::optional<double> private_mib_at_limit(const ExitGrowth& e, uint64_t request_limit);
std::optional<double> seconds_to_max_private(const ExitGrowth& e, uint64_t max_private_kib);

}  // namespace rotor
