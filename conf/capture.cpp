#include "conf/capture.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rotor::conf {
namespace {

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Appends what can be read now from the non-blocking `fd`; false at its end.
bool read_available(int fd, std::string& out) {
  char buf[4096];
  for (;;) {
    ssize_t got = ::read(fd, buf, sizeof buf);
    if (got > 0) {
      out.append(buf, static_cast<size_t>(got));
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      return got < 0 && errno == EAGAIN;
    }
  }
}

}  // namespace

Captured capture(const std::vector<std::string>& argv,
                 const std::map<std::string, std::string>& env, const std::string& dir,
                 int timeout_ms) {
  Captured result;
  int out[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) {
    result.error = std::strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  if (!dir.empty()) posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  // The master blocks the signals it reads from a signalfd and may ignore some: the helper
  // must not inherit that.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  // Its own process group: what it leaves running (a child holding the output pipe) is
  // killed with it.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_text;
  for (const auto& [key, value] : env) env_text.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (std::string& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    result.error = std::strerror(rc);
    ::close(out[0]);
    return result;
  }

  // Read until the program exits (its pidfd is readable), not until the pipe closes: a child
  // or a thread it left behind may keep the pipe open. What it wrote is in the pipe by then.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
  int64_t deadline = now_ms() + timeout_ms;
  pollfd pfds[2] = {{out[0], POLLIN, 0}, {pidfd, POLLIN, 0}};  // poll skips a pidfd of -1
  bool killed = false, exited = false, eof = false;
  while (!exited && !(eof && pidfd < 0)) {
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      killed = true;
      break;
    }
    pfds[0].fd = eof ? -1 : out[0];
    int n = ::poll(pfds, 2, static_cast<int>(left));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (pfds[0].revents) eof = !read_available(out[0], result.out);
    exited = pfds[1].revents != 0;
  }
  if (exited && !eof) read_available(out[0], result.out);
  ::close(out[0]);
  // The whole group: the program on a timeout, and whatever it left running (its result is
  // in; nothing it started may outlive the evaluation). Before the reap: the group's id is
  // still ours.
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) ::close(pidfd);
  if (killed) {
    result.error = "did not finish within " + std::to_string(timeout_ms / 1000) + " s";
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.error = std::string("killed by signal ") + std::to_string(WTERMSIG(status));
  }
  return result;
}

}  // namespace rotor::conf
