// Runs the worker's libuv loop (the HTTP engine) inside the asyncio loop of the main thread:
// libuv's backend fd is an asyncio reader, and a timer follows uv_backend_timeout. No second
// thread and no GIL hand-off on the request path.
#pragma once

#include <uv.h>

#include <cstdint>

typedef struct _object PyObject;

namespace rotor::asgi {

class LoopDriver {
 public:
  LoopDriver(uv_loop_t* uv, PyObject* aio_loop);
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

  uv_loop_t* uv_;
  PyObject* loop_;               // the asyncio loop (borrowed for our lifetime)
  PyObject* tick_fn_;            // a Python callable for tick()
  PyObject* timer_ = nullptr;    // asyncio.TimerHandle
  uint64_t timer_deadline_ = 0;  // uv_now() ms the timer fires at; 0 = none
  bool kicked_ = false;
  bool running_ = false;
};

}  // namespace rotor::asgi
