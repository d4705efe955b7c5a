// One request's side of the ASGI bridge as a C type: the app's `receive` and `send` are its
// methods. The common case (the body is already here, an answer part is written at once)
// completes without a Python coroutine, future or task wake-up; only waiting goes through the
// bridge's Python helpers (workers/asgi/bridge.py).
#pragma once

#include <cstdint>
#include <string_view>

typedef struct _object PyObject;

namespace rotor::asgi {

enum class SendOutcome : uint8_t {
  kOk,
  kPaused,  // written, but the client reads slowly: wait for exchange_wake
  kGone,    // the client has gone: nothing written
  kError,   // a Python exception is set
};

// What an exchange asks of the engine, by request id (the request may be over by then).
class Engine {
 public:
  virtual ~Engine() = default;
  // `headers` is the app's header sequence for the first part, else nullptr.
  virtual SendOutcome send_part(uint64_t rid, int status, PyObject* headers, std::string_view body,
                                bool more) = 0;
  virtual void resume_body(uint64_t rid) = 0;  // the app took what was buffered
};

// Readies the types; `bridge` is the bridge module (its helpers are looked up once). False with
// a Python error set.
bool exchange_init(PyObject* bridge, Engine* engine);
// New reference, or nullptr with a Python error set.
PyObject* exchange_new(PyObject* loop, uint64_t rid);
// New references to the exchange's bound `receive` and `send`; false with a Python error set.
bool exchange_callables(PyObject* ex, PyObject** receive, PyObject** send);
// Whether the app has sent the whole response (nothing left for bridge.returned to do).
bool exchange_answered(PyObject* ex);
// The engine's events; false with a Python error set. `data` is copied.
bool exchange_feed(PyObject* ex, std::string_view data, bool more);
bool exchange_gone(PyObject* ex);  // wakes every waiter
// The client half-closed after its complete request: receive says disconnect (waiting
// receives are woken), send still works.
bool exchange_peer_done(PyObject* ex);
bool exchange_wake(PyObject* ex);  // the client read what was sent: wakes paused sends

}  // namespace rotor::asgi
