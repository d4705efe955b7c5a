// The master: forks the workers, watches them through the scoreboard, rotates them by the
// policy's plan and acts on signals. Signals only queue work (signalfd); one loop acts on them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "conf/config.hpp"
#include "conf/load.hpp"
#include "supervisor/app_env.hpp"
#include "supervisor/cgroup_memory.hpp"
#include "supervisor/children.hpp"
#include "supervisor/control_command.hpp"
#include "supervisor/control_server.hpp"
#include "supervisor/identity.hpp"
#include "supervisor/listeners.hpp"
#include "supervisor/master_metrics.hpp"
#include "supervisor/memory_budget.hpp"
#include "supervisor/memory_trend.hpp"
#include "supervisor/metrics_text.hpp"
#include "supervisor/notify.hpp"
#include "supervisor/pid_file.hpp"
#include "supervisor/policy.hpp"
#include "supervisor/probe_server.hpp"
#include "supervisor/scoreboard.hpp"
#include "supervisor/sd_notices.hpp"
#include "supervisor/signal_batch.hpp"
#include "supervisor/statsd.hpp"
#include "supervisor/statsd_sink.hpp"
#include "workers/runtime.hpp"

namespace rotor {

// The error log as `cfg` says (its file, its level, syslog): "" on success, else the error line,
// naming the option at fault.
std::string setup_logging(const conf::Config& cfg);

// Exit codes of the master, as gunicorn's where they overlap.
constexpr int kExitBindFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitBootFailed = 3;

// The master's clock, shared by its files.
constexpr int64_t kSec = 1000 * kNsPerMs;
constexpr int64_t kSweepMs = 100;
// Memory and age retire no worker younger than this (doubling, up to the cap, while each
// successor is over the limit at once): a limit below a new worker must not fork-storm.
constexpr int64_t kLimitFloorNs = 2 * kSec;
constexpr int64_t kLimitCapNs = 300 * kSec;
// smaps_rollup walks a worker's page tables: the master reads it no more often than this.
constexpr int64_t kMemorySampleNs = 1 * kSec;
inline double seconds(int64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

class Arbiter {
 public:
  // `args`, the config file and `env` (the environment rotor started with, before the app's
  // -e variables were exported) are read again on HUP; a relative config path is relative to
  // `start_dir`, the directory rotor started in (before --chdir).
  Arbiter(conf::Config config, std::vector<std::string> args, conf::Environment env,
          std::string start_dir, std::vector<Listener> listeners, Identity identity);
  ~Arbiter();
  Arbiter(const Arbiter&) = delete;
  Arbiter& operator=(const Arbiter&) = delete;

  int run();  // returns the exit code
  // --metrics-bind's socket, bound by main before any fork; served from run()'s loop.
  void serve_probes(Listener listener);
  // --statsd-host's socket, opened by main; sent to from the sweep (arbiter_statsd.cpp).
  void set_statsd(StatsdSink sink);
  // The control socket main opened (--control-socket), served by run()'s loop.
  void set_control(ControlServer server) { control_ = std::move(server); }

 private:
  // The loop and its verbs: signals queue work, each sweep reaps, observes, murders and manages.
  void setup_signals();
  void handle_signals();
  void scale(int by);
  void reopen_logs();
  void sweep();
  int64_t poll_timeout_ms() const;
  bool write_pid_file();
  // Spawn.
  void spawn_worker(uint64_t predecessor);
  Worker new_worker(uint64_t predecessor, size_t slot, uint64_t generation);
  void log_spawn(const Worker& w);
  worker::Context worker_context(size_t slot, const conf::Config& config) const;
  void prepare_child(const conf::Config& config);
  [[noreturn]] void run_child(size_t slot);
  // Reap.
  void reap_children();
  void on_worker_exit(Worker& w, const ChildExit& exit);
  void note_memory_trend(const Worker& w, uint64_t requests, int64_t ready_ns, int64_t now);
  void fail_boot(pid_t pid, int status);
  void note_boot_failure(int64_t now);
  // Observe: readiness and limits, from the scoreboard.
  void observe_workers();
  void on_worker_ready(Worker& w, const Slot& s, int64_t now);
  void note_unasked_drain(Worker& w, int64_t now);
  // Limits: requests, memory, age (arbiter_limits.cpp).
  void check_limits(Worker& w, uint64_t requests, int64_t now);
  void check_due_soon(Worker& w, uint64_t requests, int64_t now);
  void sample_memory(Worker& w, int64_t now, policy::RetireInputs& in);
  void note_ready_memory(Worker& w, int64_t now);
  void note_leaving_memory(Worker& w);
  void on_limit_retire(const Worker& w, const policy::RetireInputs& in);
  void warn_limit_below_new_worker(const Worker& w, const policy::RetireInputs& in);
  // Memory budget (arbiter_budget.cpp).
  void start_memory_budget();
  bool budget_on() const { return budget_.kib > 0; }
  void set_request_limit(Worker& w);
  void note_budget_ready(const Worker& w);
  void check_memory_budget(int64_t now);
  void sample_for_budget(int64_t now, int64_t period);
  void resolve_auto_budget();
  std::optional<budget::Sizing> budget_sizing() const;
  void update_budget_limit(const budget::Sizing& sizing, const std::string& detail = "");
  void log_budget(const budget::Sizing& sizing, const std::string& extra) const;
  void warn_budget_too_small(double ready_kib);
  void retire_for_budget(Worker& w, const budget::PressureRetire& r);
  void note_budget_exit(const Worker& w, uint64_t requests);
  void remeasure_reserved(uint64_t workers_kib);
  // Murder: the silent, the overdue, and templates that do not answer.
  void murder_workers();
  void abort_if_silent(Worker& w, int64_t now, int64_t timeout_ns);
  void kill_worker(Worker& w);
  void murder_templates(int64_t now);
  // Manage: carry out the policy's plan.
  void manage_workers();
  void drain_worker(Worker& w, ExitReason reason);
  void begin_stop(bool graceful);
  void signal_all(int sig);
  // Reload (arbiter_reload.cpp).
  void reload();
  bool rebind(conf::Config& next);
  void close_unused_listeners();
  void move_pid_file(const std::string& old_path);
  void apply_next_config();
  // Templates (arbiter_templates.cpp).
  bool uses_template() const;    // in force: workers are forked from a template
  bool template_wanted() const;  // by the newest config (a HUP's, while it imports)
  void manage_templates();
  void start_template();
  bool request_spawn(Template& t, Worker w);
  void read_template(Template& t);
  void on_template_ready(Template& t, int64_t boot_ns);
  void on_spawned(Template& t, uint64_t id, pid_t pid);
  void drop_pending(uint64_t id, const char* why);
  void reap_template(Template& t, int status);
  void on_template_exit(Template& t, int status);
  void retire_template(Template& t);
  // /metrics (arbiter_metrics.cpp): the scoreboard and the master's counts, as a snapshot.
  metrics::Snapshot metrics_snapshot();
  void add_request_metrics(metrics::Snapshot& m) const;
  void add_worker_metrics(metrics::Snapshot& m);
  void add_exit_metrics(metrics::Snapshot& m) const;
  void add_master_metrics(metrics::Snapshot& m) const;
  void release_slot(size_t slot, uint64_t id);  // folds its counts into the master's first
  // Probes and the shutdown delay (arbiter_probes.cpp).
  std::string answer_probe(const probe::Head& head);
  bool ready_for_traffic() const;
  void on_stop_signal(StopKind kind);
  void end_shutdown_delay_when_due();
  bool stop_pending() const { return stopping_ || shutdown_delay_until_ns_ != 0; }
  void statsd_tick(bool last = false);  // at most once a second, and once more at exit
  // systemd's sd_notify (arbiter_notify.cpp).
  void open_notify();
  void notify(const std::string& message);
  sd::Snapshot notify_snapshot() const;
  void notify_tick();
  void notify_reloading();
  void notify_stopping();
  int64_t notify_due_ms(int64_t timeout_ms) const;  // shortened to the next watchdog ping
  // The control socket (arbiter_control.cpp).
  std::string control_reply(std::string_view line);
  control::State control_state() const;
  json::Value carry_out(const control::Request& r, const control::Decision& d);
  json::Value status_json() const;
  json::Value workers_json();
  json::Value worker_json(Worker& w, int64_t now);
  void set_desired(int target, const control::Request& r);
  void rotate_worker(Worker& w);

  conf::Config cfg_;  // in force: the running generation's workers, limits and timeouts
  // A HUP's config while its template imports the new code; it replaces cfg_ when that template
  // is ready, and is dropped if the import fails (the running generation keeps its own).
  std::optional<conf::Config> next_cfg_;
  uint64_t cfg_generation_ = 1;  // the generation whose config cfg_ is
  int scale_since_reload_ = 0;   // TTIN minus TTOU since the last HUP, kept when it takes effect
  std::vector<std::string> args_;
  conf::Environment env_;
  std::string start_dir_;
  AppEnv app_env_;                   // the app's -e variables, set for each child before its fork
  std::vector<Listener> listeners_;  // of cfg_'s --bind, and of next_cfg_'s while it imports
  std::unique_ptr<Scoreboard> scoreboard_;
  Children children_;
  // The code in force starts threads at import: cold workers until a reload's template is ready.
  bool cold_fallback_ = false;
  uint64_t failed_generation_ = 0;  // a reload whose import failed; retried on the next HUP
  std::mt19937_64 rng_;
  policy::Backoff backoff_;  // after workers fail to boot
  int held_back_ = 0;        // places of workers that failed to boot, waiting for the backoff
  policy::LimitGuard rss_guard_;
  policy::LimitGuard private_guard_;
  policy::LimitGuard lifetime_guard_;
  std::map<uint64_t, MemoryTrend> memory_trends_;  // by generation, the latest few
  struct BudgetState {
    uint64_t kib = 0;           // what the workers may use together; 0: off (or auto, unresolved)
    bool auto_pending = false;  // auto: waits until the workers are ready to be measured
    cgroup::MemoryLimit cgroup;
    budget::Limiter limiter;
    std::deque<uint64_t> ready_kib;  // private memory of the latest workers when they became ready
    std::deque<uint64_t> overshoot;  // requests the latest budget-limited workers served past it
    uint64_t reserved_kib = 0;       // auto: the most the cgroup used outside the workers
    uint64_t successor_kib = 0;      // auto: room for a successor
    int64_t checked_ns = 0;
    bool hot = true;  // sampled each sweep: no growth estimate yet, or over half the budget
    bool warned_small = false;
  } budget_;
  policy::LimitGuard budget_guard_;
  policy::Backoff template_backoff_;
  policy::LatencyAverage spawn_latency_;
  int desired_ = 1;
  uint64_t generation_ = 1;
  uint64_t spawn_seq_ = 0;
  bool ever_ready_ = false;  // some worker of this master reached READY
  bool stopping_ = false;
  bool graceful_ = true;
  int64_t stop_deadline_ns_ = 0;
  int exit_code_ = 0;
  int signal_fd_ = -1;
  int notify_pipe_[2] = {-1, -1};
  int handoff_pair_[2] = {-1, -1};  // [0] workers receive connections, [1] drainers send
  Identity identity_;
  pid_t master_pid_ = 0;
  bool oom_score_settable_ = false;  // children raise their oom_score_adj above the master's
  NotifySocket notify_socket_;
  std::string notify_address_;
  std::optional<sd::Notices> notices_;  // only when NOTIFY_SOCKET names a socket
  bool notify_failed_ = false;
  uint64_t served_retired_ = 0;  // requests of the workers reaped so far
  PidFileId pid_file_id_;        // the pid file we wrote: removed at exit only while it is that one
  MasterMetrics metrics_;
  std::unique_ptr<ProbeServer> probe_server_;  // --metrics-bind
  int64_t shutdown_delay_until_ns_ = 0;        // a TERM's --shutdown-delay ends then (0: none)
  ControlServer control_;
  StatsdSink statsd_;  // --statsd-host
  statsd::Format statsd_format_;
  metrics::Snapshot statsd_sent_;  // the counts the last statsd datagrams covered
  int64_t statsd_due_ns_ = 0;
  bool statsd_warned_ = false;
  int64_t started_ns_ = monotonic_ns();
};

}  // namespace rotor
