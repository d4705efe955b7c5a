// The Python objects an asgi worker serves with, each made or looked up once: the bridge's
// functions (workers/asgi/bridge.py), the app, its event loop. Filled in as the worker starts
// (preload, boot, run); the handler, the eager start and the lifespan read them.
#pragma once

#include "workers/asgi/py_ref.hpp"

namespace rotor::asgi {

struct AppObjects {
  // preload
  PyRef bridge;  // bridge.py, run as the module _rotor_bridge
  PyRef run;     // bridge.run(app, scope, ex, timeout): a request's task
  PyRef failed;  // bridge.failed, returned and _carry: how an eagerly started app ends
  PyRef returned;
  PyRef carry;
  PyRef websocket;  // bridge.WebSocket and bridge.run_websocket
  PyRef run_websocket;
  PyRef paused;      // _rotor.PAUSED
  PyRef app;         // the app, as bridge.prepare wraps it
  PyRef timeout;     // --timeout-request, a float
  PyRef gc_collect;  // gc.collect, for --gc-collect-every
  // boot
  PyRef loop;
  PyRef create_task;  // loop.create_task
  PyRef lifespan;     // bridge.Lifespan, when the app speaks it
  PyRef state;        // lifespan state, copied into each request's scope
  // run: the worker's contextvars, of which each request starts in a fresh copy, never in a
  // copy of whichever request's context happened to be current (a tick scheduled from its send).
  PyRef base_ctx;
};

// Compiles bridge.py, imports it as _rotor_bridge (the _rotor module must be there already)
// and looks up its functions. False with a Python error set.
bool load_bridge(AppObjects& py);

}  // namespace rotor::asgi
