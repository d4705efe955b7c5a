// Runs the worker's libuv loop (the HTTP engine) inside the asyncio loop of the main thread:
// libuv's backend fd is an asyncio reader, and a timer follows uv_backend_timeout. No second
// thread and no GIL hand-off on the request path.
#pragma once

#include <uv.h>

#include <cstdint>

#include "workers/asgi/py_ref.hpp"

namespace rotor::asgi {

class LoopDriver {
 public:
  // `context`: the contextvars.Context every tick and timer runs in (see tick_kwargs_).
  LoopDriver(uv_loop_t* uv, PyObject* aio_loop, PyObject* context);
  ~LoopDriver();
  LoopDriver(const LoopDriver&) = delete;
  LoopDriver& operator=(const LoopDriver&) = delete;

  bool start();  // false with a Python error set
  void stop();
  // After libuv work done from Python (writes, closes): one de-duplicated tick soon, since
  // deferred libuv callbacks do not make the backend fd readable.
  void kick();

 private:
  static PyObject* py_tick(PyObject* self, PyObject* unused);
  void tick();
  void arm_timer();
  // loop.call_soon(tick) or loop.call_later(delay, tick), in the driver's context.
  PyRef call(const char* method, PyObject* delay);

  uv_loop_t* uv_;
  PyObject* loop_;  // the asyncio loop (borrowed for our lifetime)
  PyRef tick_fn_;   // a Python callable for tick()
  // {"context": ctx} for call_soon/call_later: without it a tick scheduled from inside a
  // request's send or receive would run in (and start new requests from) that request's context.
  PyRef tick_kwargs_;
  PyRef timer_;                  // asyncio.TimerHandle
  uint64_t timer_deadline_ = 0;  // uv_now() ms the timer fires at; 0 = none
  bool kicked_ = false;
  bool running_ = false;
};

}  // namespace rotor::asgi
