// The eager start of a request (bridge.py, "eager start"): a request whose body is complete is
// stepped at once inside an idle host task (bridge._Host) and in a fresh copy of the base
// context, instead of waiting for a task of its own. Most handlers end right there; one that
// suspends is handed to its host, which carries it on as a task.
#pragma once

#include "workers/asgi/app_calls.hpp"
#include "workers/asgi/app_objects.hpp"
#include "workers/asgi/py_ref.hpp"

namespace rotor::asgi {

class EagerStart {
 public:
  EagerStart(const AppObjects& py, AppCalls& calls) : py_(py), calls_(calls) {}

  // At boot, once the loop exists: asyncio's task hooks and the first host. False with a
  // Python error set.
  bool init();
  // Steps the request in an idle host task: `coro` (bridge.run) when given, else the app's own
  // coroutine. False (nothing run) when that cannot be done now.
  bool start(PyObject* coro, PyObject* scope, PyObject* ex);

 private:
  PyRef take_host();
  // app(scope, receive, send); an awaitable that is no coroutine (a class-based app) comes
  // wrapped in _carry, which awaits and answers it (then `direct` is false).
  PyRef app_coroutine(PyObject* scope, PyObject* ex, bool* direct);
  // What run() does once the app's own coroutine, started eagerly, has ended (`sent`).
  void answer_outcome(PyObject* ex, PySendResult sent);
  void park(PyObject* host);

  const AppObjects& py_;
  AppCalls& calls_;
  PyRef hosts_;  // idle bridge._Host objects (parked tasks)
  PyRef host_cls_;
  PyRef enter_task_;  // asyncio's _enter_task and _leave_task
  PyRef leave_task_;
  PyRef cancelled_error_;
  PyRef name_task_;  // "task", "take", "wake", "done"
  PyRef name_take_;
  PyRef name_wake_;
  PyRef name_done_;
};

}  // namespace rotor::asgi
