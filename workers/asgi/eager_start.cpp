#include "workers/asgi/eager_start.hpp"

#include <utility>

#include "workers/asgi/exchange.hpp"
#include "workers/asgi/interpreter.hpp"

namespace rotor::asgi {

namespace {

PyRef attr(PyObject* obj, const char* name) {
  return PyRef::steal(PyObject_GetAttrString(obj, name));
}

PyRef intern(const char* s) {
  return PyRef::steal(PyUnicode_InternFromString(s));
}

}  // namespace

bool EagerStart::init() {
  PyRef tasks = PyRef::steal(PyImport_ImportModule("asyncio.tasks"));
  if (!tasks) return false;
  enter_task_ = attr(tasks.get(), "_enter_task");
  leave_task_ = attr(tasks.get(), "_leave_task");
  tasks.reset();
  PyRef exceptions = PyRef::steal(PyImport_ImportModule("asyncio.exceptions"));
  if (!exceptions) return false;
  cancelled_error_ = attr(exceptions.get(), "CancelledError");
  exceptions.reset();
  host_cls_ = attr(py_.bridge.get(), "_Host");
  name_task_ = intern("task");
  name_take_ = intern("take");
  name_wake_ = intern("wake");
  name_done_ = intern("done");
  hosts_ = PyRef::steal(PyList_New(0));
  if (!enter_task_ || !leave_task_ || !cancelled_error_ || !host_cls_ || !hosts_) return false;
  // One host to start with; it parks (joins hosts_) once the loop runs.
  return call_ok(
      PyObject_CallFunctionObjArgs(host_cls_.get(), py_.loop.get(), hosts_.get(), nullptr));
}

bool EagerStart::start(PyObject* coro, PyObject* scope, PyObject* ex) {
  PyRef host = take_host();
  if (!host) return false;
  PyRef task = PyRef::steal(PyObject_GetAttr(host.get(), name_task_.get()));
  PyRef ctx = task ? PyRef::steal(PyContext_Copy(py_.base_ctx.get())) : PyRef();
  PyObject* args[] = {py_.loop.get(), task.get()};
  // A task may be running already (a pipelined request dispatched from inside another
  // request's send): then entering fails, and this request gets a task of its own.
  bool entered = ctx && PyContext_Enter(ctx.get()) == 0 &&
                 call_ok(PyObject_Vectorcall(enter_task_.get(), args, 2, nullptr));
  if (!entered) {
    if (ctx) PyContext_Exit(ctx.get());
    PyErr_Clear();
    park(host.get());
    return false;
  }
  // The response may complete (and the engine forget `ex`) before we are done.
  PyRef held = PyRef::borrow(ex);
  // Called in the request's context and host task, as run() calls it in a task.
  bool direct = !coro;
  PyRef stepped = direct ? app_coroutine(scope, ex, &direct) : PyRef::borrow(coro);
  PyObject* yielded = nullptr;
  PySendResult sent = stepped ? PyIter_Send(stepped.get(), Py_None, &yielded) : PYGEN_ERROR;
  PyRef result = PyRef::steal(yielded);
  {
    ErrorAside app_error;  // the app's, while the task and context are left
    if (!call_ok(PyObject_Vectorcall(leave_task_.get(), args, 2, nullptr))) {
      log_python_error("host-failed");
    }
    PyContext_Exit(ctx.get());
  }
  if (sent == PYGEN_NEXT) {
    if (!call_ok(PyObject_CallMethodObjArgs(host.get(), name_take_.get(), stepped.get(),
                                            result.get(), ctx.get(), direct ? ex : Py_None,
                                            nullptr))) {
      log_python_error("host-failed");
    }
    return true;
  }
  if (direct) {
    answer_outcome(ex, sent);
    calls_.ended();  // the app's own coroutine ended here (run() says so itself)
  }
  if (PyErr_Occurred()) {
    // What run() lets through is a cancel (a task would end cancelled, silently), or the
    // GeneratorExit of a coroutine being closed.
    if (PyErr_ExceptionMatches(cancelled_error_.get())) {
      PyErr_Clear();
    } else {
      log_python_error("app-failed");
    }
  }
  park(host.get());
  return true;
}

// An idle host, out of the pool. When every host is busy with a suspended request (or none has
// parked yet), none: one more is made for the next requests, and this one gets a task.
PyRef EagerStart::take_host() {
  Py_ssize_t idle = PyList_GET_SIZE(hosts_.get());
  if (idle == 0) {
    // Its task keeps the new host.
    if (!call_ok(
            PyObject_CallFunctionObjArgs(host_cls_.get(), py_.loop.get(), hosts_.get(), nullptr))) {
      log_python_error("host-failed");
    }
    return PyRef();
  }
  PyRef host = PyRef::borrow(PyList_GET_ITEM(hosts_.get(), idle - 1));
  if (PyList_SetSlice(hosts_.get(), idle - 1, idle, nullptr) != 0) {
    host.reset();
    log_python_error("host-failed");
  }
  return host;
}

PyRef EagerStart::app_coroutine(PyObject* scope, PyObject* ex, bool* direct) {
  PyRef coro;
  PyObject *receive, *send;
  if (exchange_callables(ex, &receive, &send)) {
    PyRef receive_ref = PyRef::steal(receive), send_ref = PyRef::steal(send);
    PyObject* app_args[] = {scope, receive, send};
    coro = PyRef::steal(PyObject_Vectorcall(py_.app.get(), app_args, 3, nullptr));
  }
  if (coro && !PyCoro_CheckExact(coro.get())) {
    coro = PyRef::steal(PyObject_CallFunctionObjArgs(py_.carry.get(), ex, coro.get(), nullptr));
    *direct = !coro;
  }
  return coro;
}

void EagerStart::answer_outcome(PyObject* ex, PySendResult sent) {
  if (sent == PYGEN_RETURN) {
    if (exchange_answered(ex)) return;  // the common case: nothing left to do
    if (!call_ok(PyObject_CallOneArg(py_.returned.get(), ex))) log_python_error("app-failed");
    return;
  }
  FetchedError error;
  if (!error.type) return;
  error.normalize();
  // For the traceback failed() logs.
  if (error.traceback) PyException_SetTraceback(error.value, error.traceback);
  if (!call_ok(PyObject_CallFunctionObjArgs(py_.failed.get(), ex, error.value, py_.timeout.get(),
                                            nullptr))) {
    log_python_error("app-failed");
  }
  // As run() re-raises only a cancel (bridge._passes): an exit is this request's failure.
  if (PyErr_GivenExceptionMatches(error.type, cancelled_error_.get()) ||
      PyErr_GivenExceptionMatches(error.type, PyExc_GeneratorExit)) {
    error.restore();  // pending again, for the caller
  }
}

// An eager start is over: the host goes back to the idle pool, unless a cancel() woke it
// meanwhile (it then carries that on as a task).
void EagerStart::park(PyObject* host) {
  PyRef wake = PyRef::steal(PyObject_GetAttr(host, name_wake_.get()));
  PyRef done =
      wake ? PyRef::steal(PyObject_CallMethodNoArgs(wake.get(), name_done_.get())) : PyRef();
  if (!done || (done.get() == Py_False && PyList_Append(hosts_.get(), host) != 0)) {
    log_python_error("host-failed");
  }
}

}  // namespace rotor::asgi
