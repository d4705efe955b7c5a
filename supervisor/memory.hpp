// A worker's memory as it is owned, from /proc/PID/smaps_rollup: resident (what --max-rss
// compares), proportional (shared pages split among their sharers) and private (the pages no
// other process maps: what a worker forked from the template added on its own).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace rotor {

struct MemoryUsage {
  uint64_t rss_kib = 0;
  uint64_t pss_kib = 0;
  uint64_t private_kib = 0;  // Private_Clean + Private_Dirty
};

// The totals of a smaps_rollup text; nothing when it has no Rss line (a zombie's is empty).
std::optional<MemoryUsage> parse_smaps_rollup(std::string_view text);

// The growth of a worker's private memory per request, least-squares over the samples the
// master took of it (not the first and last alone: a request that allocates and frees in bursts
// would swing a two-point estimate).
class GrowthFit {
 public:
  void add(uint64_t requests, uint64_t private_kib);
  // KiB per request; nothing until two samples at different request counts.
  std::optional<double> kib_per_request() const;

 private:
  // Sums of the samples less the first one's (x0, y0), which keeps them small.
  double x0_ = 0, y0_ = 0;
  double n_ = 0, sx_ = 0, sy_ = 0, sxy_ = 0, sxx_ = 0;
};

// Reads /proc/PID/smaps_rollup. It walks the process's page tables: sample it, do not poll it.
std::optional<MemoryUsage> read_memory(pid_t pid);

}  // namespace rotor
