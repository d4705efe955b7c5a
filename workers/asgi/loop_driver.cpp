#include "workers/asgi/loop_driver.hpp"

namespace rotor::asgi {

namespace {
PyMethodDef g_tick_def = {"rotor_tick", nullptr, METH_NOARGS, nullptr};
}

LoopDriver::LoopDriver(uv_loop_t* uv, PyObject* aio_loop, PyObject* context)
    : uv_(uv), loop_(aio_loop) {
  g_tick_def.ml_meth = py_tick;
  PyRef self = PyRef::steal(PyCapsule_New(this, "rotor.LoopDriver", nullptr));
  tick_fn_ = PyRef::steal(PyCFunction_New(&g_tick_def, self.get()));
  self.reset();
  tick_kwargs_ = PyRef::steal(Py_BuildValue("{sO}", "context", context));
}

LoopDriver::~LoopDriver() {
  stop();
}

bool LoopDriver::start() {
  if (!tick_fn_ || !tick_kwargs_) return false;
  if (!call_ok(
          PyObject_CallMethod(loop_, "add_reader", "iO", uv_backend_fd(uv_), tick_fn_.get()))) {
    return false;
  }
  running_ = true;
  kick();
  return true;
}

void LoopDriver::stop() {
  if (!running_) return;
  running_ = false;
  if (!call_ok(PyObject_CallMethod(loop_, "remove_reader", "i", uv_backend_fd(uv_)))) {
    PyErr_Clear();
  }
  if (timer_) {
    (void)call_ok(PyObject_CallMethod(timer_.get(), "cancel", nullptr));
    PyErr_Clear();
    timer_.reset();
  }
}

void LoopDriver::kick() {
  if (kicked_ || !running_) return;
  kicked_ = true;
  if (!call("call_soon", nullptr)) {
    PyErr_Print();
    kicked_ = false;
  }
}

PyRef LoopDriver::call(const char* method, PyObject* delay) {
  PyRef fn = PyRef::steal(PyObject_GetAttrString(loop_, method));
  PyObject* tick = tick_fn_.get();
  PyRef args =
      PyRef::steal(fn ? (delay ? PyTuple_Pack(2, delay, tick) : PyTuple_Pack(1, tick)) : nullptr);
  return PyRef::steal(args ? PyObject_Call(fn.get(), args.get(), tick_kwargs_.get()) : nullptr);
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
  if (timer_ && uv_now(uv_) + 1 >= timer_deadline_) timer_.reset();
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
    (void)call_ok(PyObject_CallMethod(timer_.get(), "cancel", nullptr));
    timer_.reset();
  }
  PyRef delay = PyRef::steal(PyFloat_FromDouble(timeout / 1000.0));
  timer_ = delay ? call("call_later", delay.get()) : PyRef();
  delay.reset();
  if (!timer_) {
    PyErr_Print();
    return;
  }
  timer_deadline_ = deadline;
}

}  // namespace rotor::asgi
