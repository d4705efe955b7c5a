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

// The socket when no --socket is given: --control-socket as the server reads it from
// `config_file` (-c) and the environment, or from ROTOR_CONTROL_SOCKET alone without a file.
// "" with `error` set when the file cannot be read.
std::string default_socket(const std::string& config_file, const conf::Environment& env,
                           std::string* error);

// `rotor ctl ARGS...` and `rotor top ARGS...` (the words after the subcommand): the exit code.
int ctl_main(const std::vector<std::string>& args, const conf::Environment& env);
int top_main(const std::vector<std::string>& args, const conf::Environment& env);

}  // namespace rotor::ctl
