// The template process ("zygote"): a child of the master that loads the app once (for Python:
// the interpreter and the import) and then only forks warm workers when the master asks.
// Workers are double-forked so that they become the master's own children (it is a child
// subreaper); the template reports each pid over its control socket.
#pragma once

#include <cstdint>

#include "supervisor/scoreboard.hpp"
#include "workers/runtime.hpp"

namespace rotor::worker {

struct TemplateContext {
  Context worker;  // what every worker gets; the slot is filled in per spawn
  Scoreboard* scoreboard = nullptr;
  int control_fd = -1;  // the template's end of the control socket
};

// Runs in the template process; returns its exit code (kExitAppLoadFailed when the import
// failed, kExitBootFailed for anything else).
int run_template(const TemplateContext& tc);

}  // namespace rotor::worker
