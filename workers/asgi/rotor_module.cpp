#include "workers/asgi/rotor_module.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "log/log.hpp"
#include "workers/asgi/py_ref.hpp"
#include "workers/asgi/request_handler.hpp"

namespace rotor::asgi {

namespace {

RequestHandler*& handler_of(PyObject* module) {
  return *static_cast<RequestHandler**>(PyModule_GetState(module));
}

// A module function that is `method` of the module's handler.
template <PyObject* (RequestHandler::*method)(PyObject*)>
PyObject* bound(PyObject* module, PyObject* args) {
  return (handler_of(module)->*method)(args);
}

PyObject* log_record(PyObject*, PyObject* args) {
  int levelno;
  const char *name, *message, *tb;
  if (!PyArg_ParseTuple(args, "isss", &levelno, &name, &message, &tb)) return nullptr;
  auto level = levelno >= 50   ? spdlog::level::critical
               : levelno >= 40 ? spdlog::level::err
               : levelno >= 30 ? spdlog::level::warn
               : levelno >= 20 ? spdlog::level::info
                               : spdlog::level::debug;
  if (!spdlog::should_log(level)) Py_RETURN_NONE;
  spdlog::log(level, "event=app-log logger={} message={}", log::quote(name), log::quote(message));
  if (*tb) std::fputs(tb, stderr);
  Py_RETURN_NONE;
}

PyObject* app_error(PyObject*, PyObject* args) {
  const char *summary, *tb;
  if (!PyArg_ParseTuple(args, "ss", &summary, &tb)) return nullptr;
  spdlog::error("event=app-error error={}", log::quote(summary));
  if (*tb) std::fputs(tb, stderr);
  Py_RETURN_NONE;
}

PyMethodDef g_methods[] = {
    {"send", bound<&RequestHandler::py_send>, METH_VARARGS,
     "send(rid, status, headers, body, more)"},
    {"app_failed", bound<&RequestHandler::py_app_failed>, METH_VARARGS,
     "app_failed(rid, started, summary, tb)"},
    {"resume_body", bound<&RequestHandler::py_resume_body>, METH_VARARGS,
     "resume_body(rid): the app took the body"},
    {"want_body", bound<&RequestHandler::py_want_body>, METH_VARARGS,
     "want_body(rid): the app waits for body"},
    {"app_error", app_error, METH_VARARGS, "app_error(summary, tb): log an app's failure"},
    {"ws_accept", bound<&RequestHandler::py_ws_accept>, METH_VARARGS,
     "ws_accept(rid, subprotocol, headers)"},
    {"ws_send", bound<&RequestHandler::py_ws_send>, METH_VARARGS,
     "ws_send(rid, text, data): True, False or PAUSED"},
    {"ws_close", bound<&RequestHandler::py_ws_close>, METH_VARARGS, "ws_close(rid, code, reason)"},
    {"ws_deny", bound<&RequestHandler::py_ws_deny>, METH_VARARGS,
     "ws_deny(rid, status): refuse the handshake"},
    {"ws_took", bound<&RequestHandler::py_ws_took>, METH_VARARGS,
     "ws_took(rid, nbytes): the app took a message"},
    {"log", log_record, METH_VARARGS, "log(levelno, logger, message, tb): a Python log record"},
    {"call_ended", bound<&RequestHandler::py_call_ended>, METH_NOARGS,
     "call_ended(): an app call has returned"},
    {"client_left", bound<&RequestHandler::py_client_left>, METH_VARARGS,
     "client_left(rid): the app gave up on a request whose client has gone"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef g_module = {PyModuleDef_HEAD_INIT,
                        "_rotor",
                        "rotor's engine, for the ASGI bridge",
                        sizeof(RequestHandler*),  // the state: the handler
                        g_methods,
                        nullptr,
                        nullptr,
                        nullptr,
                        nullptr};

}  // namespace

bool install_rotor_module(RequestHandler* handler, PyObject* paused) {
  PyRef module = PyRef::steal(PyModule_Create(&g_module));
  if (!module) return false;
  handler_of(module.get()) = handler;
  PyModule_AddObjectRef(module.get(), "PAUSED", paused);
  PyObject* modules = PyImport_GetModuleDict();  // borrowed
  PyDict_SetItemString(modules, "_rotor", module.get());
  return true;
}

}  // namespace rotor::asgi
