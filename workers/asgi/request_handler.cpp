#include "workers/asgi/request_handler.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>
#include <utility>

#include "log/log.hpp"
#include "workers/asgi/interpreter.hpp"
#include "workers/http/request.hpp"

namespace rotor::asgi {

bool header_views(PyObject* headers, http::HeaderList* out) {
  PyRef seq = PyRef::steal(PySequence_Fast(headers, "headers must be a sequence of [name, value]"));
  if (!seq) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
  out->reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* pair = PySequence_Fast_GET_ITEM(seq.get(), i);
    PyObject *k = nullptr, *v = nullptr;
    if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
      k = PyTuple_GET_ITEM(pair, 0);
      v = PyTuple_GET_ITEM(pair, 1);
    } else if (PyList_Check(pair) && PyList_GET_SIZE(pair) == 2) {
      k = PyList_GET_ITEM(pair, 0);
      v = PyList_GET_ITEM(pair, 1);
    }
    if (!k || !PyBytes_Check(k) || !PyBytes_Check(v)) {
      seq.reset();
      PyErr_SetString(PyExc_TypeError, "response headers must be [bytes, bytes] pairs");
      return false;
    }
    out->emplace_back(std::string_view(PyBytes_AS_STRING(k), PyBytes_GET_SIZE(k)),
                      std::string_view(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v)));
  }
  return true;  // the pairs' bytes live on in `headers`
}

void RequestHandler::on_request(http::Connection& conn, const http::Request& req) {
  if (conn.websocket_requested()) {
    start_websocket(conn, req);
    return;
  }
  uint64_t rid = next_rid_++;
  conn.rid = rid;
  PyRef scope = PyRef::steal(scope_.build(conn, req, py_.state.get()));
  PyRef ex = scope ? PyRef::steal(exchange_new(py_.loop.get(), rid)) : PyRef();
  // run() wraps the app for a task, and for a request timeout (its timer); an eager start
  // without either steps the app's own coroutine.
  PyRef coro = ex && (req.has_body || cfg_.timeout_request != 0)
                   ? run_coroutine(scope.get(), ex.get())
                   : PyRef();
  if (!ex || (!coro && PyErr_Occurred())) {
    log_python_error("request-failed");
    conn.fail_response(500);
    return;
  }
  PyObject* exchange = ex.get();  // the table holds it from here
  live_[rid] = Live{&conn, std::move(ex)};
  calls_.started();  // until run(), _carry() or the eager start says it returned
  // Without a body the request is complete now: start the app at once (its receive has the
  // whole, empty body). A body arrives after this call, so such requests get a task.
  if (!req.has_body) {
    on_body_end(conn);
    if (eager_.start(coro.get(), scope.get(), exchange)) return;
  }
  if (!coro) coro = run_coroutine(scope.get(), exchange);
  scope.reset();
  PyRef task = coro ? spawn(coro.get()) : PyRef();  // the loop keeps it
  coro.reset();
  if (!task) {
    forget(rid);
    log_python_error("request-failed");
    conn.fail_response(500);
    calls_.ended();  // never ran
  }
}

PyRef RequestHandler::run_coroutine(PyObject* scope, PyObject* ex) {
  return PyRef::steal(PyObject_CallFunctionObjArgs(py_.run.get(), py_.app.get(), scope, ex,
                                                   py_.timeout.get(), nullptr));
}

PyRef RequestHandler::spawn(PyObject* coro) {
  PyRef ctx = PyRef::steal(PyContext_Copy(py_.base_ctx.get()));
  if (!ctx || PyContext_Enter(ctx.get()) != 0) return PyRef();
  // The task copies `ctx`.
  PyRef task = PyRef::steal(PyObject_CallOneArg(py_.create_task.get(), coro));
  ErrorAside error;
  PyContext_Exit(ctx.get());
  return task;
}

void RequestHandler::on_body(http::Connection& conn, std::string_view data) {
  Live* l = find(conn.rid);
  if (!l) return;
  l->unread += data.size();
  if (l->unread >= kBodyHighWater) conn.pause_body();
  if (!exchange_feed(l->exchange.get(), data, true)) log_python_error("bridge-failed");
}

void RequestHandler::on_body_end(http::Connection& conn) {
  Live* l = find(conn.rid);
  if (l && !exchange_feed(l->exchange.get(), {}, false)) log_python_error("bridge-failed");
}

void RequestHandler::resume_body(uint64_t rid) {
  Live* l = find(rid);
  if (!l) return;
  l->unread = 0;
  l->conn->resume_body();
  kick();  // reading restarts in the loop
}

void RequestHandler::on_abort(http::Connection& conn) {
  if (Live* l = find(conn.rid); l && l->websocket) {
    websocket_gone(*l, 1006, "");
  } else if (l && !exchange_gone(l->exchange.get())) {
    log_python_error("bridge-failed");
  }
  forget(conn.rid);
}

void RequestHandler::on_peer_closed(http::Connection& conn) {
  if (Live* l = find(conn.rid); l && !exchange_gone(l->exchange.get())) {
    log_python_error("bridge-failed");
  }
}

// A half-closed client still gets its answer: receive says disconnect, send goes on writing.
void RequestHandler::on_peer_done(http::Connection& conn) {
  if (Live* l = find(conn.rid); l && !l->websocket && !exchange_peer_done(l->exchange.get())) {
    log_python_error("bridge-failed");
  }
}

void RequestHandler::on_drained(http::Connection& conn) {
  Live* l = find(conn.rid);
  if (l && l->websocket) {
    if (!call_ok(PyObject_CallMethod(l->exchange.get(), "wake", nullptr))) {
      log_python_error("bridge-failed");
    }
  } else if (l && !exchange_wake(l->exchange.get())) {
    log_python_error("bridge-failed");
  }
}

void RequestHandler::forget(uint64_t rid) {
  auto it = live_.find(rid);
  if (it == live_.end()) return;
  // Released once out of the table: what its release runs never finds the request.
  PyRef exchange = std::move(it->second.exchange);
  live_.erase(it);
}

SendOutcome RequestHandler::send_part(uint64_t rid, int status, PyObject* headers,
                                      std::string_view body, bool more) {
  Live* l = find(rid);
  if (!l) return SendOutcome::kGone;
  // Views into the app's bytes objects, valid for this call.
  http::HeaderList hv;
  if (headers && !header_views(headers, &hv)) return SendOutcome::kError;
  std::string error;
  http::Connection* conn = l->conn;
  auto res = conn->send_response(status, headers ? &hv : nullptr, body, more, &error);
  // Most answers go out whole through uv_try_write; only queued work needs the loop to run.
  if (driver_ && conn->loop_work_pending()) driver_->kick();
  switch (res) {
    case http::SendResult::kInvalid:
      spdlog::error("event=app-error error={}", log::quote(error));
      conn->fail_response(500);
      forget(rid);
      PyErr_SetString(PyExc_RuntimeError, error.c_str());
      return SendOutcome::kError;
    case http::SendResult::kGone:
      forget(rid);
      return SendOutcome::kGone;
    case http::SendResult::kPaused:
      return SendOutcome::kPaused;
    case http::SendResult::kOk:
      if (!more) {
        forget(rid);
        after_response();
      }
      return SendOutcome::kOk;
  }
  return SendOutcome::kOk;
}

// --gc-collect-every: a full collection once the response has gone out, from the loop (not
// inside the app's send). --leak-report's warm-up counts it.
void RequestHandler::after_response() {
  if (leak_) leak_->on_response(py_.loop.get());
  if (!py_.gc_collect || ++answered_ % cfg_.gc_collect_every != 0) return;
  if (!call_ok(PyObject_CallMethod(py_.loop.get(), "call_soon", "O", py_.gc_collect.get()))) {
    log_python_error("gc-collect-failed");
  }
}

// --- the _rotor module's functions ------------------------------------------------------------

PyObject* RequestHandler::py_send(PyObject* args) {
  unsigned long long rid;
  int status, more;
  PyObject* headers;
  Py_buffer body;
  if (!PyArg_ParseTuple(args, "KiOy*p", &rid, &status, &headers, &body, &more)) return nullptr;
  SendOutcome out = send_part(
      rid, status, headers == Py_None ? nullptr : headers,
      std::string_view(static_cast<const char*>(body.buf), static_cast<size_t>(body.len)), more);
  PyBuffer_Release(&body);
  switch (out) {
    case SendOutcome::kError:
      return nullptr;
    case SendOutcome::kGone:
      Py_RETURN_FALSE;
    case SendOutcome::kPaused:
      return Py_NewRef(py_.paused.get());
    case SendOutcome::kOk:
      break;
  }
  Py_RETURN_TRUE;
}

PyObject* RequestHandler::py_resume_body(PyObject* args) {
  unsigned long long rid;
  if (!PyArg_ParseTuple(args, "K", &rid)) return nullptr;
  resume_body(rid);
  Py_RETURN_NONE;
}

PyObject* RequestHandler::py_want_body(PyObject* args) {
  unsigned long long rid;
  if (!PyArg_ParseTuple(args, "K", &rid)) return nullptr;
  if (Live* l = find(rid)) {
    l->conn->continue_if_expected();
    kick();
  }
  Py_RETURN_NONE;
}

PyObject* RequestHandler::py_app_failed(PyObject* args) {
  unsigned long long rid;
  int started;
  const char *summary, *tb;
  int status = 500;
  if (!PyArg_ParseTuple(args, "Kpss|i", &rid, &started, &summary, &tb, &status)) return nullptr;
  Live* l = find(rid);
  spdlog::error("event=app-error error={} response_started={}", log::quote(summary),
                started ? "yes" : "no");
  if (*tb) std::fputs(tb, stderr);  // the traceback, as Python formats it
  if (l) {
    // Before the response started the client gets a 500; after, only a closed connection
    // tells it the response is incomplete.
    l->conn->fail_response(status);
    forget(rid);
    kick();
  }
  Py_RETURN_NONE;
}

PyObject* RequestHandler::py_client_left(PyObject* args) {
  unsigned long long rid;
  if (!PyArg_ParseTuple(args, "K", &rid)) return nullptr;
  // The app stopped because its send or receive said the client went away: no app error. A
  // request still held (the client only half-closed) is closed unanswered, as uvicorn does.
  spdlog::debug("event=client-gone detail=\"the app stopped: its client went away\"");
  if (Live* l = find(rid)) {
    l->conn->close_now();
    forget(rid);
    kick();
  }
  Py_RETURN_NONE;
}

PyObject* RequestHandler::py_call_ended(PyObject*) {
  calls_.ended();
  Py_RETURN_NONE;
}

}  // namespace rotor::asgi
