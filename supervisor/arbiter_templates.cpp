// The master's side of the template processes: starting them, asking them for workers,
// adopting the pids they report, and surviving their failures (see DESIGN.md).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/arbiter.hpp"
#include "supervisor/template_protocol.hpp"
#include "workers/template.hpp"
#include "workers/worker_class.hpp"

namespace rotor {

namespace {

// The parent pid of `pid` from /proc, or 0: a pid the template reports is trusted only when the
// process is already our child.
pid_t parent_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  char state = 0;
  long ppid = 0;
  if (std::sscanf(text.c_str() + close + 1, " %c %ld", &state, &ppid) != 2) return 0;
  return static_cast<pid_t>(ppid);
}

}  // namespace

bool Arbiter::uses_template() const {
  return cfg_.preload && !cold_fallback_ && worker::preloads(cfg_);
}

bool Arbiter::template_wanted() const {
  // A reload's code may no longer start threads at import: its template is tried again.
  if (next_cfg_) return next_cfg_->preload && worker::preloads(*next_cfg_);
  return uses_template();
}

void Arbiter::manage_templates() {
  if (!template_wanted()) return;
  policy::TemplateNeedInputs in;
  for (const auto& [pid, t] : children_.templates()) {
    if (t.asked_to_exit) continue;
    in.any_alive = true;
    if (t.generation == generation_) in.current_alive = true;
  }
  in.current_failed = failed_generation_ == generation_;
  in.spawn_allowed = template_backoff_.allows_spawn(monotonic_ns());
  if (policy::need_template(in)) start_template();
}

void Arbiter::start_template() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    spdlog::error("event=template-failed error={}", log::quote(std::strerror(errno)));
    template_backoff_.on_crash(monotonic_ns());
    return;
  }
  app_env_.apply(next_cfg_ ? next_cfg_->env : cfg_.env);  // what its import sees
  pid_t pid = fork();
  if (pid < 0) {
    spdlog::error("event=template-failed error={}", log::quote(std::strerror(errno)));
    ::close(pair[0]);
    ::close(pair[1]);
    template_backoff_.on_crash(monotonic_ns());
    return;
  }
  if (pid == 0) {
    // The template of a reload imports its code and listens where its config says.
    const conf::Config& config = next_cfg_ ? *next_cfg_ : cfg_;
    prepare_child(config);
    ::close(pair[0]);
    worker::TemplateContext tc;
    tc.worker = worker_context(0, config);
    tc.worker.slot = nullptr;
    tc.scoreboard = scoreboard_.get();
    tc.control_fd = pair[1];
    _exit(worker::run_template(tc));
  }
  ::close(pair[1]);
  fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK);
  // An older generation still importing is superseded (repeated HUPs with a slow import).
  for (auto& [other_pid, other] : children_.templates()) {
    if (!other.ready) retire_template(other);
  }
  Template t;
  t.pid = pid;
  t.fd = pair[0];
  // A template of the config in force (a restart after a crash, also after a failed reload)
  // belongs to that config's generation, not to the HUP that failed.
  t.generation = next_cfg_ ? generation_ : cfg_generation_;
  t.started_ns = monotonic_ns();
  children_.add_template(t);
  spdlog::info("event=template-start pid={} generation={}", pid, t.generation);
}

bool Arbiter::request_spawn(Template& t, Worker w) {
  w.template_pid = t.pid;
  if (!tmpl::send_msg(t.fd, {tmpl::MsgType::kSpawn, static_cast<uint32_t>(w.slot), w.id, 0})) {
    spdlog::error("event=spawn-failed template={} error={}", t.pid,
                  log::quote(std::strerror(errno)));
    release_slot(w.slot, w.id);
    children_.unlink(w.id);
    return false;
  }
  children_.add_pending(w);
  return true;
}

void Arbiter::read_template(Template& t) {
  tmpl::Msg msg;
  while (t.fd >= 0) {
    int got = tmpl::recv_msg(t.fd, &msg);
    if (got < 0 && errno == EAGAIN) return;
    if (got <= 0) {
      // It is exiting; the reap tells how. Nothing more will come from it.
      ::close(t.fd);
      t.fd = -1;
      return;
    }
    // A retired template, or one of a HUP that a newer HUP superseded (newer than the config in
    // force, older than the newest HUP), has nothing more to say about the code or config in
    // force: the newer HUP's template, started at the next sweep, retires it if it is not
    // ready. Only the workers it forked still count. A restart of the config in force is
    // neither.
    bool superseded = t.generation > cfg_generation_ && t.generation < generation_;
    if ((t.asked_to_exit || superseded) &&
        (msg.type == tmpl::MsgType::kReady || msg.type == tmpl::MsgType::kThreads)) {
      if (msg.type == tmpl::MsgType::kThreads) t.asked_to_exit = true;  // it exits by itself
      continue;
    }
    switch (msg.type) {
      case tmpl::MsgType::kReady:
        on_template_ready(t, msg.value);
        break;
      case tmpl::MsgType::kSpawned:
        on_spawned(t, msg.id, static_cast<pid_t>(msg.value));
        break;
      case tmpl::MsgType::kSpawnFailed:
        spdlog::error("event=spawn-failed template={} error={}", t.pid,
                      log::quote(std::strerror(static_cast<int>(msg.value))));
        drop_pending(msg.id, "spawn-failed");
        note_boot_failure(monotonic_ns());
        break;
      case tmpl::MsgType::kThreads:
        spdlog::warn(
            "event=template-fallback mode=cold threads={} detail=\"the app starts threads at "
            "import, so it cannot be forked safely; each worker imports it itself until the "
            "next HUP\"",
            msg.value);
        cold_fallback_ = true;
        // The reload's config comes in with the cold workers that now run its code.
        if (t.generation == generation_) apply_next_config();
        t.asked_to_exit = true;  // it exits by itself
        // Its generation and older ones go cold; a newer HUP's template importing meanwhile
        // stays, and so do the workers of the code in force when this is only its restart.
        for (auto& [pid, other] : children_.templates()) {
          if (other.generation <= t.generation) retire_template(other);
        }
        children_.reload_before(cfg_generation_);
        break;
      default:
        spdlog::error("event=template-protocol-error template={} type={}", t.pid,
                      static_cast<uint32_t>(msg.type));
        break;
    }
  }
}

void Arbiter::on_template_ready(Template& t, int64_t boot_ns) {
  t.ready = true;
  spdlog::info("event=template-ready pid={} generation={} boot_ms={:.1f}", t.pid, t.generation,
               static_cast<double>(boot_ns) / kNsPerMs);
  if (next_cfg_ && t.generation == generation_) {
    cold_fallback_ = false;  // the reload's code imports without starting threads
    apply_next_config();
  }
  // A newer generation is ready: the older templates go, and their workers are rotated onto
  // this one (spawn-before-retire, as many at a time as max_concurrent_rotations allows).
  for (auto& [pid, other] : children_.templates()) {
    if (&other != &t && other.generation <= t.generation) retire_template(other);
  }
  children_.reload_before(t.generation);
}

void Arbiter::on_spawned(Template& t, uint64_t id, pid_t pid) {
  bool alive = pid > 0 && parent_of(pid) == master_pid_;
  AdoptResult adopted = children_.adopt(id, pid, alive);
  switch (adopted.outcome) {
    case Adoption::kRejected:
      spdlog::error("event=spawn-rejected template={} pid={} detail=\"not a child of the master\"",
                    t.pid, pid);
      drop_pending(id, "spawn-rejected");
      return;
    case Adoption::kUnwanted:
      spdlog::info("event=spawn-unwanted template={} pid={} detail=\"its request was withdrawn\"",
                   t.pid, pid);
      // Its request was withdrawn (scale-down, stop): the worker is not wanted.
      if (alive) ::kill(pid, SIGTERM);
      return;
    case Adoption::kAdopted:
    case Adoption::kDied:
      break;
  }
  Worker& w = *adopted.worker;
  // Forked by an older generation after a newer one became ready: it is rotated at once.
  if (const Template* newest = children_.ready_template();
      newest && newest->generation > w.generation) {
    w.reason = ExitReason::kReload;
  }
  log_spawn(w);
  if (adopted.outcome == Adoption::kDied) {
    // It died before its pid reached us; the reap kept its status.
    on_worker_exit(w, adopted.exit);
    children_.remove(pid);
  }
}

void Arbiter::drop_pending(uint64_t id, const char* why) {
  std::optional<Worker> w = children_.drop_pending(id);
  if (!w) return;
  spdlog::debug("event=spawn-dropped id={} reason={}", id, why);
  release_slot(w->slot, w->id);
}

void Arbiter::retire_template(Template& t) {
  if (t.asked_to_exit || t.exited) return;
  t.asked_to_exit = true;
  ::kill(t.pid, SIGTERM);
}

void Arbiter::reap_template(Template& t, int status) {
  // What it sent before it died (a pid it forked) is still in its socket.
  read_template(t);
  t.exited = true;
  on_template_exit(t, status);
  if (t.fd >= 0) ::close(t.fd);
  children_.remove_template(t.pid);
}

void Arbiter::on_template_exit(Template& t, int status) {
  int64_t now = monotonic_ns();
  for (uint64_t id : children_.pending_of(t.pid)) drop_pending(id, "template-exit");

  policy::TemplateExitInputs in;
  in.asked = t.asked_to_exit || stopping_;
  in.was_ready = t.ready;
  for (const auto& [pid, other] : children_.templates()) {
    if (&other != &t && other.ready && !other.asked_to_exit) in.other_ready = true;
  }
  in.ever_served = ever_ready_;
  in.for_reload = t.generation > cfg_generation_;
  policy::TemplateExit action = policy::template_exit(in);
  auto level = action == policy::TemplateExit::kIgnore ? spdlog::level::info : spdlog::level::err;
  spdlog::log(level, "event=template-exit pid={} generation={} status={} ready={} uptime_s={:.3f}",
              t.pid, t.generation, exit_status_text(status), t.ready ? "yes" : "no",
              static_cast<double>(now - t.started_ns) / 1e9);
  switch (action) {
    case policy::TemplateExit::kIgnore:
      break;
    case policy::TemplateExit::kBootFailed:
      fail_boot(t.pid, status);
      break;
    case policy::TemplateExit::kReloadFailed:
      failed_generation_ = t.generation;
      ++metrics_.reloads_failed;
      if (t.generation == generation_) {
        next_cfg_.reset();
        close_unused_listeners();  // the addresses only that HUP added
      }
      spdlog::error(
          "event=reload-failed generation={} detail=\"the new code did not load (traceback "
          "above); the running workers keep serving with their config; fix it and send HUP "
          "again\"",
          t.generation);
      break;
    case policy::TemplateExit::kRestart:
      template_backoff_.on_crash(now);
      spdlog::warn("event=template-restart delay_ms={}", template_backoff_.delay_ns() / kNsPerMs);
      break;
  }
}

}  // namespace rotor
