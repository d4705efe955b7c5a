// What every worker process runs, whatever its worker class: its own libuv loop, the HTTP
// server, the scoreboard slot (counts, state, heartbeat), signals and the drain.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "conf/config.hpp"
#include "supervisor/scoreboard.hpp"
#include "workers/http/server.hpp"
#include "workers/worker_class.hpp"
#include "workers/worker_signals.hpp"  // exit_at_once, also for the template

namespace rotor::worker {

struct Context {
  const conf::Config* config = nullptr;
  std::vector<http::ListenSocket> listeners;
  Slot* slot = nullptr;
  // The token the master claimed `slot` with for this worker. A worker whose spawn the master
  // withdrew (its template died before reporting the pid) finds another token there, or none,
  // and leaves instead of serving unsupervised.
  uint64_t token = 0;
  const Scoreboard* scoreboard = nullptr;  // every worker's slot, to share connections fairly
  int notify_fd = -1;                      // write end of the master's wake-up pipe
  http::HandoffChannel handoff;
  pid_t master_pid = 0;
  uid_t uid = 0;  // switch to these after fork when `switch_user` (--user/--group)
  gid_t gid = 0;
  bool switch_user = false;
  // Forked by the template (double fork): the master becomes the parent only once the
  // intermediate process has exited.
  bool from_template = false;
};

// Runs in the forked child; returns the process exit code. `app` is the template's preloaded
// worker class, or null to make one here.
int run(const Context& ctx, std::unique_ptr<WorkerClass> app = nullptr);

}  // namespace rotor::worker
