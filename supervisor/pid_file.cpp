#include "supervisor/pid_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

namespace rotor {

namespace {

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The directory of `path`, opened and checked (the one opened: a link to it, as Debian's
// /var/run, is fine when what it leads to is trusted); -1 with `error` set.
int open_trusted_dir(const std::string& path, std::string* error) {
  std::string dir = dir_of(path);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    *error = dir + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return -1;
  }
  if (!pid_directory_trusted(st.st_mode, st.st_uid, st.st_gid, geteuid(), getegid())) {
    *error = "directory " + dir +
             ((st.st_mode & S_ISVTX) ? " belongs to another user, who could replace the file"
                                     : " can be written by other users and is not sticky; "
                                       "they could replace the file") +
             ": use a directory only root (or rotor's user) can write, such as /run";
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

pid_t pid_file_owner(const std::string& path, pid_t self) {
  // O_NONBLOCK: a FIFO planted at the path must not block the master.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st {};
  char buf[32] = {};
  ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? ::read(fd, buf, sizeof buf - 1) : 0;
  ::close(fd);
  if (n <= 0) return 0;
  long pid = std::strtol(buf, nullptr, 10);
  if (pid <= 0 || pid == self) return 0;
  // EPERM: alive, but another user's.
  if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) return static_cast<pid_t>(pid);
  return 0;
}

bool pid_directory_trusted(mode_t mode, uid_t owner, gid_t group, uid_t self, gid_t self_group) {
  auto trusted_user = [self](uid_t u) { return u == 0 || u == self; };
  auto trusted_group = [self, self_group](gid_t g) {
    return g == 0 || (self != 0 && g == self_group);
  };
  // Its owner can always make it writable, and may replace anyone's file in it, sticky or not.
  if (!trusted_user(owner)) return false;
  if (mode & S_ISVTX) return true;
  if ((mode & S_IWGRP) && !trusted_group(group)) return false;
  return !(mode & S_IWOTH);
}

std::string pid_file_refusal(const std::string& path) {
  std::string error;
  int fd = open_trusted_dir(path, &error);
  if (fd >= 0) ::close(fd);
  return error;
}

bool write_pid_file(const std::string& path, pid_t pid, PidFileId* id, std::string* error) {
  int dir = open_trusted_dir(path, error);
  if (dir < 0) return false;
  std::string base = base_of(path);
  std::string tmp;
  int fd = -1;
  std::random_device rd;
  for (int attempt = 0; fd < 0 && attempt < 16; ++attempt) {
    tmp = "." + base + "." + std::to_string(rd() % 1000000000);
    // O_EXCL: a name someone else created meanwhile (a file, a link) is never opened.
    fd = ::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    *error = std::string("cannot create a temporary file: ") + std::strerror(errno);
    ::close(dir);
    return false;
  }
  std::string text = std::to_string(pid) + "\n";
  struct stat st {};
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fstat(fd, &st) == 0;
  ok = ::close(fd) == 0 && ok;
  // rename(2) replaces whatever is at the path (a link included) without following it.
  if (ok && ::renameat(dir, tmp.c_str(), dir, base.c_str()) == 0) {
    *id = {st.st_dev, st.st_ino};
  } else {
    *error = std::string("cannot write: ") + std::strerror(errno);
    ::unlinkat(dir, tmp.c_str(), 0);
    ok = false;
  }
  ::close(dir);
  return ok;
}

void remove_pid_file(const std::string& path, const PidFileId& id) {
  struct stat st {};
  // lstat: a link put in its place is not ours, nor is a file another master wrote since.
  if (lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == id.dev &&
      st.st_ino == id.ino) {
    ::unlink(path.c_str());
  }
}

}  // namespace rotor
