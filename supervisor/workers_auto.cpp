#include "supervisor/workers_auto.hpp"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/cgroup_cpu.hpp"
#include "supervisor/policy.hpp"

namespace rotor {
namespace {

const char* source_name(cgroup::Version version, bool limited) {
  if (!limited) return "affinity";
  return version == cgroup::Version::kV2 ? "cgroup-v2-quota" : "cgroup-v1-quota";
}

}  // namespace

int affinity_cpus() {
  // Sized for any machine: a fixed cpu_set_t holds 1024 CPUs and fails (EINVAL) beyond.
  for (int cpus = CPU_SETSIZE; cpus <= (1 << 20); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(cpus);
    size_t size = CPU_ALLOC_SIZE(cpus);
    int rc = sched_getaffinity(0, size, set);
    int error = errno;
    int count = rc == 0 ? CPU_COUNT_S(size, set) : 0;
    CPU_FREE(set);
    if (rc == 0) return std::max(count, 1);
    if (error != EINVAL) break;
  }
  return 1;
}

void resolve_auto_workers(conf::Config& config, const std::string& root) {
  if (config.workers != conf::kWorkersAuto) return;
  cgroup::Found found = cgroup::find_cpu_quota(root);
  int affinity = affinity_cpus();
  const cgroup::CpuQuota& q = found.quota;
  config.workers = policy::auto_workers(q.quota_us, q.period_us, affinity, conf::kMaxWorkers);
  spdlog::info("event=workers-auto workers={} source={} quota={} period={} affinity={} cgroup={}",
               config.workers, source_name(found.version, q.limited()),
               q.limited() ? std::to_string(q.quota_us) : "max",
               q.period_us > 0 ? std::to_string(q.period_us) : "-", affinity,
               log::quote(found.dir.empty() ? "-" : found.dir));
}

}  // namespace rotor
