#include "workers/runtime.hpp"

#include <grp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/identity.hpp"
#include "workers/balance.hpp"
#include "workers/http/access_log.hpp"
#include "workers/worker_limits.hpp"

namespace rotor::worker {

namespace {

// An idle keep-alive connection of a draining worker stays open this long: closing it at once
// would race a client that is just sending its next request.
constexpr uint64_t kDrainIdleGraceMs = 1000;
// What a worker's exit (the app's threads and exit handlers) gets after a fast stop (the master
// kills at 1 s), and at least after a drain that used up the graceful timeout (the master kills
// 1 s after it).
constexpr int64_t kFastExitNs = 500'000'000;

class Runtime : public http::Observer {
 public:
  Runtime(const Context& ctx, std::unique_ptr<WorkerClass> app)
      : ctx_(ctx), cfg_(*ctx.config), app_(std::move(app)) {}

  int run();

  void on_connections(size_t open) override {
    ctx_.slot->connections.store(static_cast<uint32_t>(open), std::memory_order_relaxed);
  }
  void on_in_flight(size_t n) override {
    ctx_.slot->in_flight.store(static_cast<uint32_t>(n), std::memory_order_relaxed);
  }
  bool may_accept(size_t open) override {
    uint32_t least = kNoOtherWorker;
    size_t n = ctx_.scoreboard->high_water();
    for (size_t i = 0; i < n; ++i) {
      const Slot& s = ctx_.scoreboard->slot(i);
      if (&s == ctx_.slot || s.token.load(std::memory_order_relaxed) == 0) continue;
      uint32_t state = s.state.load(std::memory_order_relaxed);
      if (state != static_cast<uint32_t>(WorkerState::kReady) &&
          state != static_cast<uint32_t>(WorkerState::kRetiring)) {
        continue;
      }
      least = std::min(least, s.connections.load(std::memory_order_relaxed));
    }
    return may_take_connection(open, least);
  }
  void on_response_complete(int status, int64_t duration_ns, bool complete) override {
    ctx_.slot->request_counters.record(status, duration_ns);
    if (!complete) return;
    uint64_t served = ctx_.slot->requests.fetch_add(1, std::memory_order_relaxed) + 1;
    if (!limit_reported_ && limit_ && served >= limit_) {
      // Keep serving: the master retires this worker once its successor is ready.
      limit_reported_ = true;
      set_state(WorkerState::kRetiring);
    }
  }

 private:
  void set_state(WorkerState s) {
    ctx_.slot->state.store(static_cast<uint32_t>(s), std::memory_order_release);
    char b = 1;
    // The master sweeps every slot when woken; a full pipe means it is about to anyway.
    [[maybe_unused]] ssize_t n = ::write(ctx_.notify_fd, &b, 1);
  }
  void heartbeat() {
    if (!slot_is_ours()) {
      // The slot may be another worker's by now: touch nothing in it, leave at once.
      if (!withdrawn_) spdlog::warn("event=spawn-withdrawn action=exit");
      withdrawn_ = true;
      stop_now();
      return;
    }
    ctx_.slot->heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
    if (getppid() != ctx_.master_pid) {
      spdlog::error("event=master-gone action=exit");
      stop_now();
    }
  }
  bool slot_is_ours() const {
    return ctx_.slot->token.load(std::memory_order_acquire) == ctx_.token;
  }
  void drain(bool hand_off);
  void stop_now();
  // Until when the app's shutdown and exit may run: the rest of the graceful timeout that the
  // drain started; a fast stop or a worker that leaves undrained gets kFastExitNs.
  int64_t exit_deadline_ns() const;
  bool drop_privileges();
  bool wait_for_master_parent();
  std::optional<int> become_worker();
  int boot_app();
  int start_server();
  void start_yielding();
  void start_heartbeat();
  void serve();
  void exit_app();

  static void on_signal(uv_signal_t* h, int signum);

  // Beats from a thread of its own while it lives (the worker's exit, after its loop), until
  // `until_ns`: an exit stuck past its bound (C code that keeps the GIL, a blocked loop) is
  // then a stall the master's --timeout ends, also where the master set it no deadline (a
  // worker sent TERM by someone else).
  class ExitBeat {
   public:
    ExitBeat(Runtime& rt, int64_t until_ns)
        : thread_([this, &rt, until_ns] {
            std::unique_lock<std::mutex> lock(mutex_);
            while (!done_ && rt.slot_is_ours() && monotonic_ns() < until_ns) {
              rt.ctx_.slot->heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
              cv_.wait_for(lock, std::chrono::milliseconds(rt.beat_ms_));
            }
          }) {}
    ~ExitBeat() {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        done_ = true;
      }
      cv_.notify_one();
      thread_.join();
    }
    ExitBeat(const ExitBeat&) = delete;
    ExitBeat& operator=(const ExitBeat&) = delete;

   private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;  // last: started once the members above exist
  };

  const Context& ctx_;
  const conf::Config& cfg_;
  uv_loop_t loop_;
  std::unique_ptr<WorkerClass> app_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<http::AccessLog> access_log_;
  LoopSignals signals_;
  uv_timer_t heartbeat_timer_, graceful_timer_;
  uv_check_t yield_check_;
  uint64_t beat_ms_ = 1000;
  uint64_t limit_ = 0;
  bool limit_reported_ = false;
  bool draining_ = false;
  int64_t drain_ns_ = 0;
  int64_t fast_stop_ns_ = 0;  // when INT or QUIT arrived
  int exit_code_ = kExitOk;
  bool drained_ = false;  // every connection finished: the app may run its shutdown
  bool withdrawn_ = false;
};

void Runtime::on_signal(uv_signal_t* h, int signum) {
  auto* rt = static_cast<Runtime*>(h->data);
  switch (signum) {
    case SIGTERM:
      rt->drain(false);
      break;
    case SIGUSR2:
      rt->drain(true);  // rotation: hand connections to the workers that stay
      break;
    case SIGINT:
    case SIGQUIT:
      if (!rt->fast_stop_ns_) rt->fast_stop_ns_ = monotonic_ns();
      rt->stop_now();
      break;
    case SIGUSR1:
      log::reopen();
      if (rt->access_log_) rt->access_log_->reopen();
      break;
    default:
      break;
  }
}

void Runtime::drain(bool hand_off) {
  if (draining_) return;
  draining_ = true;
  drain_ns_ = monotonic_ns();
  set_state(WorkerState::kDraining);
  spdlog::info("event=drain mode={} connections={}", hand_off ? "handoff" : "close",
               server_->connections());
  uint64_t grace_ms = static_cast<uint64_t>(cfg_.graceful_timeout * 1000);
  uv_timer_init(&loop_, &graceful_timer_);
  graceful_timer_.data = this;
  uv_timer_start(
      &graceful_timer_,
      [](uv_timer_t* t) {
        auto* rt = static_cast<Runtime*>(t->data);
        spdlog::warn("event=graceful-timeout connections={}", rt->server_->connections());
        rt->stop_now();
      },
      grace_ms, 0);
  server_->drain(std::min(kDrainIdleGraceMs, grace_ms), hand_off, [this] {
    drained_ = true;
    app_->stop_when_idle();
  });
}

void Runtime::stop_now() {
  server_->close_all();
  app_->stop();
}

int64_t Runtime::exit_deadline_ns() const {
  if (fast_stop_ns_) return fast_stop_ns_ + kFastExitNs;
  if (draining_) return drain_ns_ + static_cast<int64_t>(cfg_.graceful_timeout * 1e9);
  return monotonic_ns() + kFastExitNs;
}

bool Runtime::drop_privileges() {
  std::string error;
  if (switch_identity({ctx_.switch_user, ctx_.uid, ctx_.gid}, &error)) return true;
  spdlog::error("event=boot-failed error={}", log::quote(error));
  return false;
}

// The template's intermediate process exits right after the fork; until then it is our parent,
// and the parent-death signal set now would follow it instead of the master.
bool Runtime::wait_for_master_parent() {
  if (!ctx_.from_template) return true;
  int64_t deadline = monotonic_ns() + 5'000'000'000;
  while (getppid() != ctx_.master_pid) {
    if (monotonic_ns() > deadline) {
      spdlog::error("event=boot-failed error=\"not adopted by the master\" ppid={}", getppid());
      return false;
    }
    usleep(50);
  }
  return true;
}

// Under the master, as the configured user, and dying with it; a code when it must not go on.
std::optional<int> Runtime::become_worker() {
  if (!wait_for_master_parent()) return kExitBootFailed;
  if (!slot_is_ours()) return kExitOk;  // withdrawn while the template forked it
  std::signal(SIGPIPE, SIG_IGN);
  if (!drop_privileges()) return kExitBootFailed;
  // A cold worker imports the app next.
  if (!app_ && ctx_.switch_user && cfg_.worker_class != "hello") warn_if_app_dir_unreadable();
  // Die with the master; the heartbeat's getppid() check covers the window before this call.
  // After the switch of user, which clears the parent-death signal.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != ctx_.master_pid) return kExitOk;
  return std::nullopt;
}

int Runtime::boot_app() {
  exit_on_stop_until_loop();
  // The master's --timeout counts from now while the app boots (it bounds its lifespan
  // startup by it); the slot may still hold the previous worker's last beat.
  ctx_.slot->heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
  if (!app_) app_ = make_worker_class(cfg_);
  return app_->boot(&loop_);
}

int Runtime::start_server() {
  signals_.start(&loop_, on_signal, this);
  server_ = std::make_unique<http::Server>(&loop_, server_limits(cfg_), app_->handler(), *this);
  if (!cfg_.access_logfile.empty()) {
    std::string error;
    access_log_ = http::AccessLog::open(cfg_.access_logfile, cfg_.access_logformat, &error);
    if (!access_log_) {
      spdlog::error("event=boot-failed error={}", log::quote("--access-logfile: " + error));
      return kExitBootFailed;
    }
    server_->set_access_log(access_log_.get());
  }
  if (int rc = server_->listen(ctx_.listeners, ctx_.handoff); rc != 0) {
    spdlog::error("event=boot-failed error={}", log::quote(uv_strerror(rc)));
    return kExitBootFailed;
  }
  return kExitOk;
}

// After a loop pass that read input, whatever else is runnable on this CPU (the client or proxy
// reading our answers) goes first. Passes that only write an app's stream do not yield: that
// would slow streams down.
void Runtime::start_yielding() {
  uv_check_init(&loop_, &yield_check_);
  yield_check_.data = this;
  uv_check_start(&yield_check_, [](uv_check_t* h) {
    if (static_cast<Runtime*>(h->data)->server_->take_input_seen()) sched_yield();
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(&yield_check_));
}

void Runtime::start_heartbeat() {
  beat_ms_ = heartbeat_interval_ms(cfg_);
  uv_timer_init(&loop_, &heartbeat_timer_);
  heartbeat_timer_.data = this;
  uv_timer_start(
      &heartbeat_timer_, [](uv_timer_t* t) { static_cast<Runtime*>(t->data)->heartbeat(); }, 0,
      beat_ms_);
}

void Runtime::serve() {
  if (ctx_.slot->leak_trace.load(std::memory_order_relaxed)) {
    app_->trace_leaks(ctx_.slot->generation.load(std::memory_order_relaxed));
  }
  ctx_.slot->ready_ns.store(monotonic_ns(), std::memory_order_relaxed);
  heartbeat();
  set_state(WorkerState::kReady);
  app_->run(&loop_);
}

// The app's shutdown, then its own exit, as its process would end. Neither has our loop to beat
// from, and both are bounded by the deadline: a thread beats meanwhile, so that the master does
// not take a shutdown or the wait for the app's threads for a stall (the exit may end
// kFastExitNs past the deadline).
void Runtime::exit_app() {
  int64_t deadline = exit_deadline_ns();
  ExitBeat beat(*this, deadline + kFastExitNs);
  if (drained_) app_->finish(deadline);
  exit_on_fast_stop();
  app_->end(std::max(deadline, monotonic_ns() + kFastExitNs));
}

int Runtime::run() {
  log::set_role("worker");
  if (std::optional<int> code = become_worker()) return *code;
  limit_ = ctx_.slot->request_limit.load(std::memory_order_relaxed);
  uv_loop_init(&loop_);
  if (int code = boot_app(); code != kExitOk) return code;
  if (int code = start_server(); code != kExitOk) return code;
  start_yielding();
  start_heartbeat();
  serve();
  exit_app();
  return exit_code_;
}

}  // namespace

int run(const Context& ctx, std::unique_ptr<WorkerClass> app) {
  Runtime rt(ctx, std::move(app));
  return rt.run();
}

}  // namespace rotor::worker
