// rotor: a pre-fork HTTP server supervisor with max-requests rotation.
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include <spdlog/spdlog.h>

#include "conf/load.hpp"
#include "log/log.hpp"
#include "supervisor/arbiter.hpp"
#include "supervisor/control_server.hpp"
#include "supervisor/ctl_client.hpp"
#include "supervisor/identity.hpp"
#include "supervisor/leak_trace.hpp"
#include "supervisor/listeners.hpp"
#include "supervisor/pid_file.hpp"
#include "supervisor/statsd_sink.hpp"
#include "supervisor/workers_auto.hpp"
#include "workers/http/access_log.hpp"

extern char** environ;

namespace {

constexpr int kProbeBacklog = 64;  // scrapers and probes: a few at a time

int usage_error(const std::string& what) {
  std::fprintf(stderr, "rotor: error: %s\n", what.c_str());
  return rotor::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  rotor::conf::Environment env = rotor::conf::environment_from(environ);
  // Subcommands: the server's APP is MODULE:ATTR, so a bare "ctl" or "top" is never one.
  if (!args.empty() && (args[0] == "ctl" || args[0] == "top")) {
    std::vector<std::string> rest(args.begin() + 1, args.end());
    return args[0] == "ctl" ? rotor::ctl::ctl_main(rest, env) : rotor::ctl::top_main(rest, env);
  }
  rotor::conf::LoadResult res = rotor::conf::load(args, env);
  switch (res.action) {
    case rotor::conf::Action::kRun:
      break;
    case rotor::conf::Action::kError:
      std::fprintf(stderr, "%s\n", res.message.c_str());
      return res.exit_code ? res.exit_code : rotor::kExitUsage;
    default:
      // A check shows what a run would warn about: an ignored flag is part of the verdict.
      for (const auto& w : res.warnings) std::fprintf(stderr, "rotor: warning: %s\n", w.c_str());
      std::fwrite(res.message.data(), 1, res.message.size(), stdout);
      if (!res.message.empty() && res.message.back() != '\n') std::fputc('\n', stdout);
      return res.exit_code;
  }
  rotor::conf::Config& cfg = res.config;

  char* cwd = getcwd(nullptr, 0);  // a HUP reads a relative config path from here again
  std::string start_dir = cwd ? cwd : "";
  std::free(cwd);
  // Before the logs are opened: relative log and pid file paths are relative to --chdir, as in
  // gunicorn, at start and at every reopen alike.
  if (!cfg.chdir.empty() && chdir(cfg.chdir.c_str()) != 0) {
    return usage_error("--chdir: " + cfg.chdir + ": " + std::strerror(errno));
  }
  if (cfg.umask > 0) umask(static_cast<mode_t>(cfg.umask));
  std::string error;
  auto identity = rotor::resolve_identity(cfg.user, cfg.group, &error);
  if (!identity) return usage_error(error);
  if (identity->switch_user) rotor::log::give_new_files_to(identity->uid, identity->gid);
  if (std::string problem = rotor::setup_logging(cfg); !problem.empty()) {
    return usage_error(problem);
  }
  for (const auto& w : res.warnings) {
    spdlog::warn("event=config-warning message={}", rotor::log::quote(w));
  }
  rotor::resolve_auto_workers(cfg);
  // Each worker opens the access log itself; a path it cannot open is a usage error, found here.
  if (!cfg.access_logfile.empty() &&
      (!rotor::log::prepare_file(cfg.access_logfile, &error) ||
       !rotor::http::AccessLog::open(cfg.access_logfile, cfg.access_logformat, &error))) {
    return usage_error("--access-logfile: " + error);
  }

  if (cfg.leak_report) {
    std::string why = rotor::leak_report_dir_refusal(cfg.leak_report_dir, identity->switch_user,
                                                     identity->uid, identity->gid);
    if (!why.empty()) {
      std::fprintf(stderr, "rotor: error: --leak-report-dir: %s\n", why.c_str());
      return rotor::kExitBindFailed;
    }
  }

  if (pid_t owner = rotor::pid_file_owner(cfg.pid_file, getpid())) {
    std::fprintf(stderr,
                 "rotor: error: --pid: %s names pid %d, which is running; stop it, or remove the "
                 "file if that process is not a rotor\n",
                 cfg.pid_file.c_str(), static_cast<int>(owner));
    return rotor::kExitBindFailed;
  }
  if (!cfg.pid_file.empty()) {
    if (std::string why = rotor::pid_file_refusal(cfg.pid_file); !why.empty()) {
      std::fprintf(stderr, "rotor: error: --pid: %s: %s\n", cfg.pid_file.c_str(), why.c_str());
      return rotor::kExitBindFailed;
    }
  }

  // Orphans of our workers (and, as PID 1, of anyone) come to us to be reaped.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  std::vector<rotor::Listener> listeners;
  try {
    listeners = rotor::open_listeners(cfg.bind, static_cast<int>(cfg.backlog), env,
                                      static_cast<mode_t>(cfg.umask), cfg.reuse_port);
  } catch (const rotor::BindError& e) {
    std::fprintf(stderr, "rotor: error: %s\n", e.what());
    return rotor::kExitBindFailed;
  }
  std::optional<rotor::Listener> probes;
  if (!cfg.metrics_bind.empty()) {
    try {
      probes =
          rotor::open_listener(cfg.metrics_bind, kProbeBacklog, static_cast<mode_t>(cfg.umask));
    } catch (const rotor::BindError& e) {
      rotor::close_listeners(listeners);
      std::fprintf(stderr, "rotor: error: --metrics-bind: %s\n", e.what());
      return rotor::kExitBindFailed;
    }
  }
  rotor::StatsdSink statsd;
  if (!cfg.statsd_host.empty()) {
    if (std::string why = statsd.open(cfg.statsd_host); !why.empty()) {
      std::fprintf(stderr, "rotor: error: --statsd-host: %s: %s\n", cfg.statsd_host.c_str(),
                   why.c_str());
      if (probes) listeners.push_back(std::move(*probes));
      rotor::close_listeners(listeners);
      return rotor::kExitBindFailed;
    }
  }
  rotor::ControlServer control;
  if (!cfg.control_socket.empty()) {
    if (std::string why = control.open(cfg.control_socket); !why.empty()) {
      std::fprintf(stderr, "rotor: error: --control-socket: %s: %s\n", cfg.control_socket.c_str(),
                   why.c_str());
      if (probes) listeners.push_back(std::move(*probes));
      rotor::close_listeners(listeners);
      return rotor::kExitBindFailed;
    }
  }
  // Socket activation is ours alone; nothing the workers start should see it.
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDNAMES");

  rotor::Arbiter arbiter(std::move(cfg), std::move(args), std::move(env), std::move(start_dir),
                         std::move(listeners), *identity);
  if (probes) arbiter.serve_probes(std::move(*probes));
  arbiter.set_control(std::move(control));
  if (statsd.is_open()) arbiter.set_statsd(std::move(statsd));
  return arbiter.run();
}
