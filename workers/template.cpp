#include "workers/template.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/identity.hpp"
#include "supervisor/template_protocol.hpp"

namespace rotor::worker {

namespace {

const int kTemplateSignals[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP};

// Threads of this process: a fork copies only the calling thread, so any other thread's locks
// and work would be lost in the workers.
int count_threads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return 1;
}

class Template {
 public:
  explicit Template(const TemplateContext& tc) : tc_(tc) {}
  int run();

 private:
  void spawn(const tmpl::Msg& request);
  [[noreturn]] void become_worker(const tmpl::Msg& request);

  const TemplateContext& tc_;
  std::unique_ptr<WorkerClass> app_;
  int signal_fd_ = -1;
};

int Template::run() {
  log::set_role("template");
  // Die with the master; a template outliving it would hold the listening sockets.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != tc_.worker.master_pid) return kExitOk;
  // --user/--group before any app code runs: the import (and every HUP's re-import) may run
  // code from a tree the service user can write. The switch clears the parent-death signal.
  std::string error;
  if (!switch_identity({tc_.worker.switch_user, tc_.worker.uid, tc_.worker.gid}, &error)) {
    spdlog::error("event=template-failed error={}", log::quote(error));
    return kExitBootFailed;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != tc_.worker.master_pid) return kExitOk;
  if (tc_.worker.switch_user) warn_if_app_dir_unreadable();
  std::signal(SIGPIPE, SIG_IGN);
  // While the app imports, TERM/INT/QUIT end the template at once (a stop need not wait for a
  // slow import) through a handler of ours: Python installs its own SIGINT handler only where
  // it finds the default one. What the master sends everyone else must not kill it.
  for (int s : {SIGTERM, SIGINT, SIGQUIT}) std::signal(s, exit_at_once);
  for (int s : {SIGUSR1, SIGUSR2, SIGHUP}) std::signal(s, SIG_IGN);

  int64_t started = monotonic_ns();
  app_ = make_worker_class(*tc_.worker.config);
  if (int code = app_->preload(); code != kExitOk) return code;

  sigset_t set;
  sigemptyset(&set);
  for (int s : kTemplateSignals) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  for (int s : {SIGUSR1, SIGUSR2, SIGHUP}) std::signal(s, SIG_DFL);  // blocked: read below
  signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC);
  if (int threads = count_threads(); threads > 1) {
    spdlog::error(
        "event=template-threads threads={} detail=\"the app started threads at import; "
        "workers forked from it would lose them\"",
        threads);
    tmpl::send_msg(tc_.control_fd, {tmpl::MsgType::kThreads, 0, 0, threads});
    return kExitOk;
  }
  if (!tmpl::send_msg(tc_.control_fd, {tmpl::MsgType::kReady, 0, 0, monotonic_ns() - started})) {
    return kExitOk;  // the master is gone or replaced us
  }

  while (true) {
    pollfd fds[2] = {{tc_.control_fd, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("event=template-failed error={}", log::quote(std::strerror(errno)));
      return kExitBootFailed;
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      if (::read(signal_fd_, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGUSR1) {
          log::reopen();
        } else if (info.ssi_signo != SIGUSR2 && info.ssi_signo != SIGHUP) {
          return kExitOk;  // TERM, INT, QUIT: the master retired us or is stopping
        }
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      tmpl::Msg msg;
      int got = tmpl::recv_msg(tc_.control_fd, &msg);
      if (got == 0) return kExitOk;  // the master closed our control socket
      if (got < 0) {
        if (errno == EAGAIN) continue;
        spdlog::error("event=template-failed error={}", log::quote(std::strerror(errno)));
        return kExitBootFailed;
      }
      if (msg.type == tmpl::MsgType::kSpawn) spawn(msg);
    }
  }
}

// Double fork: the intermediate process forks the worker and exits at once, so the worker is
// adopted by the master (a child subreaper). The intermediate reports the pid through a pipe.
void Template::spawn(const tmpl::Msg& request) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    tmpl::send_msg(tc_.control_fd, {tmpl::MsgType::kSpawnFailed, request.slot, request.id, errno});
    return;
  }
  app_->before_fork();
  pid_t middle = fork();
  if (middle == 0) {
    pid_t worker = fork();
    if (worker == 0) {
      ::close(pipe_fds[0]);
      ::close(pipe_fds[1]);
      become_worker(request);
    }
    int64_t result = worker > 0 ? worker : -errno;
    [[maybe_unused]] ssize_t n = ::write(pipe_fds[1], &result, sizeof result);
    _exit(0);
  }
  int fork_errno = errno;
  app_->after_fork(false);
  ::close(pipe_fds[1]);
  int64_t result = -fork_errno;
  if (middle > 0) {
    if (::read(pipe_fds[0], &result, sizeof result) != sizeof result) result = -EPIPE;
    while (waitpid(middle, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(pipe_fds[0]);
  tmpl::Msg reply{result > 0 ? tmpl::MsgType::kSpawned : tmpl::MsgType::kSpawnFailed, request.slot,
                  request.id, result > 0 ? result : -result};
  tmpl::send_msg(tc_.control_fd, reply);
}

void Template::become_worker(const tmpl::Msg& request) {
  ::close(tc_.control_fd);
  ::close(signal_fd_);
  // As in the master's children: until the runtime installs its handlers, USR1/USR2 are
  // ignored rather than fatal.
  std::signal(SIGUSR1, SIG_IGN);
  std::signal(SIGUSR2, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  app_->after_fork(true);
  Context ctx = tc_.worker;
  ctx.slot = &tc_.scoreboard->slot(request.slot);
  ctx.token = request.id;
  ctx.from_template = true;
  _exit(worker::run(ctx, std::move(app_)));
}

}  // namespace

int run_template(const TemplateContext& tc) {
  Template t(tc);
  return t.run();
}

}  // namespace rotor::worker
