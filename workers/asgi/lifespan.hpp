// The ASGI lifespan protocol around a worker's life (bridge.Lifespan; --lifespan auto, on or
// off): the app's startup before the worker accepts, its shutdown after the drain.
#pragma once

#include <cstdint>

#include "conf/config.hpp"
#include "workers/asgi/app_objects.hpp"

namespace rotor::asgi {

// Runs the app's startup on py.loop, making py.lifespan and py.state (no state when the app
// does not speak the protocol). `started`: when the boot began, as the master's --timeout
// counts. A worker exit code, the failure logged.
int start_lifespan(const conf::Config& cfg, AppObjects& py, int64_t started);

// Runs the app's shutdown, until `deadline_ns` (monotonic) at most.
void shut_lifespan(AppObjects& py, int64_t deadline_ns);

}  // namespace rotor::asgi
