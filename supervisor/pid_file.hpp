// --pid: the master's pid file, as gunicorn keeps it: refused while another live process holds
// it, written at start and when a HUP names another path, removed at exit.
#pragma once

#include <sys/types.h>

#include <string>

namespace rotor {

// The pid of a live process other than `self` that `path` names, else 0 (no file, no number,
// a dead process: a stale file, which is replaced).
pid_t pid_file_owner(const std::string& path, pid_t self);

// Writes `pid` to `path` (replacing it). False when it cannot.
bool write_pid_file(const std::string& path, pid_t pid);

}  // namespace rotor
