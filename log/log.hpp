// The error log shared by the master and its workers: one line per event, `key=value` fields,
// written with one write(2) each so lines from several processes never interleave.
#pragma once

#include <sys/types.h>

#include <string>

namespace rotor::log {

// Installs the default logger. `path` "-" is stderr. False with `error` set when the file
// cannot be opened or the level is unknown.
bool setup(const std::string& path, const std::string& level, std::string* error);

// USR1: open the log file again (after logrotate moved it).
void reopen();

// --user: log files the master creates from now on (the error log, and the access log its
// workers open) belong to the workers' user, so that workers can open them again after a
// rotation, as with gunicorn. Files that already exist keep their owner.
void give_new_files_to(uid_t uid, gid_t gid);

// Creates the log file `path` if it is missing (see give_new_files_to); "-" is stdout/stderr.
// False with `error` set when it cannot be opened for appending.
bool prepare_file(const std::string& path, std::string* error);

// Tags every line of this process with `role=...` (master, worker). `role` must outlive the
// process: a string literal.
void set_role(const char* role);
const char* role();

// Quotes a value for a key=value field when it holds spaces, quotes or is empty.
std::string quote(const std::string& value);

}  // namespace rotor::log
