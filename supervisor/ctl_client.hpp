// `rotor ctl` and `rotor top`: clients of the master's control socket (--control-socket). One
// connection per request: a JSON line out, a JSON line back.
#pragma once

#include <string>
#include <vector>

#include "conf/load.hpp"

namespace rotor::ctl {

constexpr int kExitDone = 0;
constexpr int kExitNoServer = 1;  // nothing answers at the socket, or permission refused
constexpr int kExitUsage = 2;     // bad command or argument, or the master refused it

// Sends `line` to the control socket at `path` and reads the reply line into `reply`.
// kExitDone, or kExitNoServer with `error` the one line to print.
int exchange(const std::string& path, const std::string& line, std::string* reply,
             std::string* error);

// The socket: --socket, else ROTOR_CONTROL_SOCKET (as --control-socket reads it).
std::string default_socket(const conf::Environment& env);

// `rotor ctl ARGS...` and `rotor top ARGS...` (the words after the subcommand): the exit code.
int ctl_main(const std::vector<std::string>& args, const conf::Environment& env);
int top_main(const std::vector<std::string>& args, const conf::Environment& env);

}  // namespace rotor::ctl
