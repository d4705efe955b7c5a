// --workers auto made a number, by the master at start and at each HUP: the CPU quota of rotor's
// cgroup rounded up, else the CPUs in its affinity mask. The choice and its source are logged.
#pragma once

#include <string>

#include "conf/config.hpp"

namespace rotor {

// The CPUs this process may run on (sched_getaffinity); 1 if the mask cannot be read.
int affinity_cpus();

// Sets config.workers when it is auto (conf::kWorkersAuto) and logs event=workers-auto. `root`
// is where /proc and the cgroup mounts are ("" but in tests, see cgroup::find_cpu_quota).
void resolve_auto_workers(conf::Config& config, const std::string& root = "");

}  // namespace rotor
