// The master's record of its children: workers by pid, spawns asked of a template whose pid is
// not known yet, workers reaped before their template reported them, the rotation links between
// a retiring worker and its successor, and the template processes. Pure bookkeeping: no signals,
// no forks, no clock of its own (time comes in as a value), so it is unit-tested with plain data.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/memory.hpp"
#include "supervisor/policy.hpp"

namespace rotor {

// Why a worker leaves. The logs show exit_reason_name() as `reason=`.
enum class ExitReason {
  kNone,  // it is not leaving
  kCrash,
  kTimeout,
  kSignal,  // told to leave by a signal the master did not send
  kShutdown,
  kReload,
  kScaleDown,
  kMaxRequests,
  kMaxRss,
  kMaxPrivate,
  kMaxLifetime,
  kRotate,        // an operator's `rotor ctl rotate`
  kMemoryBudget,  // the request limit the budget set, or the workers' total near the budget
};
// Every reason a worker leaves for (not kNone): the metrics count each, zeros included.
inline constexpr ExitReason kExitReasons[] = {
    ExitReason::kCrash,       ExitReason::kTimeout, ExitReason::kSignal,
    ExitReason::kShutdown,    ExitReason::kReload,  ExitReason::kScaleDown,
    ExitReason::kMaxRequests, ExitReason::kMaxRss,  ExitReason::kMaxPrivate,
    ExitReason::kMaxLifetime, ExitReason::kRotate,  ExitReason::kMemoryBudget};
const char* exit_reason_name(ExitReason reason);  // "" for kNone
// The limits policy:: names ("max-requests", "max-rss", "max-private", "max-lifetime"); kNone
// for others.
ExitReason exit_reason_from(std::string_view name);

// Why a worker was started: the first workers, a place to fill, or a successor.
enum class SpawnCause { kBoot, kReplace, kSuccessor };

// "exit:N" or "signal:NAME" for a wait(2) status, as the logs show it.
std::string exit_status_text(int status);

// What wait4(2) tells of a reaped child: its status and what it cost over its life.
struct ChildExit {
  int status = 0;
  double cpu_ms = 0;  // user + system
  long minflt = 0;    // minor page faults: on a VM each is tens of microseconds
};

struct Worker {
  uint64_t id = 0;  // spawn sequence, also the slot's token
  pid_t pid = 0;    // 0 while its template has not reported it
  size_t slot = 0;
  uint64_t generation = 0;
  int64_t started_ns = 0;
  int64_t ready_ns = 0;
  int64_t deadline_ns = 0;  // end of lifetime, 0 = none
  uint64_t request_limit = 0;
  bool limit_from_budget = false;  // the memory budget set request_limit (below --max-requests)
  policy::Phase phase = policy::Phase::kBooting;
  ExitReason reason = ExitReason::kNone;  // why it is leaving
  uint64_t successor = 0;                 // worker booting to replace it
  bool is_successor = false;
  bool due_soon = false;                      // its successor is started ahead of its limit
  ExitReason due_reason = ExitReason::kNone;  // that limit: what an early drain is logged as
  int64_t drain_ns = 0;                       // when TERM was sent
  int64_t abort_ns = 0;                       // when SIGABRT was sent (heartbeat timeout)
  bool killed = false;                        // SIGKILL sent
  int64_t memory_checked_ns = 0;              // when the memory limits last sampled it
  int64_t budget_checked_ns = 0;              // when the memory budget last sampled it
  uint64_t fresh_rss = 0;                     // sampled when it became ready (0 = not sampled)
  bool rss_seen_under = false;                // some sample was within --max-rss
  bool private_seen_under = false;            // some sample was within --max-private
  MemoryUsage ready_memory;                   // when it became ready (zeros: not read)
  MemoryUsage last_memory;                    // the latest sample after that (zeros: none)
  GrowthFit growth;                           // private KiB over requests, at each sample
  pid_t template_pid = 0;  // forked by this template (0: forked by the master, cold)
  SpawnCause cause = SpawnCause::kBoot;
  ExitReason succeeds_for = ExitReason::kNone;  // its predecessor's reason (none: due soon)
  pid_t replaces = 0;                           // the retiring worker it succeeds
};

// What a worker the master drains now leaves for: the reason it already has, else the limit
// its successor was started ahead of (a due-soon worker), else `otherwise`.
ExitReason drain_reason(const Worker& w, ExitReason otherwise);

// The spawn's `reason=`: "boot", "replace", or what its predecessor leaves for ("due-soon"
// while that one has not reached its limit yet).
const char* spawn_reason_name(const Worker& w);

// A template process: imports the app once and forks warm workers on request.
struct Template {
  pid_t pid = 0;
  int fd = -1;  // the master's end of its control socket
  uint64_t generation = 0;
  bool ready = false;
  bool asked_to_exit = false;  // replaced by a newer one, or the master is stopping
  bool exited = false;         // reaped: its pid may belong to another process now
  int64_t started_ns = 0;
};

// What a template's report "spawn `id` runs as `pid`" comes to.
enum class Adoption {
  kRejected,  // the pid is no child of ours, alive or reaped: not trusted
  kUnwanted,  // the request was withdrawn meanwhile: the worker must go
  kAdopted,   // now a worker
  kDied,      // now a worker, which was reaped before the report: its exit is to be applied
};
struct AdoptResult {
  Adoption outcome = Adoption::kRejected;
  Worker* worker = nullptr;  // kAdopted, kDied
  ChildExit exit;            // kDied
};

class Children {
 public:
  // Workers, and spawns asked of a template (pid 0).
  const std::map<pid_t, Worker>& workers() const { return workers_; }
  std::map<pid_t, Worker>& workers() { return workers_; }
  const std::map<uint64_t, Worker>& pending() const { return pending_; }
  Worker* find(uint64_t id);  // a worker or a pending spawn
  Worker* find_pid(pid_t pid);

  // Links a new worker to the retiring one it replaces, if that one is still here.
  void link_successor(Worker& w, uint64_t predecessor);
  void add(const Worker& w);          // forked: its pid is known
  void add_pending(const Worker& w);  // asked of a template
  // Removes a worker that exited, or a spawn that is withdrawn; its rotation links go with it.
  void remove(pid_t pid);
  std::optional<Worker> drop_pending(uint64_t id);
  // Forgets the links to `id`: a retiring worker whose successor died waits for another one, and
  // a successor whose predecessor died is simply a worker.
  void unlink(uint64_t id);
  // Pending spawns asked of template `tpid`; those asked longer ago than `wait_ns`.
  std::vector<uint64_t> pending_of(pid_t tpid) const;
  std::vector<uint64_t> overdue(int64_t now_ns, int64_t wait_ns) const;

  // A reaped pid that is no worker: kept a while (while a template may report it) in case a
  // template names it. Returns whether it was kept.
  bool note_unknown_exit(pid_t pid, const ChildExit& exit, int64_t now_ns);
  void forget_unknown_exits(int64_t now_ns, int64_t keep_ns);
  // A template reports spawn `id` as `pid`; `alive`: `pid` is our child now.
  AdoptResult adopt(uint64_t id, pid_t pid, bool alive);

  // Workers of older generations rotate (spawn-before-retire) unless already leaving.
  void reload_before(uint64_t generation);
  // What the planner sees: the workers, then the pending spawns.
  std::vector<policy::WorkerView> views() const;

  // Templates.
  std::map<pid_t, Template>& templates() { return templates_; }
  const std::map<pid_t, Template>& templates() const { return templates_; }
  Template* find_template(pid_t pid);
  Template* ready_template();  // the newest generation's, among those ready and not leaving
  void add_template(const Template& t) { templates_[t.pid] = t; }
  void remove_template(pid_t pid) { templates_.erase(pid); }

 private:
  std::map<pid_t, Worker> workers_;
  std::map<uint64_t, Worker> pending_;  // asked of a template, pid not reported yet
  std::map<pid_t, Template> templates_;
  // Children reaped before their template reported them: pid -> (exit, when).
  std::map<pid_t, std::pair<ChildExit, int64_t>> unknown_exits_;
};

}  // namespace rotor
