// The master's side of a HUP: the configuration is read again, new addresses are bound, and the
// new config takes effect at once (cold workers) or once its template has imported the new code.
#include <algorithm>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "conf/load.hpp"
#include "log/log.hpp"
#include "log/syslog.hpp"
#include "supervisor/arbiter.hpp"
#include "supervisor/listeners.hpp"
#include "supervisor/pid_file.hpp"
#include "supervisor/workers_auto.hpp"

namespace rotor {
namespace {

bool same_logging(const conf::Config& a, const conf::Config& b) {
  return a.error_logfile == b.error_logfile && a.log_level == b.log_level &&
         a.log_syslog == b.log_syslog && a.log_syslog_to == b.log_syslog_to &&
         a.log_syslog_prefix == b.log_syslog_prefix &&
         a.log_syslog_facility == b.log_syslog_facility;
}

}  // namespace

std::string setup_logging(const conf::Config& cfg) {
  std::string error;
  if (!log::setup(cfg.error_logfile, cfg.log_level, &error)) return "--error-logfile: " + error;
  if (cfg.log_syslog &&
      !log::add_syslog(cfg.log_syslog_to, cfg.log_syslog_prefix, cfg.log_syslog_facility, &error))
    return "--log-syslog-to: " + error;
  return "";
}

void Arbiter::reload() {
  // The environment rotor started with: the app's -e variables, exported since, are not ours.
  conf::LoadResult res = conf::load(args_, env_, start_dir_);
  if (res.action != conf::Action::kRun) {
    ++metrics_.reloads_failed;
    spdlog::error(
        "event=reload-failed error={}",
        log::quote(res.action == conf::Action::kError ? res.message : "reload needs a run config"));
    return;
  }
  for (const auto& w : res.warnings) spdlog::warn("event=config-warning message={}", log::quote(w));
  resolve_auto_workers(res.config);  // the quota may have changed since (a resized pod)
  if (!rebind(res.config)) {
    ++metrics_.reloads_failed;
    return;
  }
  ++generation_;
  scale_since_reload_ = 0;
  // A HUP is tried at once, not after the delay that crashes of the old code earned.
  backoff_.reset();
  template_backoff_.reset();
  rss_guard_.reset();
  private_guard_.reset();
  lifetime_guard_.reset();
  next_cfg_ = std::move(res.config);
  close_unused_listeners();  // a HUP it supersedes (still importing) may have added some
  if (template_wanted()) {
    // The running workers are rotated only once the new template has imported the new code
    // (on_template_ready), and the new config takes effect then; if the import fails, they
    // keep serving under the config they started with.
    spdlog::info("event=reload generation={} workers={} mode=template", generation_,
                 next_cfg_->workers);
    return;
  }
  apply_next_config();
  for (auto& [pid, t] : children_.templates()) retire_template(t);
  children_.reload_before(generation_);
  spdlog::info("event=reload generation={} workers={} mode=cold", generation_, desired_);
}

// A HUP's --bind: its new addresses are bound now (by the master, which may need root), so
// that a bind that fails leaves everything as it was; the ones it drops stop when its config
// takes effect. False (logged) when a new address cannot be bound.
bool Arbiter::rebind(conf::Config& next) {
  std::vector<std::string> opened;
  try {
    // With the HUP's own backlog and umask: the operator may have changed them with the bind.
    opened = open_missing(listeners_, next.bind, static_cast<int>(next.backlog),
                          static_cast<mode_t>(next.umask), next.reuse_port);
  } catch (const BindError& e) {
    if (!e.port_held) {
      spdlog::error("event=reload-failed error={} detail=\"nothing changed\"",
                    log::quote(e.what()));
      return false;
    }
    // A port our own socket holds (0.0.0.0:P narrowed to 127.0.0.1:P) cannot be bound beside
    // it, and closing it first would refuse clients: the code and the rest of the config are
    // still reloaded, on the addresses in force.
    spdlog::warn(
        "event=bind-unchanged error={} detail=\"an address on a port rotor already listens on "
        "cannot be bound beside it; the reload goes on with the addresses in force; restart "
        "rotor to change them\"",
        log::quote(e.what()));
    next.bind = cfg_.bind;
    return true;
  }
  for (const auto& address : opened)
    spdlog::info("event=listening address={}", log::quote(address));
  return true;
}

// Sockets that neither the config in force nor a HUP's (importing) listens on.
void Arbiter::close_unused_listeners() {
  std::vector<const std::vector<std::string>*> binds = {&cfg_.bind};
  if (next_cfg_) binds.push_back(&next_cfg_->bind);
  for (const auto& address : close_unused(listeners_, binds)) {
    spdlog::info("event=listener-closed address={}", log::quote(address));
  }
}

// A HUP's --pid: the new file is written before the old one goes, so that one that cannot be
// written (a careless path) leaves the master with the pid file it had, still in force.
void Arbiter::move_pid_file(const std::string& old_path) {
  PidFileId old_id = pid_file_id_;
  std::string error;
  // Refused as at a start: another running master's file is not ours to take (and remove).
  if (pid_t owner = pid_file_owner(cfg_.pid_file, master_pid_)) {
    error = "it names pid " + std::to_string(owner) + ", which is running";
  }
  if (!cfg_.pid_file.empty() &&
      (!error.empty() ||
       !rotor::write_pid_file(cfg_.pid_file, master_pid_, &pid_file_id_, &error))) {
    spdlog::error("event=pid-file-failed path={} error={} kept={}", log::quote(cfg_.pid_file),
                  log::quote(error), log::quote(old_path.empty() ? "-" : old_path));
    cfg_.pid_file = old_path;
    return;
  }
  if (!old_path.empty()) remove_pid_file(old_path, old_id);
}

// A reload's config takes effect: new workers, limits, timeouts and logging from now on. TTIN
// and TTOU since the HUP still count.
void Arbiter::apply_next_config() {
  if (!next_cfg_) return;
  conf::Config next = std::move(*next_cfg_);
  next_cfg_.reset();
  if (!same_logging(next, cfg_)) {
    if (std::string error = setup_logging(next); !error.empty()) {
      setup_logging(cfg_);
      spdlog::error("event=log-setup-failed error={} detail=\"logging stays as it was\"",
                    log::quote(error));
      next.error_logfile = cfg_.error_logfile;
      next.log_level = cfg_.log_level;
      next.log_syslog = cfg_.log_syslog;
      next.log_syslog_to = cfg_.log_syslog_to;
      next.log_syslog_prefix = cfg_.log_syslog_prefix;
      next.log_syslog_facility = cfg_.log_syslog_facility;
    }
  }
  std::string old_pid_file = cfg_.pid_file;
  cfg_ = std::move(next);
  cfg_generation_ = generation_;
  ++metrics_.reloads_succeeded;
  close_unused_listeners();
  if (cfg_.pid_file != old_pid_file) move_pid_file(old_pid_file);
  desired_ = std::clamp(static_cast<int>(cfg_.workers) + scale_since_reload_, 1, conf::kMaxWorkers);
  spdlog::info("event=config-applied generation={} workers={}", generation_, desired_);
  start_memory_budget();
}

}  // namespace rotor
