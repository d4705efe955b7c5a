// RequestHandler's WebSocket sessions: the engine does the handshake, the framing and the
// closing handshake; the app's half of a session is a bridge.WebSocket, into which messages
// and the session's end are pushed, and whose receive and send are the app's.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "log/log.hpp"
#include "workers/asgi/interpreter.hpp"
#include "workers/asgi/request_handler.hpp"
#include "workers/http/request.hpp"
#include "workers/websocket/frame.hpp"

namespace rotor::asgi {

namespace {

// What a queued WebSocket message costs beyond its payload (the message dict in the inbox):
// counted too, so that a flood of empty messages pauses reading like a large one.
constexpr size_t kMessageOverhead = 256;

}  // namespace

void RequestHandler::start_websocket(http::Connection& conn, const http::Request& req) {
  uint64_t rid = next_rid_++;
  conn.rid = rid;
  PyRef scope = PyRef::steal(scope_.build_websocket(conn, req, py_.state.get()));
  PyRef session =
      scope ? PyRef::steal(PyObject_CallFunction(py_.websocket.get(), "OK", py_.loop.get(), rid))
            : PyRef();
  PyRef coro =
      session ? PyRef::steal(PyObject_CallFunctionObjArgs(py_.run_websocket.get(), py_.app.get(),
                                                          scope.get(), session.get(), nullptr))
              : PyRef();
  PyRef task = coro ? spawn(coro.get()) : PyRef();  // the loop keeps it
  // Released before a failure is logged: a coroutine never awaited warns as it goes.
  coro.reset();
  scope.reset();
  if (!task) {
    session.reset();
    log_python_error("request-failed");
    conn.fail_response(500);
    return;
  }
  live_[rid] = Live{&conn, std::move(session), 0, true};
  calls_.started();  // run_websocket says when it returned
}

void RequestHandler::on_ws_message(http::Connection& conn, bool text, std::string_view data) {
  Live* l = find(conn.rid);
  if (!l) return;
  auto n = static_cast<Py_ssize_t>(data.size());
  size_t cost = data.size() + kMessageOverhead;
  PyRef payload = PyRef::steal(text ? PyUnicode_DecodeUTF8(data.data(), n, "strict")
                                    : PyBytes_FromStringAndSize(data.data(), n));
  if (!payload ||
      !call_ok(PyObject_CallMethod(l->exchange.get(), "push", "OOn", text ? Py_True : Py_False,
                                   payload.get(), static_cast<Py_ssize_t>(cost)))) {
    log_python_error("bridge-failed");
  }
  // Reading stops while the app leaves this much unreceived (ws_took resumes it).
  l->unread += cost;
  if (l->unread >= kBodyHighWater) conn.pause_websocket();
}

void RequestHandler::on_ws_closed(http::Connection& conn, uint16_t code, std::string_view reason) {
  if (Live* l = find(conn.rid)) websocket_gone(*l, code, reason);
  forget(conn.rid);
}

void RequestHandler::websocket_gone(Live& l, uint16_t code, std::string_view reason) {
  PyRef why = PyRef::steal(
      PyUnicode_DecodeUTF8(reason.data(), static_cast<Py_ssize_t>(reason.size()), "replace"));
  if (!why || !call_ok(PyObject_CallMethod(l.exchange.get(), "gone", "iO", static_cast<int>(code),
                                           why.get()))) {
    log_python_error("bridge-failed");
  }
}

// --- the _rotor module's functions ------------------------------------------------------------

PyObject* RequestHandler::py_ws_accept(PyObject* args) {
  unsigned long long rid;
  PyObject* subprotocol;
  PyObject* headers;
  if (!PyArg_ParseTuple(args, "KOO", &rid, &subprotocol, &headers)) return nullptr;
  Live* l = find(rid);
  if (!l) Py_RETURN_FALSE;
  std::string_view proto;
  if (subprotocol != Py_None) {
    Py_ssize_t n = 0;
    const char* p =
        PyUnicode_Check(subprotocol) ? PyUnicode_AsUTF8AndSize(subprotocol, &n) : nullptr;
    if (!p) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "subprotocol must be a str");
      return nullptr;
    }
    proto = std::string_view(p, static_cast<size_t>(n));
  }
  http::HeaderList hv;
  if (headers != Py_None && !header_views(headers, &hv)) return nullptr;
  std::string error;
  http::Connection* conn = l->conn;
  auto res = conn->accept_websocket(proto, headers != Py_None ? &hv : nullptr, &error);
  kick();
  if (res == http::SendResult::kInvalid) {
    spdlog::error("event=app-error error={}", log::quote(error));
    conn->fail_response(500);
    forget(rid);
    PyErr_SetString(PyExc_RuntimeError, error.c_str());
    return nullptr;
  }
  if (res == http::SendResult::kGone) Py_RETURN_FALSE;
  Py_RETURN_TRUE;
}

PyObject* RequestHandler::py_ws_send(PyObject* args) {
  unsigned long long rid;
  int text;
  Py_buffer data;
  if (!PyArg_ParseTuple(args, "Kpy*", &rid, &text, &data)) return nullptr;
  Live* l = find(rid);
  auto res = l ? l->conn->send_websocket(text, std::string_view(static_cast<const char*>(data.buf),
                                                                static_cast<size_t>(data.len)))
               : http::SendResult::kGone;
  PyBuffer_Release(&data);
  if (l && driver_ && l->conn->loop_work_pending()) driver_->kick();
  if (res == http::SendResult::kGone) Py_RETURN_FALSE;
  if (res == http::SendResult::kPaused) return Py_NewRef(py_.paused.get());
  Py_RETURN_TRUE;
}

PyObject* RequestHandler::py_ws_close(PyObject* args) {
  unsigned long long rid;
  int code;
  const char* reason;
  Py_ssize_t reason_len;
  if (!PyArg_ParseTuple(args, "Kis#", &rid, &code, &reason, &reason_len)) return nullptr;
  if (code < 0 || code > 65535 || !ws::valid_close_code(static_cast<uint16_t>(code))) {
    PyErr_Format(PyExc_ValueError, "invalid WebSocket close code %d", code);
    return nullptr;
  }
  if (Live* l = find(rid)) {
    l->conn->close_websocket(static_cast<uint16_t>(code),
                             std::string_view(reason, static_cast<size_t>(reason_len)));
    kick();
  }
  Py_RETURN_NONE;
}

PyObject* RequestHandler::py_ws_deny(PyObject* args) {
  unsigned long long rid;
  int status;
  if (!PyArg_ParseTuple(args, "Ki", &rid, &status)) return nullptr;
  if (Live* l = find(rid)) {
    l->conn->fail_response(status);
    forget(rid);
    kick();
  }
  Py_RETURN_NONE;
}

PyObject* RequestHandler::py_ws_took(PyObject* args) {
  unsigned long long rid;
  Py_ssize_t n;
  if (!PyArg_ParseTuple(args, "Kn", &rid, &n)) return nullptr;
  if (Live* l = find(rid)) {
    l->unread -= std::min(l->unread, static_cast<size_t>(n));
    if (l->unread < kBodyHighWater / 2) {
      l->conn->resume_websocket();
      kick();  // reading restarts in the loop
    }
  }
  Py_RETURN_NONE;
}

}  // namespace rotor::asgi
