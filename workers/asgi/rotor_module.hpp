// The _rotor module: the engine's side of the bridge, as bridge.py calls it (send, app_failed,
// ws_accept, log, ...). Its functions reach the request handler through the module's state.
#pragma once

typedef struct _object PyObject;

namespace rotor::asgi {

class RequestHandler;

// Puts _rotor into sys.modules, its functions bound to `handler`, with `paused` as
// _rotor.PAUSED. False with a Python error set.
bool install_rotor_module(RequestHandler* handler, PyObject* paused);

}  // namespace rotor::asgi
