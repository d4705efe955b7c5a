// Running a helper program to completion and capturing what it prints: the configuration
// loader runs a gunicorn.conf.py in Python this way, so the master never starts an interpreter.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace rotor::conf {

struct Captured {
  std::string error;   // "" when the program ran (whatever its exit status), else why not
  int exit_code = -1;  // its exit status, or -1 when it was killed (the deadline) or not run
  std::string out;     // its standard output
};

// Runs argv[0] (a path, not looked up on PATH) in `dir` (the current one when empty) with
// exactly `env`, default signal handling and an empty signal mask, no stdin, and rotor's
// stderr (where a traceback belongs), in its own process group. Its output is read until it
// exits; it is killed after `timeout_ms`, and what it leaves running (threads keep it alive,
// children keep its process group) is killed with it.
Captured capture(const std::vector<std::string>& argv,
                 const std::map<std::string, std::string>& env, const std::string& dir,
                 int timeout_ms);

}  // namespace rotor::conf
