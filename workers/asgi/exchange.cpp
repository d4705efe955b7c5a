#include "workers/asgi/exchange.hpp"

#include "workers/asgi/py_ref.hpp"

#include <structmember.h>

#include <cstring>

namespace rotor::asgi {

namespace {

// ---- Ready: an awaitable that is already complete -------------------------------------------
// `await ready` returns its value without suspending. It also has send/throw/close, so that
// create_task(send(...)) accepts it as it would a coroutine.
struct Ready {
  PyObject_HEAD PyObject* value;  // never null
};

PyObject* ready_next(PyObject* self) {
  PyObject* v = reinterpret_cast<Ready*>(self)->value;
  // Returning null with no exception set is a StopIteration(None), the cheapest way out.
  if (v != Py_None) PyErr_SetObject(PyExc_StopIteration, v);
  return nullptr;
}

PyObject* ready_send(PyObject* self, PyObject*) {
  return ready_next(self);
}

PyObject* ready_throw(PyObject*, PyObject* const* args, Py_ssize_t n) {
  // Never suspended: what is thrown in comes straight out.
  if (n < 1) {
    PyErr_SetString(PyExc_TypeError, "throw expected at least 1 argument");
    return nullptr;
  }
  PyObject* typ = args[0];
  PyObject* val = n > 1 ? args[1] : Py_None;
  if (PyExceptionInstance_Check(typ)) {
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(typ)), typ);
  } else if (PyExceptionClass_Check(typ)) {
    PyErr_SetObject(typ, val);
  } else {
    PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
  }
  return nullptr;
}

PyObject* ready_close(PyObject*, PyObject*) {
  Py_RETURN_NONE;
}

PyObject* ready_await(PyObject* self) {
  return Py_NewRef(self);
}

void ready_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  Py_DECREF(reinterpret_cast<Ready*>(self)->value);
  PyObject_Free(self);
  Py_DECREF(type);  // a heap type: each instance holds it
}

PyMethodDef g_ready_methods[] = {
    {"send", ready_send, METH_O, nullptr},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ready_throw)),
     METH_FASTCALL, nullptr},
    {"close", ready_close, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject* g_ready_type = nullptr;

PyObject* g_done = nullptr;  // Ready(None): what a send that needed no waiting returns

PyObject* ready_new(PyObject* value) {  // steals `value`
  if (!value) return nullptr;
  Ready* r = PyObject_New(Ready, g_ready_type);
  if (!r) {
    Py_DECREF(value);
    return nullptr;
  }
  r->value = value;
  return reinterpret_cast<PyObject*>(r);
}

// ---- Exchange ---------------------------------------------------------------------------------
struct Exchange {
  PyObject_HEAD uint64_t rid;
  PyObject* loop;
  // list: body not yet received (bytes; small pieces merged into a trailing bytearray), null
  // once the app has had it all.
  PyObject* chunks;
  // Futures of the app's tasks waiting in receive (for body or the end) and in send (for the
  // client to read), each list made on first wait. Apart: a paused send and a receive waiting
  // at the same time (Starlette's disconnect listener) must not take each other's wake-up.
  PyObject* receivers;
  PyObject* senders;
  PyObject* headers;  // http.response.start's headers until they are written
  int status;
  char more;       // more request body to come
  char done;       // response finished or client gone: receive says disconnect
  char peer_done;  // the client half-closed: receive says disconnect, send still writes
  char started;    // http.response.start seen
  char finished;   // final body part sent
  char timed_out;  // set by the bridge's request timeout
};

Engine* g_engine = nullptr;
PyObject* g_receive_slow = nullptr;  // bridge._receive_slow(ex): a receive that has to wait
PyObject* g_wait = nullptr;          // bridge._wait(loop, waiters): until released
PyObject* g_disconnected = nullptr;  // bridge.ClientDisconnected
PyObject *k_type, *k_body, *k_more_body, *k_status, *k_headers, *v_request, *v_disconnect, *v_start,
    *v_body, *k_done, *k_set_result, *g_empty_tuple, *g_empty_bytes;

int ex_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* ex = reinterpret_cast<Exchange*>(self);
  Py_VISIT(ex->loop);
  Py_VISIT(ex->chunks);
  Py_VISIT(ex->receivers);
  Py_VISIT(ex->senders);
  Py_VISIT(ex->headers);
  return 0;
}

int ex_clear(PyObject* self) {
  auto* ex = reinterpret_cast<Exchange*>(self);
  Py_CLEAR(ex->loop);
  Py_CLEAR(ex->chunks);
  Py_CLEAR(ex->receivers);
  Py_CLEAR(ex->senders);
  Py_CLEAR(ex->headers);
  return 0;
}

void ex_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  ex_clear(self);
  PyObject_GC_Del(self);
  Py_DECREF(type);
}

// A message dict {"type": kind, ...}; new reference.
PyObject* message(PyObject* kind) {
  PyObject* m = PyDict_New();
  if (m && PyDict_SetItem(m, k_type, kind) != 0) Py_CLEAR(m);
  return m;
}

// The next message receive() has for the app now (new reference), or None when it has to wait.
PyObject* take(Exchange* ex) {
  // Once the response is complete, what the app left unread is of no use to it: disconnect
  // (as uvicorn), not the rest of the body.
  if (ex->finished) {
    Py_CLEAR(ex->chunks);
    return message(v_disconnect);
  }
  if (ex->chunks) {  // the body is not all handed over yet
    Py_ssize_t n = PyList_GET_SIZE(ex->chunks);
    if (n || !ex->more) {
      PyRef body;
      if (n == 0) {
        body = PyRef::borrow(g_empty_bytes);
      } else if (n == 1) {
        PyObject* only = PyList_GET_ITEM(ex->chunks, 0);
        body =
            PyBytes_CheckExact(only) ? PyRef::borrow(only) : PyRef::steal(PyBytes_FromObject(only));
      } else {
        body = PyRef::steal(_PyBytes_Join(g_empty_bytes, ex->chunks));
      }
      PyRef m = body ? PyRef::steal(message(v_request)) : PyRef();
      if (!m || PyDict_SetItem(m.get(), k_body, body.get()) != 0 ||
          PyDict_SetItem(m.get(), k_more_body, ex->more ? Py_True : Py_False) != 0) {
        return nullptr;
      }
      body.reset();
      if (ex->more) {
        PyObject* fresh = PyList_New(0);
        if (!fresh) return nullptr;
        Py_SETREF(ex->chunks, fresh);
        g_engine->resume_body(ex->rid);  // the engine pauses reading at its high water
      } else {
        Py_CLEAR(ex->chunks);
      }
      return m.release();
    }
    if (!ex->done) Py_RETURN_NONE;
    Py_CLEAR(ex->chunks);  // the client left in the middle of the body
  }
  // After the body: disconnect once the response is done or the client has gone (or closed
  // its side).
  if (ex->done || ex->peer_done) return message(v_disconnect);
  Py_RETURN_NONE;
}

PyObject* ex_take(PyObject* self, PyObject*) {
  return take(reinterpret_cast<Exchange*>(self));
}

PyObject* ex_receive(PyObject* self, PyObject*) {
  PyRef m = PyRef::steal(take(reinterpret_cast<Exchange*>(self)));
  if (m.get() != Py_None) return ready_new(m.release());
  m.reset();
  auto* ex = reinterpret_cast<Exchange*>(self);
  if (!ex->receivers && !(ex->receivers = PyList_New(0))) return nullptr;
  return PyObject_CallOneArg(g_receive_slow, self);
}

// message[key], or `fallback` (when not null) if it is missing; new reference.
PyObject* item(PyObject* msg, PyObject* key, PyObject* fallback) {
  if (PyDict_CheckExact(msg)) {
    PyObject* v = PyDict_GetItemWithError(msg, key);
    if (v) return Py_NewRef(v);
    if (PyErr_Occurred()) return nullptr;
  } else {
    PyObject* v = PyObject_GetItem(msg, key);
    if (v || !PyErr_ExceptionMatches(PyExc_KeyError)) return v;
    if (fallback) PyErr_Clear();
  }
  if (fallback) return Py_NewRef(fallback);
  if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key);
  return nullptr;
}

bool is_kind(PyObject* kind, PyObject* name) {
  if (kind == name) return true;
  // The app's "http.response.body" is a constant of its code, not our interned string: compare
  // the text directly (PyUnicode_Compare costs about a hundred instructions per call).
  if (!PyUnicode_CheckExact(kind) || !PyUnicode_IS_READY(kind)) {
    return PyUnicode_Check(kind) && PyUnicode_Compare(kind, name) == 0;
  }
  Py_ssize_t n = PyUnicode_GET_LENGTH(kind);
  return n == PyUnicode_GET_LENGTH(name) && PyUnicode_KIND(kind) == PyUnicode_KIND(name) &&
         std::memcmp(PyUnicode_DATA(kind), PyUnicode_DATA(name),
                     static_cast<size_t>(n) * PyUnicode_KIND(kind)) == 0;
}

// Wakes every future in `waiters` (a list, or null) and empties it. False with a Python error.
bool release(PyObject* waiters) {
  if (!waiters || PyList_GET_SIZE(waiters) == 0) return true;
  // Taken out first: the list is the bridge's too, and set_result must not see it change.
  PyRef taken = PyRef::steal(PyList_GetSlice(waiters, 0, PyList_GET_SIZE(waiters)));
  if (!taken || PyList_SetSlice(waiters, 0, PyList_GET_SIZE(waiters), nullptr) != 0) {
    return false;
  }
  bool ok = true;
  for (Py_ssize_t i = 0; ok && i < PyList_GET_SIZE(taken.get()); ++i) {
    PyObject* w = PyList_GET_ITEM(taken.get(), i);
    PyRef is_done = PyRef::steal(PyObject_CallMethodNoArgs(w, k_done));
    int d = is_done ? PyObject_IsTrue(is_done.get()) : -1;
    is_done.reset();
    ok = d > 0 || (d == 0 && call_ok(PyObject_CallMethodOneArg(w, k_set_result, Py_None)));
  }
  return ok;
}

// Below this a body piece is merged into the list's trailing bytearray (grown in amortized
// steps) instead of becoming an object of its own: a client sending 2-byte chunks would
// otherwise queue ~60 bytes of Python object per body byte, far past what the engine's pause
// mark (which counts body bytes) means to allow.
constexpr size_t kMergeBelow = 4096;

bool queue_body(PyObject* chunks, std::string_view data) {
  auto n = static_cast<Py_ssize_t>(data.size());
  Py_ssize_t count = PyList_GET_SIZE(chunks);
  if (data.size() < kMergeBelow && count > 0) {
    PyObject* tail = PyList_GET_ITEM(chunks, count - 1);
    if (PyByteArray_CheckExact(tail)) {
      Py_ssize_t old = PyByteArray_GET_SIZE(tail);
      if (PyByteArray_Resize(tail, old + n) != 0) return false;
      std::memcpy(PyByteArray_AS_STRING(tail) + old, data.data(), data.size());
      return true;
    }
  }
  PyRef piece =
      PyRef::steal(data.size() < kMergeBelow ? PyByteArray_FromStringAndSize(data.data(), n)
                                             : PyBytes_FromStringAndSize(data.data(), n));
  return piece && PyList_Append(chunks, piece.get()) == 0;
}

PyObject* disconnected(Exchange* ex) {
  ex->done = 1;
  PyErr_SetString(g_disconnected, "client disconnected");
  return nullptr;
}

PyObject* send_start(Exchange* ex, PyObject* msg) {
  if (ex->started) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.start sent twice");
    return nullptr;
  }
  PyRef status = PyRef::steal(item(msg, k_status, nullptr));
  if (!status) return nullptr;
  // Only made an int here; the engine judges the value when it writes the head.
  bool is_int = PyLong_Check(status.get());
  int code = is_int ? rotor_long_as_int(status.get()) : -1;
  status.reset();
  if (!is_int) {
    PyErr_SetString(PyExc_TypeError, "http.response.start status must be an int");
    return nullptr;
  }
  if (code == -1 && PyErr_Occurred()) return nullptr;
  PyObject* headers = item(msg, k_headers, g_empty_tuple);
  if (!headers) return nullptr;
  ex->started = 1;
  ex->status = code;
  Py_XSETREF(ex->headers, headers);
  return Py_NewRef(g_done);
}

PyObject* send_body(Exchange* ex, PyObject* msg) {
  if (!ex->started) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.body before http.response.start");
    return nullptr;
  }
  if (ex->finished) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.body after the response finished");
    return nullptr;
  }
  PyRef more_obj = PyRef::steal(item(msg, k_more_body, Py_False));
  int more = more_obj ? PyObject_IsTrue(more_obj.get()) : -1;
  more_obj.reset();
  if (more < 0) return nullptr;
  PyRef body = PyRef::steal(item(msg, k_body, g_empty_bytes));
  if (!body) return nullptr;
  Py_buffer view;
  int got = PyObject_GetBuffer(body.get(), &view, PyBUF_SIMPLE);
  body.reset();  // the view holds the buffer
  if (got != 0) return nullptr;
  PyRef headers = PyRef::steal(ex->headers);  // written with this part, then forgotten
  ex->headers = nullptr;
  SendOutcome out = g_engine->send_part(
      ex->rid, ex->status, headers.get(),
      std::string_view(static_cast<const char*>(view.buf), static_cast<size_t>(view.len)),
      more != 0);
  PyBuffer_Release(&view);
  headers.reset();
  switch (out) {
    case SendOutcome::kError:
      return nullptr;
    case SendOutcome::kGone:
      return disconnected(ex);
    case SendOutcome::kPaused:
      if (more) {
        if (!ex->senders && !(ex->senders = PyList_New(0))) return nullptr;
        return PyObject_CallFunctionObjArgs(g_wait, ex->loop, ex->senders, nullptr);
      }
      break;
    case SendOutcome::kOk:
      break;
  }
  if (!more) {
    ex->finished = 1;
    ex->done = 1;
    if (!release(ex->receivers)) return nullptr;  // a waiting receive now gets disconnect
  }
  return Py_NewRef(g_done);
}

PyObject* ex_send(PyObject* self, PyObject* msg) {
  auto* ex = reinterpret_cast<Exchange*>(self);
  PyRef kind = PyRef::steal(item(msg, k_type, nullptr));
  if (!kind) return nullptr;
  if (ex->done && !ex->finished) return disconnected(ex);
  if (is_kind(kind.get(), v_start)) return send_start(ex, msg);
  if (is_kind(kind.get(), v_body)) return send_body(ex, msg);
  return PyErr_Format(PyExc_RuntimeError, "unexpected ASGI message type %R", kind.get());
}

PyMethodDef g_ex_methods[] = {
    {"receive", ex_receive, METH_NOARGS, "ASGI receive(): an awaitable of the next message"},
    {"send", ex_send, METH_O, "ASGI send(message): an awaitable"},
    {"_take", ex_take, METH_NOARGS, "the message receive() has now, or None"},
    {nullptr, nullptr, 0, nullptr}};

PyMemberDef g_ex_members[] = {
    {"rid", T_ULONGLONG, offsetof(Exchange, rid), READONLY, nullptr},
    {"loop", T_OBJECT, offsetof(Exchange, loop), READONLY, nullptr},
    {"chunks", T_OBJECT, offsetof(Exchange, chunks), READONLY, nullptr},
    {"receivers", T_OBJECT, offsetof(Exchange, receivers), READONLY, nullptr},
    {"headers", T_OBJECT, offsetof(Exchange, headers), READONLY, nullptr},
    {"status", T_INT, offsetof(Exchange, status), READONLY, nullptr},
    {"more", T_BOOL, offsetof(Exchange, more), READONLY, nullptr},
    {"done", T_BOOL, offsetof(Exchange, done), READONLY, nullptr},
    {"started", T_BOOL, offsetof(Exchange, started), READONLY, nullptr},
    {"finished", T_BOOL, offsetof(Exchange, finished), READONLY, nullptr},
    {"timed_out", T_BOOL, offsetof(Exchange, timed_out), 0, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

PyTypeObject* g_ex_type = nullptr;

PyType_Slot g_ready_slots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(ready_dealloc)},
                               {Py_am_await, reinterpret_cast<void*>(ready_await)},
                               {Py_tp_iter, reinterpret_cast<void*>(PyObject_SelfIter)},
                               {Py_tp_iternext, reinterpret_cast<void*>(ready_next)},
                               {Py_tp_methods, g_ready_methods},
                               {0, nullptr}};
PyType_Spec g_ready_spec = {"rotor.Ready", sizeof(Ready), 0, Py_TPFLAGS_DEFAULT, g_ready_slots};

PyType_Slot g_ex_slots[] = {{Py_tp_dealloc, reinterpret_cast<void*>(ex_dealloc)},
                            {Py_tp_traverse, reinterpret_cast<void*>(ex_traverse)},
                            {Py_tp_clear, reinterpret_cast<void*>(ex_clear)},
                            {Py_tp_methods, g_ex_methods},
                            {Py_tp_members, g_ex_members},
                            {0, nullptr}};
PyType_Spec g_ex_spec = {"rotor.Exchange", sizeof(Exchange), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, g_ex_slots};

PyObject* intern(const char* s) {
  return PyUnicode_InternFromString(s);
}

}  // namespace

bool exchange_init(PyObject* bridge, Engine* engine) {
  g_engine = engine;
  if (g_done) return true;  // a template's workers inherit what it readied
  g_ready_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&g_ready_spec));
  g_ex_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&g_ex_spec));
  if (!g_ready_type || !g_ex_type) return false;
  k_type = intern("type");
  k_body = intern("body");
  k_more_body = intern("more_body");
  k_status = intern("status");
  k_headers = intern("headers");
  k_done = intern("done");
  k_set_result = intern("set_result");
  v_request = intern("http.request");
  v_disconnect = intern("http.disconnect");
  v_start = intern("http.response.start");
  v_body = intern("http.response.body");
  g_empty_tuple = PyTuple_New(0);
  g_empty_bytes = PyBytes_FromStringAndSize(nullptr, 0);
  g_receive_slow = PyObject_GetAttrString(bridge, "_receive_slow");
  g_wait = PyObject_GetAttrString(bridge, "_wait");
  g_disconnected = PyObject_GetAttrString(bridge, "ClientDisconnected");
  g_done = ready_new(Py_NewRef(Py_None));
  return g_receive_slow && g_wait && g_disconnected && g_done && g_empty_tuple && g_empty_bytes;
}

PyObject* exchange_new(PyObject* loop, uint64_t rid) {
  Exchange* ex = PyObject_GC_New(Exchange, g_ex_type);
  if (!ex) return nullptr;
  ex->rid = rid;
  ex->loop = Py_NewRef(loop);
  ex->chunks = PyList_New(0);
  ex->receivers = ex->senders = nullptr;
  ex->headers = nullptr;
  ex->status = 0;
  ex->more = 1;
  ex->done = ex->peer_done = ex->started = ex->finished = ex->timed_out = 0;
  PyObject_GC_Track(ex);
  if (!ex->chunks) Py_CLEAR(ex);
  return reinterpret_cast<PyObject*>(ex);
}

bool exchange_callables(PyObject* ex, PyObject** receive, PyObject** send) {
  // What getattr(ex, "receive") makes, without the attribute lookup.
  *receive = PyCFunction_NewEx(&g_ex_methods[0], ex, nullptr);
  *send = *receive ? PyCFunction_NewEx(&g_ex_methods[1], ex, nullptr) : nullptr;
  if (*send) return true;
  Py_CLEAR(*receive);
  return false;
}

bool exchange_answered(PyObject* self) {
  auto* ex = reinterpret_cast<Exchange*>(self);
  return ex->started && ex->finished;
}

bool exchange_feed(PyObject* self, std::string_view data, bool more) {
  auto* ex = reinterpret_cast<Exchange*>(self);
  if (!data.empty() && ex->chunks && !queue_body(ex->chunks, data)) return false;
  ex->more = more;
  return release(ex->receivers);
}

bool exchange_gone(PyObject* self) {
  auto* ex = reinterpret_cast<Exchange*>(self);
  ex->done = 1;
  // Every waiter: the receiver gets disconnect, a paused sender ClientDisconnected next.
  bool received = release(ex->receivers);
  return release(ex->senders) && received;
}

bool exchange_peer_done(PyObject* self) {
  auto* ex = reinterpret_cast<Exchange*>(self);
  ex->peer_done = 1;
  return release(ex->receivers);  // a waiting receive now gets disconnect
}

bool exchange_wake(PyObject* self) {
  return release(reinterpret_cast<Exchange*>(self)->senders);
}

}  // namespace rotor::asgi
