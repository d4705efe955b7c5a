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
#include <thread>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/identity.hpp"
#include "workers/balance.hpp"
#include "workers/http/access_log.hpp"
#include "workers/http/request.hpp"

namespace rotor::worker {

void exit_at_once(int) {
  _exit(0);
}

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
  void on_response_complete() override {
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
  uv_signal_t sig_term_, sig_int_, sig_quit_, sig_usr1_, sig_usr2_;
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

int Runtime::run() {
  log::set_role("worker");
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

  limit_ = ctx_.slot->request_limit.load(std::memory_order_relaxed);
  uv_loop_init(&loop_);

  http::Limits limits;
  limits.parse.request_line = static_cast<uint64_t>(cfg_.limit_request_line);
  limits.parse.fields = static_cast<uint64_t>(cfg_.limit_request_fields);
  limits.parse.field_size = static_cast<uint64_t>(cfg_.limit_request_field_size);
  limits.parse.head = static_cast<uint64_t>(cfg_.limit_request_head);
  limits.parse.body = static_cast<uint64_t>(cfg_.limit_request_body);
  auto ms = [](double seconds) { return static_cast<uint64_t>(seconds * 1000); };
  limits.max_in_flight = static_cast<size_t>(cfg_.limit_concurrency);
  limits.keep_alive_ms = ms(cfg_.keep_alive);
  limits.head_timeout_ms = ms(cfg_.timeout_request_head);
  limits.body_timeout_ms = ms(cfg_.timeout_request_body);
  limits.write_timeout_ms = ms(cfg_.timeout_response_write);
  limits.max_connections = static_cast<size_t>(cfg_.worker_connections);
  limits.ws_max_message = static_cast<uint64_t>(cfg_.ws_max_size);
  limits.ws_ping_interval_ms = ms(cfg_.ws_ping_interval);
  limits.ws_ping_timeout_ms = ms(cfg_.ws_ping_timeout);
  limits.server_header = cfg_.server_header;
  limits.date_header = cfg_.date_header;
  for (const std::string& h : cfg_.header) {  // NAME:VALUE, checked by the option table
    size_t colon = h.find(':');
    std::string_view name(h.data(), colon);
    if (http::iequals(name, "server")) limits.server_header = false;  // replaced by this one
    if (http::iequals(name, "date")) limits.date_header = false;
    size_t start = h.find_first_not_of(" \t", colon + 1);
    size_t end = h.find_last_not_of(" \t");
    limits.extra_headers += h.substr(0, colon) + ": ";
    if (start != std::string::npos) limits.extra_headers += h.substr(start, end + 1 - start);
    limits.extra_headers += "\r\n";
  }

  // Until the loop runs, a stop or a drain ends the worker at once: nothing is accepted yet,
  // and a cold worker's import may take long (a stop must not wait for it, nor end in a
  // timeout). Also before Python starts: it leaves SIGINT alone only when it is already
  // handled. A USR1 (reopen logs) waits, blocked, for the loop's handler.
  for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGUSR2}) std::signal(s, exit_at_once);
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, nullptr);
  std::signal(SIGUSR1, SIG_DFL);  // blocked: kept pending, not discarded as when ignored
  // The master's --timeout counts from now while the app boots (it bounds its lifespan
  // startup by it); the slot may still hold the previous worker's last beat.
  ctx_.slot->heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
  if (!app_) app_ = make_worker_class(cfg_);
  if (int code = app_->boot(&loop_); code != kExitOk) return code;

  struct {
    uv_signal_t* h;
    int sig;
  } sigs[] = {{&sig_term_, SIGTERM},
              {&sig_int_, SIGINT},
              {&sig_quit_, SIGQUIT},
              {&sig_usr1_, SIGUSR1},
              {&sig_usr2_, SIGUSR2}};
  for (auto& s : sigs) {
    uv_signal_init(&loop_, s.h);
    s.h->data = this;
    uv_signal_start(s.h, on_signal, s.sig);
    uv_unref(reinterpret_cast<uv_handle_t*>(s.h));
  }
  sigprocmask(SIG_UNBLOCK, &usr1, nullptr);  // a pending one now reaches the loop's handler

  server_ = std::make_unique<http::Server>(&loop_, limits, app_->handler(), *this);
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

  // After each pass over ready connections, let whatever else is runnable on this CPU go first
  // (another worker, the proxy or client on the same machine). A busy worker finds every
  // connection ready at each poll and would otherwise run whole scheduler slices while the
  // processes that read its answers wait: with wrk on the same two cores the asgi worker's p99
  // went from 8 ms to under 1.2 ms, at the same or higher throughput. One syscall per loop pass
  // that read input, returning at once when nothing else is runnable. Passes that only write
  // what an app's tasks sent (a streamed response, one pass per await) do not yield: with them
  // yielding, a stream of 64 events sent in bursts of 4 ran at 0.78 of gunicorn's rate, without
  // at 1.05 (scripts/bench.py streaming).
  uv_check_init(&loop_, &yield_check_);
  yield_check_.data = this;
  uv_check_start(&yield_check_, [](uv_check_t* h) {
    if (static_cast<Runtime*>(h->data)->server_->take_input_seen()) sched_yield();
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(&yield_check_));

  // Beat often enough that the master sees a stall within a small part of its timeout.
  if (cfg_.timeout > 0) {
    beat_ms_ = std::clamp<uint64_t>(static_cast<uint64_t>(cfg_.timeout * 1000 / 4), 50, 1000);
  }
  uv_timer_init(&loop_, &heartbeat_timer_);
  heartbeat_timer_.data = this;
  uv_timer_start(
      &heartbeat_timer_, [](uv_timer_t* t) { static_cast<Runtime*>(t->data)->heartbeat(); }, 0,
      beat_ms_);

  ctx_.slot->ready_ns.store(monotonic_ns(), std::memory_order_relaxed);
  heartbeat();
  set_state(WorkerState::kReady);
  app_->run(&loop_);
  int64_t deadline = exit_deadline_ns();
  // The app's shutdown, then its own exit, as its process would end. Neither has our loop to
  // beat from, and both are bounded by the deadline: a thread beats meanwhile, so that the
  // master does not take a shutdown or the wait for the app's threads for a stall (the exit
  // may end kFastExitNs past the deadline, see below).
  ExitBeat beat(*this, deadline + kFastExitNs);
  if (drained_) app_->finish(deadline);
  // A fast stop now ends it at once.
  for (int s : {SIGINT, SIGQUIT}) std::signal(s, exit_at_once);
  app_->end(std::max(deadline, monotonic_ns() + kFastExitNs));
  return exit_code_;
}

}  // namespace

int run(const Context& ctx, std::unique_ptr<WorkerClass> app) {
  Runtime rt(ctx, std::move(app));
  return rt.run();
}

}  // namespace rotor::worker
