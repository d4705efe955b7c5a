#include "workers/asgi/loop_driver.hpp"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace rotor::asgi {

namespace {
PyMethodDef g_tick_def = {"rotor_tick", nullptr, METH_NOARGS, nullptr};
}

LoopDriver::LoopDriver(uv_loop_t* uv, PyObject* aio_loop, PyObject* context)
    : uv_(uv), loop_(aio_loop) {
  g_tick_def.ml_meth = py_tick;
  PyObject* self = PyCapsule_New(this, "rotor.LoopDriver", nullptr);
  tick_fn_ = PyCFunction_New(&g_tick_def, self);
  Py_XDECREF(self);
  tick_kwargs_ = Py_BuildValue("{sO}", "context", context);
}

LoopDriver::~LoopDriver() {
  stop();
  Py_XDECREF(tick_fn_);
  Py_XDECREF(tick_kwargs_);
}

bool LoopDriver::start() {
  if (!tick_fn_ || !tick_kwargs_) return false;
  PyObject* r = PyObject_CallMethod(loop_, "add_reader", "iO", uv_backend_fd(uv_), tick_fn_);
  if (!r) return false;
  Py_DECREF(r);
  running_ = true;
  kick();
  return true;
}

void LoopDriver::stop() {
  if (!running_) return;
  running_ = false;
  PyObject* r = PyObject_CallMethod(loop_, "remove_reader", "i", uv_backend_fd(uv_));
  if (!r) PyErr_Clear();
  Py_XDECREF(r);
  if (timer_) {
    PyObject* c = PyObject_CallMethod(timer_, "cancel", nullptr);
    Py_XDECREF(c);
    PyErr_Clear();
    Py_CLEAR(timer_);
  }
}

void LoopDriver::kick() {
  if (kicked_ || !running_) return;
  kicked_ = true;
  PyObject* h = call("call_soon", nullptr);
  if (!h) {
    PyErr_Print();
    kicked_ = false;
    return;
  }
  Py_DECREF(h);
}

PyObject* LoopDriver::call(const char* method, PyObject* delay) {
  PyObject* fn = PyObject_GetAttrString(loop_, method);
  PyObject* args =
      fn ? (delay ? PyTuple_Pack(2, delay, tick_fn_) : PyTuple_Pack(1, tick_fn_)) : nullptr;
  PyObject* h = args ? PyObject_Call(fn, args, tick_kwargs_) : nullptr;
  Py_XDECREF(args);
  Py_XDECREF(fn);
  return h;
}

PyObject* LoopDriver::py_tick(PyObject* self, PyObject*) {
  auto* d = static_cast<LoopDriver*>(PyCapsule_GetPointer(self, "rotor.LoopDriver"));
  if (d) d->tick();
  Py_RETURN_NONE;
}

void LoopDriver::tick() {
  kicked_ = false;
  if (!running_) return;
  uv_run(uv_, UV_RUN_NOWAIT);
  // A timer that has fired (asyncio may fire it a little early) is spent: forget it, so the
  // next one is armed even for the same deadline.
  if (timer_ && uv_now(uv_) + 1 >= timer_deadline_) Py_CLEAR(timer_);
  if (running_) arm_timer();
}

void LoopDriver::arm_timer() {
  // uv_backend_timeout is 0 both for "work is pending" and "nothing is active": re-arming on
  // the latter would spin, so only a live loop gets a timer.
  if (!uv_loop_alive(uv_)) return;
  int timeout = uv_backend_timeout(uv_);
  if (timeout < 0) return;  // only I/O can wake it: the fd reader covers that
  uint64_t deadline = uv_now(uv_) + static_cast<uint64_t>(timeout);
  if (timer_ && deadline == timer_deadline_) return;  // already armed for that moment
  if (timer_) {
    PyObject* c = PyObject_CallMethod(timer_, "cancel", nullptr);
    Py_XDECREF(c);
    Py_CLEAR(timer_);
  }
  PyObject* delay = PyFloat_FromDouble(timeout / 1000.0);
  timer_ = delay ? call("call_later", delay) : nullptr;
  Py_XDECREF(delay);
  if (!timer_) {
    PyErr_Print();
    return;
  }
  timer_deadline_ = deadline;
}

}  // namespace rotor::asgi
