// --pid: the master's pid file, as gunicorn keeps it: refused while another live process holds
// it, written at start and when a HUP names another path, removed at exit.
//
// The master may run as root in a directory that a less trusted user (the --user of the
// workers) can write. So the file is never opened through a link: it is written to a new
// temporary file in the same directory and renamed over the path (a planted symlink is
// replaced, not followed), only in a directory no other user can change (or a sticky one, like
// /tmp, where others cannot replace our file), and removed at exit only while it is still ours.
#pragma once

#include <sys/types.h>

#include <string>

namespace rotor {

// The pid of a live process other than `self` that `path` names, else 0 (no file, no number,
// a dead process: a stale file, which is replaced). Links and non-regular files are not read.
pid_t pid_file_owner(const std::string& path, pid_t self);

// Whether a directory with this mode and owner can be trusted by a process running as
// `self`/`self_group`: owned by root or `self`, and sticky or writable only by root and (when
// `self` is not root) by `self` and its own group.
bool pid_directory_trusted(mode_t mode, uid_t owner, gid_t group, uid_t self, gid_t self_group);

// Why `path` may not be used as a pid file (its directory is missing or not trusted), as one
// line; empty when it may.
std::string pid_file_refusal(const std::string& path);

// The file written, to recognise it at removal.
struct PidFileId {
  dev_t dev = 0;
  ino_t ino = 0;
};

// Writes `pid` to `path` (replacing it) as described above. False with `error` set when it
// cannot or may not.
bool write_pid_file(const std::string& path, pid_t pid, PidFileId* id, std::string* error);

// Removes `path` when it is still the file `id` names (not a file another process put there).
void remove_pid_file(const std::string& path, const PidFileId& id);

}  // namespace rotor
