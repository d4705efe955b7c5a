// The error log shared by the master and its workers: one line per event, `key=value` fields,
// written with one write(2) each so lines from several processes never interleave.
#pragma once

#include <string>

namespace rotor::log {

// Installs the default logger. `path` "-" is stderr. False with `error` set when the file
// cannot be opened or the level is unknown.
bool setup(const std::string& path, const std::string& level, std::string* error);

// USR1: open the log file again (after logrotate moved it).
void reopen();

// Tags every line of this process with `role=...` (master, worker). `role` must outlive the
// process: a string literal.
void set_role(const char* role);

// Quotes a value for a key=value field when it holds spaces, quotes or is empty.
std::string quote(const std::string& value);

}  // namespace rotor::log
