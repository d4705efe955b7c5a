#include "supervisor/arbiter.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <spdlog/spdlog.h>

#include "conf/load.hpp"
#include "log/log.hpp"
#include "supervisor/app_env.hpp"
#include "supervisor/leak_trace.hpp"
#include "supervisor/oom_score.hpp"
#include "supervisor/pid_file.hpp"
#include "workers/runtime.hpp"

extern char** environ;

namespace rotor {

namespace {

constexpr size_t kScoreboardSlots = 2 * conf::kMaxWorkers;
constexpr int64_t kKillGraceNs = 2 * kSec;  // after SIGABRT, before SIGKILL
constexpr int64_t kFastStopNs = 1 * kSec;   // INT/QUIT: workers get this long to exit
// A worker that dies this soon after it became ready, having taken no work, failed to boot.
constexpr int64_t kSettleNs = 1 * kSec;

const int kMasterSignals[] = {SIGTERM, SIGINT,  SIGQUIT, SIGHUP, SIGTTIN,
                              SIGTTOU, SIGUSR1, SIGUSR2, SIGCHLD};

// KiB per request with two decimals, or "-" while there is no estimate.
std::string growth_text(const GrowthFit& fit) {
  auto kib = fit.kib_per_request();
  return kib ? fmt::format("{:.2f}", *kib) : "-";
}

}  // namespace

Arbiter::Arbiter(conf::Config config, std::vector<std::string> args, conf::Environment env,
                 std::string start_dir, std::vector<Listener> listeners, Identity identity)
    : cfg_(std::move(config)),
      args_(std::move(args)),
      env_(std::move(env)),
      start_dir_(std::move(start_dir)),
      app_env_(env_),
      listeners_(std::move(listeners)),
      scoreboard_(std::make_unique<Scoreboard>(kScoreboardSlots)),
      rng_(std::random_device{}()),
      backoff_(100 * kNsPerMs, 10 * kSec, 30 * kSec),
      rss_guard_(kLimitFloorNs, kLimitCapNs),
      private_guard_(kLimitFloorNs, kLimitCapNs),
      lifetime_guard_(kLimitFloorNs, kLimitCapNs),
      budget_guard_(kLimitFloorNs, kLimitCapNs),
      template_backoff_(500 * kNsPerMs, 30 * kSec, 60 * kSec),
      desired_(static_cast<int>(cfg_.workers)),
      identity_(identity),
      master_pid_(getpid()) {}

Arbiter::~Arbiter() {
  if (signal_fd_ >= 0) ::close(signal_fd_);
  for (int fd : {notify_pipe_[0], notify_pipe_[1], handoff_pair_[0], handoff_pair_[1]}) {
    if (fd >= 0) ::close(fd);
  }
  for (auto& [pid, t] : children_.templates()) {
    if (t.fd >= 0) ::close(t.fd);
  }
}

void Arbiter::setup_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kMasterSignals) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  signal_fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  std::signal(SIGPIPE, SIG_IGN);
}

bool Arbiter::write_pid_file() {
  if (cfg_.pid_file.empty()) return true;
  std::string error;
  if (rotor::write_pid_file(cfg_.pid_file, master_pid_, &pid_file_id_, &error)) return true;
  spdlog::error("event=pid-file-failed path={} error={}", log::quote(cfg_.pid_file),
                log::quote(error));
  return false;
}

int Arbiter::run() {
  setup_signals();
  if (pipe2(notify_pipe_, O_NONBLOCK | O_CLOEXEC) != 0 || signal_fd_ < 0 ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, handoff_pair_) != 0) {
    spdlog::critical("event=start-failed error={}", log::quote(std::strerror(errno)));
    return kExitBootFailed;
  }
  for (const auto& l : listeners_) {
    spdlog::info("event=listening address={}", log::quote(l.address));
  }
  spdlog::info("event=start version={} worker_class={} workers={} max_requests={} jitter={}",
               ROTOR_VERSION, cfg_.worker_class, desired_, cfg_.max_requests,
               cfg_.max_requests_jitter);
  open_notify();
  start_memory_budget();
  oom_score_settable_ = own_oom_score_adj_writable();
  if (!oom_score_settable_) {
    spdlog::warn("event=oom-score-unavailable error=\"/proc/self/oom_score_adj not writable\"");
  }
  // As gunicorn: a master that cannot keep the pid file it was told to keep does not start
  // (whatever reads the file could neither find nor stop it).
  if (!write_pid_file()) {
    close_listeners(listeners_);  // and the unix sockets' files
    control_.close();
    spdlog::info("event=exit code={}", kExitBindFailed);
    return kExitBindFailed;
  }

  std::vector<pollfd> fds;
  std::vector<pid_t> fd_owner;  // the template behind each fds[i], i >= 2
  while (true) {
    sweep();
    if (stopping_ && children_.workers().empty() && children_.templates().empty()) break;
    fds.assign({{signal_fd_, POLLIN, 0}, {notify_pipe_[0], POLLIN, 0}});
    fd_owner.assign(2, 0);
    for (const auto& [pid, t] : children_.templates()) {
      if (t.fd < 0) continue;
      fds.push_back({t.fd, POLLIN, 0});
      fd_owner.push_back(pid);
    }
    size_t probes_at = fds.size();
    if (probe_server_) probe_server_->add_pollfds(fds);
    size_t control_at = fds.size();
    control_.add_poll_fds(fds);
    int n = poll(fds.data(), fds.size(), static_cast<int>(poll_timeout_ms()));
    if (n < 0 && errno != EINTR) {
      spdlog::critical("event=poll-failed error={}", log::quote(std::strerror(errno)));
      break;
    }
    if (fds[0].revents & POLLIN) handle_signals();
    if (fds[1].revents & POLLIN) {
      char buf[256];
      while (::read(notify_pipe_[0], buf, sizeof buf) > 0) {
      }
    }
    for (size_t i = 2; i < probes_at; ++i) {
      Template* t = children_.find_template(fd_owner[i]);
      if (fds[i].revents && t) read_template(*t);
    }
    if (probe_server_) {
      int64_t now = monotonic_ns();
      probe_server_->on_poll(fds.data() + probes_at, control_at - probes_at, now);
      probe_server_->expire(now);
    }
    control_.on_poll(fds.data() + control_at, fds.size() - control_at, monotonic_ns(),
                     [this](std::string_view line) { return control_reply(line); });
  }

  close_listeners(listeners_);
  control_.close();
  statsd_tick(true);
  if (!cfg_.pid_file.empty()) remove_pid_file(cfg_.pid_file, pid_file_id_);
  spdlog::info("event=exit code={}", exit_code_);
  return exit_code_;
}

int64_t Arbiter::poll_timeout_ms() const {
  return notify_due_ms(kSweepMs);
}

// Everything pending is read first, then acted on in a fixed order (a stop wins).
void Arbiter::handle_signals() {
  SignalBatch batch;
  signalfd_siginfo info;
  while (::read(signal_fd_, &info, sizeof info) == sizeof info) {
    batch.add(static_cast<int>(info.ssi_signo));
  }
  SignalPlan plan = batch.plan(stop_pending());
  if (plan.stop != StopKind::kNone) on_stop_signal(plan.stop);
  if (plan.ignored > 0) {
    spdlog::warn(
        "event=signals-ignored count={} detail=\"HUP, TTIN and TTOU do nothing once a "
        "stop has begun\"",
        plan.ignored);
  }
  if (plan.reopen) reopen_logs();
  if (plan.reload) {
    notify_reloading();
    reload();
  }
  if (plan.scale != 0) scale(plan.scale);
}

void Arbiter::scale(int by) {
  int target = std::clamp(desired_ + by, 1, conf::kMaxWorkers);
  scale_since_reload_ += target - desired_;
  desired_ = target;
  spdlog::info("event=scale workers={} signal={}", desired_, by > 0 ? "TTIN" : "TTOU");
}

void Arbiter::reopen_logs() {
  // The master creates a rotated-away access log again, for the workers (--user).
  std::string error;
  if (!log::prepare_file(cfg_.access_logfile, &error))
    spdlog::error("event=log-reopen-failed error={}", log::quote(error));
  log::reopen();
  spdlog::info("event=reopen-logs workers={}", children_.workers().size());
  signal_all(SIGUSR1);
  for (auto& [pid, t] : children_.templates()) ::kill(pid, SIGUSR1);
}

void Arbiter::sweep() {
  end_shutdown_delay_when_due();
  reap_children();
  observe_workers();
  murder_workers();
  if (!stopping_) {
    manage_templates();
    manage_workers();
  }
  notify_tick();
  statsd_tick();
}

Worker Arbiter::new_worker(uint64_t predecessor, size_t slot, uint64_t generation) {
  Worker w;
  w.id = ++spawn_seq_;
  w.slot = slot;
  w.generation = generation;
  set_request_limit(w);  // --max-requests, or the memory budget's when tighter
  int64_t lifetime = policy::draw_lifetime_ns(cfg_.max_lifetime, cfg_.max_lifetime_jitter, rng_);
  w.started_ns = monotonic_ns();
  w.deadline_ns = lifetime ? w.started_ns + lifetime : 0;
  w.cause = ever_ready_ ? SpawnCause::kReplace : SpawnCause::kBoot;
  children_.link_successor(w, predecessor);
  scoreboard_->claim(w.slot, w.id, w.request_limit);
  Slot& s = scoreboard_->slot(w.slot);
  s.generation.store(w.generation, std::memory_order_relaxed);
  s.leak_trace.store(traces_leaks(cfg_.leak_report, cfg_.leak_report_every, w.id) ? 1 : 0,
                     std::memory_order_relaxed);
  return w;
}

void Arbiter::log_spawn(const Worker& w) {
  spdlog::info("event=spawn pid={} reason={} requests=0 limit={} generation={} mode={}{}", w.pid,
               spawn_reason_name(w), w.request_limit, w.generation,
               w.template_pid ? "template" : "cold",
               w.replaces ? " replaces=" + std::to_string(w.replaces) : "");
}

void Arbiter::spawn_worker(uint64_t predecessor) {
  Template* t = nullptr;
  if (uses_template()) {
    t = children_.ready_template();
    // No template is ready: at boot, or while one that died re-imports (which may take long, or
    // fail on code changed on disk). A successor can wait, its predecessor serves meanwhile; a
    // dead worker's place is filled by a cold worker instead, so capacity does not wait on it.
    if (!t && (predecessor != 0 || !ever_ready_)) return;  // the next sweep asks again
  }
  long slot = scoreboard_->find_free();
  if (slot < 0) {
    spdlog::error("event=spawn-failed error=\"scoreboard full\"");
    return;
  }
  if (t) {
    request_spawn(*t, new_worker(predecessor, static_cast<size_t>(slot), t->generation));
    return;
  }
  // A cold worker runs the config in force: during a HUP's import that is the older generation,
  // whose workers are rolled once the new template is ready.
  Worker w = new_worker(predecessor, static_cast<size_t>(slot), cfg_generation_);
  app_env_.apply(cfg_.env);
  pid_t pid = fork();
  if (pid < 0) {
    spdlog::error("event=spawn-failed error={}", log::quote(std::strerror(errno)));
    release_slot(w.slot, w.id);
    children_.unlink(w.id);
    note_boot_failure(monotonic_ns());
    return;
  }
  if (pid == 0) run_child(w.slot);
  w.pid = pid;
  children_.add(w);
  log_spawn(w);
}

// In every child the master forks: nothing of its signal handling or its ends of the
// templates' sockets survives.
void Arbiter::prepare_child(const conf::Config& config) {
  // USR1/USR2 that arrive before the child has its own handlers must not kill it (their
  // default action); the worker runtime and the template install theirs next.
  std::signal(SIGUSR1, SIG_IGN);
  std::signal(SIGUSR2, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  ::close(signal_fd_);
  ::close(notify_pipe_[0]);
  control_.close_in_child();
  statsd_.close();
  for (auto& [pid, t] : children_.templates()) {
    if (t.fd >= 0) ::close(t.fd);
  }
  if (probe_server_) probe_server_->close_in_child();
  // Between a HUP that changes --bind and its taking effect, both configs' sockets are open:
  // a child holds only its own config's, or an address that is given up would stay open.
  for (const auto& l : listeners_) {
    if (!serves(l, config.bind)) ::close(l.fd);
  }
  // Still as the master's user (after a switch /proc/self is root's). The template's workers
  // inherit its score.
  if (oom_score_settable_) raise_own_oom_score_adj();
}

worker::Context Arbiter::worker_context(size_t slot, const conf::Config& config) const {
  worker::Context ctx;
  ctx.config = &config;
  for (const auto& l : listeners_) {
    if (serves(l, config.bind)) ctx.listeners.push_back({l.fd, l.is_unix});
  }
  ctx.slot = &scoreboard_->slot(slot);
  ctx.token = ctx.slot->token.load(std::memory_order_relaxed);
  ctx.scoreboard = scoreboard_.get();
  ctx.notify_fd = notify_pipe_[1];
  ctx.handoff = {handoff_pair_[0], handoff_pair_[1]};
  ctx.master_pid = master_pid_;
  ctx.switch_user = identity_.switch_user;
  ctx.uid = identity_.uid;
  ctx.gid = identity_.gid;
  return ctx;
}

void Arbiter::run_child(size_t slot) {
  prepare_child(cfg_);
  int code = worker::run(worker_context(slot, cfg_));
  _exit(code);
}

static ChildExit child_exit(int status, const rusage& usage) {
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  return {status, ms(usage.ru_utime) + ms(usage.ru_stime), usage.ru_minflt};
}

void Arbiter::reap_children() {
  int status = 0;
  rusage usage{};
  pid_t pid;
  int64_t now = monotonic_ns();
  while ((pid = wait4(-1, &status, WNOHANG, &usage)) > 0) {
    if (Template* t = children_.find_template(pid)) {
      reap_template(*t, status);
    } else if (Worker* w = children_.find_pid(pid)) {
      on_worker_exit(*w, child_exit(status, usage));
      children_.remove(pid);
    } else {
      // A worker whose template has not reported it yet, or an orphan reparented to us
      // (subreaper, or PID 1): kept a while in case its template names it.
      spdlog::debug("event=reaped-orphan pid={} status={}", pid, exit_status_text(status));
      children_.note_unknown_exit(pid, child_exit(status, usage), now);
    }
  }
  children_.forget_unknown_exits(now, 60 * kSec);
}

void Arbiter::on_worker_exit(Worker& w, const ChildExit& exit) {
  int status = exit.status;
  int64_t now = monotonic_ns();
  Slot& s = scoreboard_->slot(w.slot);
  bool own_slot = s.token.load(std::memory_order_acquire) == w.id;
  uint64_t requests = own_slot ? s.requests.load(std::memory_order_relaxed) : 0;
  // The worker's own stamp counts too: under load one can take a request and die from it
  // before this loop has seen it ready. It served; it did not fail to boot.
  int64_t stamped = own_slot ? s.ready_ns.load(std::memory_order_relaxed) : 0;
  int64_t ready_ns = w.ready_ns > 0 ? w.ready_ns
                     : stamped > 0  ? std::clamp(stamped, w.started_ns, now)
                                    : 0;
  if (ready_ns > 0) ever_ready_ = true;
  policy::DeathInputs death;
  death.was_ready = ready_ns > 0;
  death.ready_for_ns = ready_ns > 0 ? now - ready_ns : 0;
  death.took_work =
      requests > 0 || (own_slot && (s.in_flight.load(std::memory_order_relaxed) > 0 ||
                                    s.connections.load(std::memory_order_relaxed) > 0));
  bool asked = w.drain_ns || w.abort_ns || w.killed;
  ExitReason reason = asked ? w.reason : ExitReason::kCrash;
  bool boot_failure = !ever_ready_ && w.phase == policy::Phase::kBooting && !stopping_;
  auto level = reason == ExitReason::kCrash || reason == ExitReason::kTimeout ? spdlog::level::err
                                                                              : spdlog::level::info;
  spdlog::log(level,
              "event=worker-exit pid={} reason={} requests={} limit={} status={} uptime_s={:.3f} "
              "cpu_ms={:.0f} minflt={} generation={} ready_private_kib={} ready_rss_kib={} "
              "exit_private_kib={} exit_rss_kib={} private_kib_per_request={}",
              w.pid, exit_reason_name(reason), requests, w.request_limit, exit_status_text(status),
              seconds(now - w.started_ns), exit.cpu_ms, exit.minflt, w.generation,
              w.ready_memory.private_kib, w.ready_memory.rss_kib, w.last_memory.private_kib,
              w.last_memory.rss_kib, growth_text(w.growth));
  note_memory_trend(w, requests, ready_ns, now);
  ++metrics_.exits[reason];
  note_budget_exit(w, requests);

  release_slot(w.slot, w.id);
  served_retired_ += requests;

  if (boot_failure) {
    fail_boot(w.pid, status);
    return;
  }
  // A worker that was serving is replaced at once; only failures to boot are backed off.
  if (reason == ExitReason::kCrash && !stopping_ &&
      policy::death_is_boot_failure(death, kSettleNs)) {
    note_boot_failure(now);
  }
}

void Arbiter::note_boot_failure(int64_t now) {
  backoff_.on_crash(now);
  if (backoff_.delay_ns() == 0) return;
  ++held_back_;
  spdlog::warn("event=backoff crashes={} delay_ms={} detail=\"workers fail before they serve\"",
               backoff_.crashes(), backoff_.delay_ns() / kNsPerMs);
}

// The first generation could not start: the child's own exit code says whether the app could
// not be loaded (4) or anything else failed (3), and the master exits with it.
void Arbiter::fail_boot(pid_t pid, int status) {
  exit_code_ = WIFEXITED(status) && WEXITSTATUS(status) == worker::kExitAppLoadFailed
                   ? worker::kExitAppLoadFailed
                   : kExitBootFailed;
  spdlog::critical("event=boot-failed pid={} status={} action=exit code={}", pid,
                   exit_status_text(status), exit_code_);
  begin_stop(false);
}

void Arbiter::observe_workers() {
  int64_t now = monotonic_ns();
  for (auto& [pid, w] : children_.workers()) {
    Slot& s = scoreboard_->slot(w.slot);
    if (s.token.load(std::memory_order_acquire) != w.id) continue;
    uint32_t state = s.state.load(std::memory_order_acquire);
    if (w.phase == policy::Phase::kBooting &&
        (state == static_cast<uint32_t>(WorkerState::kReady) ||
         state == static_cast<uint32_t>(WorkerState::kRetiring))) {
      on_worker_ready(w, s, now);
    }
    if (w.phase == policy::Phase::kReady && !w.drain_ns &&
        state == static_cast<uint32_t>(WorkerState::kDraining)) {
      note_unasked_drain(w, now);
      continue;
    }
    if (w.phase != policy::Phase::kReady || w.reason != ExitReason::kNone) continue;
    uint64_t requests = s.requests.load(std::memory_order_relaxed);
    check_limits(w, requests, now);
    if (w.reason == ExitReason::kNone && !w.due_soon) check_due_soon(w, requests, now);
  }
  if (budget_on() || budget_.auto_pending) check_memory_budget(now);
}

void Arbiter::on_worker_ready(Worker& w, const Slot& s, int64_t now) {
  w.phase = policy::Phase::kReady;
  w.ready_ns = now;
  ever_ready_ = true;
  // The worker's own timestamp, trusted only within the bounds we know.
  int64_t ready = std::clamp(s.ready_ns.load(std::memory_order_relaxed), w.started_ns, now);
  spawn_latency_.add(ready - w.started_ns);
  metrics_.add_spawn(ready - w.started_ns);
  spdlog::info("event=worker-ready pid={} spawn_ms={:.2f} generation={} mode={}", w.pid,
               static_cast<double>(ready - w.started_ns) / kNsPerMs, w.generation,
               w.template_pid ? "template" : "cold");
  note_ready_memory(w, now);
}

// A worker told to leave by a signal the master did not send (an operator's kill -TERM): its
// place is filled now, not when its exit (which waits for the app's threads) ends, and it is
// held to the graceful timeout like any drain.
void Arbiter::note_unasked_drain(Worker& w, int64_t now) {
  if (w.reason == ExitReason::kNone) w.reason = ExitReason::kSignal;
  w.phase = policy::Phase::kDraining;
  w.drain_ns = now;
  note_leaving_memory(w);
  spdlog::warn(
      "event=worker-drain-unasked pid={} reason={} action=replace detail=\"the worker drains on "
      "a signal the master did not send\"",
      w.pid, exit_reason_name(w.reason));
}

void Arbiter::murder_workers() {
  int64_t now = monotonic_ns();
  int64_t timeout_ns = static_cast<int64_t>(cfg_.timeout * 1e9);
  int64_t graceful_ns = static_cast<int64_t>(cfg_.graceful_timeout * 1e9);
  for (auto& [pid, w] : children_.workers()) {
    if (w.killed) continue;
    bool kill = false;
    if (w.abort_ns) {
      kill = now - w.abort_ns > kKillGraceNs;
    } else if (stopping_ && now > stop_deadline_ns_) {
      kill = true;
    } else if (w.drain_ns && now - w.drain_ns > graceful_ns + kSec) {
      kill = true;  // it should have left by itself at graceful_timeout
    } else if (timeout_ns > 0) {
      abort_if_silent(w, now, timeout_ns);
    }
    if (kill) kill_worker(w);
  }
  murder_templates(now);
}

// A worker whose heartbeat stopped for --timeout is aborted (SIGABRT shows where it hangs).
void Arbiter::abort_if_silent(Worker& w, int64_t now, int64_t timeout_ns) {
  Slot& s = scoreboard_->slot(w.slot);
  int64_t beat = s.token.load(std::memory_order_acquire) == w.id
                     ? std::clamp(s.heartbeat_ns.load(std::memory_order_relaxed), w.started_ns, now)
                     : w.started_ns;
  if (now - beat <= timeout_ns) return;
  bool booting = w.phase == policy::Phase::kBooting;
  spdlog::error("event=worker-timeout pid={} silent_s={:.1f} phase={} action=abort", w.pid,
                seconds(now - beat),
                booting      ? "boot"
                : w.drain_ns ? "drain"
                             : "serving");
  w.reason = ExitReason::kTimeout;
  w.abort_ns = now;
  // One that never got ready stays booting: in the first generation its end is a boot
  // failure (exit 3), not a crash retried forever.
  if (!booting) w.phase = policy::Phase::kDraining;
  ::kill(w.pid, SIGABRT);
  ::kill(w.pid, SIGCONT);  // a stopped worker acts on the abort only once continued
}

void Arbiter::kill_worker(Worker& w) {
  spdlog::warn("event=worker-kill pid={} reason={}", w.pid,
               w.reason == ExitReason::kNone ? "-" : exit_reason_name(w.reason));
  w.killed = true;
  if (w.phase != policy::Phase::kBooting) w.phase = policy::Phase::kDraining;
  ::kill(w.pid, SIGKILL);
}

void Arbiter::murder_templates(int64_t now) {
  if (stopping_ && now > stop_deadline_ns_) {
    for (auto& [pid, t] : children_.templates()) {
      if (!t.exited) ::kill(pid, SIGKILL);
    }
  }
  // A template that does not answer a spawn request (stopped, deadlocked) would hold those
  // places forever: it is killed, and the restart path takes over.
  int64_t answer_ns = std::max<int64_t>(static_cast<int64_t>(cfg_.timeout * 1e9), 30 * kSec);
  for (uint64_t id : children_.overdue(now, answer_ns)) {
    const Worker& w = children_.pending().at(id);
    pid_t tpid = w.template_pid;
    spdlog::error("event=template-unresponsive pid={} waited_s={:.1f} action=kill", tpid,
                  seconds(now - w.started_ns));
    drop_pending(id, "template-unresponsive");
    if (Template* t = children_.find_template(tpid); t && !t->exited) ::kill(tpid, SIGKILL);
  }
}

void Arbiter::manage_workers() {
  int64_t now = monotonic_ns();
  // A worker whose successor has been ready this long without it reaching its limit (the load
  // dropped) leaves early rather than keep an extra process.
  policy::PlanTiming timing;
  timing.now_ns = now;
  bool spawn_allowed = backoff_.allows_spawn(now);
  if (spawn_allowed) held_back_ = 0;
  timing.held_back = held_back_;
  timing.early_grace_ns =
      std::max(kSec, 4 * policy::rotation_lead_ns(spawn_latency_.ns(), kSweepMs * kNsPerMs));
  policy::Plan plan =
      policy::plan(children_.views(), desired_, static_cast<int>(cfg_.max_concurrent_rotations),
                   spawn_allowed, timing);
  for (uint64_t id : plan.drain) {
    // A due-soon worker has no reason yet: it leaves for the limit it was about to reach.
    if (Worker* w = children_.find(id))
      drain_worker(*w, drain_reason(*w, ExitReason::kMaxRequests));
  }
  // A surplus due-soon worker is one whose successor moved on (it reached its own limit first):
  // it leaves for its own limit, not for a scale-down nobody asked for.
  for (uint64_t id : plan.scale_down) {
    if (Worker* w = children_.find(id)) drain_worker(*w, drain_reason(*w, ExitReason::kScaleDown));
  }
  for (uint64_t id : plan.start_rotation) spawn_worker(id);
  for (int i = 0; i < plan.spawn_fresh; ++i) spawn_worker(0);
}

void Arbiter::drain_worker(Worker& w, ExitReason reason) {
  if (w.pid <= 0) {
    // Still a request to the template (no pid yet): withdraw it; a worker reported for it
    // later is told to leave (on_spawned). kill(0, ...) would signal the whole group.
    drop_pending(w.id, exit_reason_name(reason));
    return;
  }
  w.reason = reason;
  w.phase = policy::Phase::kDraining;
  w.drain_ns = monotonic_ns();
  note_leaving_memory(w);
  // Workers stay behind this one: it hands its keep-alive connections to them (USR2).
  ::kill(w.pid, SIGUSR2);
}

void Arbiter::signal_all(int sig) {
  for (auto& [pid, w] : children_.workers()) ::kill(pid, sig);
}

void Arbiter::begin_stop(bool graceful) {
  if (stopping_ && (!graceful_ || graceful)) return;
  stopping_ = true;
  graceful_ = graceful;
  int64_t now = monotonic_ns();
  // Workers leave by themselves within graceful_timeout (their app's exit handlers included);
  // the kill, a second later as after a rotation's drain, is for those that do not.
  stop_deadline_ns_ =
      now + (graceful ? static_cast<int64_t>(cfg_.graceful_timeout * 1e9) + kSec : kFastStopNs);
  spdlog::info("event=shutdown mode={} workers={}", graceful ? "graceful" : "fast",
               children_.workers().size());
  notify_stopping();
  while (!children_.pending().empty()) drop_pending(children_.pending().begin()->first, "shutdown");
  for (auto& [pid, t] : children_.templates()) retire_template(t);
  for (auto& [pid, w] : children_.workers()) {
    w.reason = ExitReason::kShutdown;
    if (!w.drain_ns) w.drain_ns = now;
    w.phase = policy::Phase::kDraining;
    note_leaving_memory(w);
    ::kill(pid, graceful ? SIGTERM : SIGQUIT);
  }
  // After the workers were told, so that they leave the sockets rather than find them closed.
  stop_accepting(listeners_);
}

}  // namespace rotor
