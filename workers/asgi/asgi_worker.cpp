#include "workers/asgi/asgi_worker.hpp"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "conf/python_executable.hpp"
#include "log/log.hpp"
#include "supervisor/scoreboard.hpp"
#include "workers/asgi/exchange.hpp"
#include "workers/asgi/interpreter.hpp"
#include "workers/asgi/loop_driver.hpp"
#include "workers/asgi/python_exit.hpp"
#include "workers/asgi/scope.hpp"
#include "workers/http/connection.hpp"
#include "workers/http/request.hpp"
#include "workers/websocket/frame.hpp"

namespace rotor::asgi {

extern const char* const kBridgeSource;  // workers/asgi/bridge.py, compiled in

namespace {

class AsgiWorker;
AsgiWorker* g_worker = nullptr;  // the _rotor module's functions reach the worker through it

class AsgiWorker : public worker::WorkerClass, public http::Handler, public Engine {
 public:
  explicit AsgiWorker(const conf::Config& cfg) : cfg_(cfg) { g_worker = this; }

  bool preloads() const override { return true; }
  int preload() override;
  void before_fork() override;
  void after_fork(bool child) override;
  int boot(uv_loop_t* loop) override;
  http::Handler& handler() override { return *this; }
  void run(uv_loop_t* loop) override;
  void stop() override;
  void stop_when_idle() override;
  void finish(int64_t deadline_ns) override;
  void shut_lifespan(int64_t deadline_ns);
  void end_tasks(int64_t deadline_ns);
  void end(int64_t deadline_ns) override { end_python(bridge_, deadline_ns); }

  // http::Handler
  // Bodies stream into receive(): reading pauses while the app leaves kBodyHighWater bytes
  // unconsumed.
  bool streams_body() const override { return true; }
  void on_body(http::Connection& conn, std::string_view data) override;
  void on_body_end(http::Connection& conn) override;
  void on_request(http::Connection& conn, const http::Request& req) override;
  void on_abort(http::Connection& conn) override;
  void on_peer_closed(http::Connection& conn) override;
  void on_peer_done(http::Connection& conn) override;
  void on_drained(http::Connection& conn) override;
  // WebSocket sessions: the app's half is bridge.WebSocket, driven by the calls below.
  bool accepts_websockets() const override { return true; }
  void on_ws_message(http::Connection& conn, bool text, std::string_view data) override;
  void on_ws_closed(http::Connection& conn, uint16_t code, std::string_view reason) override;

  // Engine (the exchanges' calls)
  SendOutcome send_part(uint64_t rid, int status, PyObject* headers, std::string_view body,
                        bool more) override;
  void resume_body(uint64_t rid) override;

  // The _rotor module's functions.
  PyObject* py_send(PyObject* args);
  PyObject* py_resume_body(PyObject* args);
  PyObject* py_want_body(PyObject* args);
  PyObject* py_app_failed(PyObject* args);
  PyObject* py_app_error(PyObject* args);
  PyObject* py_ws_accept(PyObject* args);
  PyObject* py_ws_send(PyObject* args);
  PyObject* py_ws_close(PyObject* args);
  PyObject* py_ws_deny(PyObject* args);
  PyObject* py_ws_took(PyObject* args);
  PyObject* py_call_ended() {
    call_ended();
    Py_RETURN_NONE;
  }
  PyObject* py_log(PyObject* args);
  PyObject* py_client_left(PyObject* args);

 private:
  struct Live {
    http::Connection* conn;
    PyObject* exchange;  // owned: the Exchange, or the bridge.WebSocket of a session
    size_t unread = 0;   // body (message) bytes fed to it and not yet received by the app
    bool websocket = false;
  };
  Live* find(uint64_t rid) {
    auto it = live_.find(rid);
    return it == live_.end() ? nullptr : &it->second;
  }
  void forget(uint64_t rid);
  // An app call has returned (calls_); the last one ends a drain that waited for it.
  void call_ended();
  PyObject* new_event_loop(PyObject* asyncio);
  void after_response();
  bool apply_gc_settings();
  bool install_bridge();
  // bridge.configure_logging: uvicorn's loggers (before the lifespan startup) or the root
  // logger (after it), unless the app configured logging. False with a Python error set.
  bool configure_logging(bool root);
  void log_lifespan_unsupported();
  PyObject* startup_bound(int64_t started);
  bool lifespan_timed_out();
  // Steps the request in an idle host task: `coro` (run()) when given, else the app's own
  // coroutine. False (nothing run) when that cannot be done now.
  bool start_eagerly(PyObject* coro, PyObject* scope, PyObject* ex);
  // What run() does once the app's own coroutine, started eagerly, has ended (`sent`).
  void answer_outcome(PyObject* ex, PySendResult sent);
  void park(PyObject* host);
  bool init_eager_start();
  void start_websocket(http::Connection& conn, const http::Request& req);
  // loop.create_task(coro) in a fresh copy of the base context: new reference or nullptr.
  PyObject* spawn(PyObject* coro);
  // Tells a session's bridge.WebSocket that it is over (on_ws_closed, on_abort).
  void websocket_gone(Live& l, uint16_t code, std::string_view reason);

  const conf::Config& cfg_;
  ScopeBuilder scope_;
  std::unordered_map<uint64_t, Live> live_;
  uint64_t next_rid_ = 1;
  PyObject* app_ = nullptr;
  PyObject* bridge_ = nullptr;
  PyObject* run_fn_ = nullptr;
  PyObject* failed_fn_ = nullptr;  // bridge.failed, returned and _carry
  PyObject* returned_fn_ = nullptr;
  PyObject* carry_fn_ = nullptr;
  PyObject* ws_cls_ = nullptr;  // bridge.WebSocket and bridge.run_websocket
  PyObject* run_ws_fn_ = nullptr;
  PyObject* loop_ = nullptr;
  PyObject* state_ = nullptr;     // lifespan state, copied into each request's scope
  PyObject* lifespan_ = nullptr;  // bridge.Lifespan, when the app speaks it
  PyObject* paused_ = nullptr;    // _rotor.PAUSED
  // Looked up once (after the interpreter starts), used per request.
  PyObject* create_task_ = nullptr;  // loop.create_task
  // The worker's contextvars at run(): each request starts in a fresh copy of it, never in a
  // copy of whichever request's context happened to be current (a tick scheduled from its send).
  PyObject* base_ctx_ = nullptr;
  PyObject* hosts_ = nullptr;  // idle bridge._Host objects (parked tasks)
  PyObject* host_cls_ = nullptr;
  PyObject* enter_task_ = nullptr;  // asyncio's _enter_task and _leave_task
  PyObject* leave_task_ = nullptr;
  PyObject* cancelled_error_ = nullptr;
  PyObject* name_task_ = nullptr;  // "task", "take", "wake", "done"
  PyObject* name_take_ = nullptr;
  PyObject* name_wake_ = nullptr;
  PyObject* name_done_ = nullptr;
  PyObject* timeout_ = nullptr;     // --timeout-request, a float
  PyObject* gc_collect_ = nullptr;  // gc.collect, for --gc-collect-every
  int64_t answered_ = 0;
  // App calls (HTTP requests, WebSocket sessions) not yet returned: a response may be complete
  // (and its request forgotten) while the app still runs work after it, such as Starlette's
  // BackgroundTasks. The drain stops the loop only once this is 0.
  size_t calls_ = 0;
  bool stop_when_idle_ = false;
  bool preloaded_ = false;
  std::unique_ptr<LoopDriver> driver_;
};

PyObject* mod_send(PyObject*, PyObject* args) {
  return g_worker->py_send(args);
}
PyObject* mod_app_failed(PyObject*, PyObject* args) {
  return g_worker->py_app_failed(args);
}
PyObject* mod_resume_body(PyObject*, PyObject* args) {
  return g_worker->py_resume_body(args);
}
PyObject* mod_want_body(PyObject*, PyObject* args) {
  return g_worker->py_want_body(args);
}
PyObject* mod_app_error(PyObject*, PyObject* args) {
  return g_worker->py_app_error(args);
}
PyObject* mod_ws_accept(PyObject*, PyObject* args) {
  return g_worker->py_ws_accept(args);
}
PyObject* mod_ws_send(PyObject*, PyObject* args) {
  return g_worker->py_ws_send(args);
}
PyObject* mod_ws_close(PyObject*, PyObject* args) {
  return g_worker->py_ws_close(args);
}
PyObject* mod_ws_deny(PyObject*, PyObject* args) {
  return g_worker->py_ws_deny(args);
}
PyObject* mod_ws_took(PyObject*, PyObject* args) {
  return g_worker->py_ws_took(args);
}
PyObject* mod_log(PyObject*, PyObject* args) {
  return g_worker->py_log(args);
}
PyObject* mod_call_ended(PyObject*, PyObject*) {
  return g_worker->py_call_ended();
}
PyObject* mod_client_left(PyObject*, PyObject* args) {
  return g_worker->py_client_left(args);
}

constexpr size_t kBodyHighWater = 256 * 1024;
// What a queued WebSocket message costs beyond its payload (the message dict in the inbox):
// counted too, so that a flood of empty messages pauses reading like a large one.
constexpr size_t kMessageOverhead = 256;

PyMethodDef g_methods[] = {
    {"send", mod_send, METH_VARARGS, "send(rid, status, headers, body, more)"},
    {"app_failed", mod_app_failed, METH_VARARGS, "app_failed(rid, started, summary, tb)"},
    {"resume_body", mod_resume_body, METH_VARARGS, "resume_body(rid): the app took the body"},
    {"want_body", mod_want_body, METH_VARARGS, "want_body(rid): the app waits for body"},
    {"app_error", mod_app_error, METH_VARARGS, "app_error(summary, tb): log an app's failure"},
    {"ws_accept", mod_ws_accept, METH_VARARGS, "ws_accept(rid, subprotocol, headers)"},
    {"ws_send", mod_ws_send, METH_VARARGS, "ws_send(rid, text, data): True, False or PAUSED"},
    {"ws_close", mod_ws_close, METH_VARARGS, "ws_close(rid, code, reason)"},
    {"ws_deny", mod_ws_deny, METH_VARARGS, "ws_deny(rid, status): refuse the handshake"},
    {"ws_took", mod_ws_took, METH_VARARGS, "ws_took(rid, nbytes): the app took a message"},
    {"log", mod_log, METH_VARARGS, "log(levelno, logger, message, tb): a Python log record"},
    {"call_ended", mod_call_ended, METH_NOARGS, "call_ended(): an app call has returned"},
    {"client_left", mod_client_left, METH_VARARGS,
     "client_left(rid): the app gave up on a request whose client has gone"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef g_module = {PyModuleDef_HEAD_INIT,
                        "_rotor",
                        "rotor's engine, for the ASGI bridge",
                        -1,
                        g_methods,
                        nullptr,
                        nullptr,
                        nullptr,
                        nullptr};

// The app's headers ([bytes, bytes] pairs) as views, valid while `headers` lives. False with
// a TypeError set when they are not.
bool header_views(PyObject* headers, http::HeaderList* out) {
  PyObject* seq = PySequence_Fast(headers, "headers must be a sequence of [name, value]");
  if (!seq) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  out->reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* pair = PySequence_Fast_GET_ITEM(seq, i);
    PyObject *k = nullptr, *v = nullptr;
    if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
      k = PyTuple_GET_ITEM(pair, 0);
      v = PyTuple_GET_ITEM(pair, 1);
    } else if (PyList_Check(pair) && PyList_GET_SIZE(pair) == 2) {
      k = PyList_GET_ITEM(pair, 0);
      v = PyList_GET_ITEM(pair, 1);
    }
    if (!k || !PyBytes_Check(k) || !PyBytes_Check(v)) {
      Py_DECREF(seq);
      PyErr_SetString(PyExc_TypeError, "response headers must be [bytes, bytes] pairs");
      return false;
    }
    out->emplace_back(std::string_view(PyBytes_AS_STRING(k), PyBytes_GET_SIZE(k)),
                      std::string_view(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v)));
  }
  Py_DECREF(seq);  // the pairs' bytes live on in `headers`
  return true;
}

bool AsgiWorker::install_bridge() {
  PyObject* mod = PyModule_Create(&g_module);
  if (!mod) return false;
  paused_ = PyUnicode_InternFromString("paused");
  Py_INCREF(paused_);
  PyModule_AddObject(mod, "PAUSED", paused_);
  PyObject* modules = PyImport_GetModuleDict();  // borrowed
  PyDict_SetItemString(modules, "_rotor", mod);
  Py_DECREF(mod);
  PyObject* code = Py_CompileString(kBridgeSource, "rotor/bridge.py", Py_file_input);
  if (!code) return false;
  bridge_ = PyImport_ExecCodeModule("_rotor_bridge", code);
  Py_DECREF(code);
  if (!bridge_) return false;
  run_fn_ = PyObject_GetAttrString(bridge_, "run");
  failed_fn_ = PyObject_GetAttrString(bridge_, "failed");
  returned_fn_ = PyObject_GetAttrString(bridge_, "returned");
  carry_fn_ = PyObject_GetAttrString(bridge_, "_carry");
  ws_cls_ = PyObject_GetAttrString(bridge_, "WebSocket");
  run_ws_fn_ = PyObject_GetAttrString(bridge_, "run_websocket");
  return run_fn_ && failed_fn_ && returned_fn_ && carry_fn_ && ws_cls_ && run_ws_fn_ &&
         exchange_init(bridge_, this);
}

int AsgiWorker::preload() {
  PythonSettings settings;
  settings.executable = conf::python_executable(cfg_.python, std::getenv("VIRTUAL_ENV"));
  settings.paths = cfg_.pythonpath;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd)) settings.paths.push_back(cwd);
  std::string error;
  if (!start_interpreter(settings, &error)) {
    spdlog::error("event=boot-failed error={}", log::quote(error));
    return worker::kExitBootFailed;
  }
  // Where a stalled app is stuck: the heartbeat timeout's SIGABRT dumps every thread.
  PyObject* fh = PyImport_ImportModule("faulthandler");
  PyObject* r = fh ? PyObject_CallMethod(fh, "enable", nullptr) : nullptr;
  if (!r) log_python_error("faulthandler-unavailable");
  Py_XDECREF(r);
  Py_XDECREF(fh);

  if (!install_bridge()) {
    log_python_error("boot-failed detail=\"ASGI bridge\"");
    return worker::kExitBootFailed;
  }
  PyObject* app = load_app(cfg_.app, cfg_.factory, &error);
  if (!app) {
    spdlog::error("event=app-load-failed app={} error={}", log::quote(cfg_.app), log::quote(error));
    return worker::kExitAppLoadFailed;
  }
  app_ = PyObject_CallMethod(bridge_, "prepare", "O", app);
  Py_DECREF(app);
  timeout_ = PyFloat_FromDouble(cfg_.timeout_request);
  if (!app_) {
    log_python_error("app-load-failed detail=\"not an ASGI application\"");
    return worker::kExitAppLoadFailed;
  }
  if (!apply_gc_settings()) {
    log_python_error("boot-failed detail=\"gc settings\"");
    return worker::kExitBootFailed;
  }
  // What every worker imports to serve (asyncio, the event loop's module) is imported here
  // too, so that workers forked from a template find it loaded. A missing uvloop is reported
  // by boot() when it was asked for.
  for (const char* module : {"asyncio", cfg_.loop == "asyncio" ? nullptr : "uvloop"}) {
    if (!module) continue;
    PyObject* m = PyImport_ImportModule(module);
    if (!m) PyErr_Clear();
    Py_XDECREF(m);
  }
  preloaded_ = true;
  return worker::kExitOk;
}

// The template forks workers from a process that has imported the app: what import built is
// frozen out of the cyclic GC (gc.freeze) so that collections in the workers do not write to
// the pages they share with it, and Python's own fork hooks run (locks, threading, random).
void AsgiWorker::before_fork() {
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* stream = PySys_GetObject(name);  // borrowed
    PyObject* r = stream ? PyObject_CallMethod(stream, "flush", nullptr) : nullptr;
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
  }
  std::fflush(nullptr);  // nothing buffered may be written twice, by the template and a worker
  PyObject* gc = PyImport_ImportModule("gc");
  PyObject* r = gc ? PyObject_CallMethod(gc, "freeze", nullptr) : nullptr;
  if (!r) log_python_error("gc-freeze-failed");
  Py_XDECREF(r);
  Py_XDECREF(gc);
  PyOS_BeforeFork();
}

void AsgiWorker::after_fork(bool child) {
  if (child) {
    PyOS_AfterFork_Child();
  } else {
    PyOS_AfterFork_Parent();
  }
}

int AsgiWorker::boot(uv_loop_t*) {
  int64_t started = monotonic_ns();  // the master's --timeout counts from here (runtime.cpp)
  if (!preloaded_) {
    if (int code = preload(); code != worker::kExitOk) return code;
  }
  PyObject* asyncio = PyImport_ImportModule("asyncio");
  loop_ = asyncio ? new_event_loop(asyncio) : nullptr;
  if (loop_) {
    PyObject* set = PyObject_CallMethod(asyncio, "set_event_loop", "O", loop_);
    Py_XDECREF(set);
  }
  Py_XDECREF(asyncio);
  if (loop_) create_task_ = PyObject_GetAttrString(loop_, "create_task");
  if (loop_ && !init_eager_start()) {
    log_python_error("boot-failed detail=\"eager start\"");
    return worker::kExitBootFailed;
  }
  if (!loop_ || !create_task_ || !scope_.init(cfg_)) {
    log_python_error("boot-failed detail=\"event loop\"");
    return worker::kExitBootFailed;
  }

  if (!configure_logging(false)) {
    log_python_error("boot-failed detail=\"logging\"");
    return worker::kExitBootFailed;
  }
  if (cfg_.lifespan != "off") {
    state_ = PyDict_New();
    lifespan_ =
        PyObject_CallMethod(bridge_, "Lifespan", "OsO", app_, cfg_.lifespan.c_str(), state_);
    PyObject* bound = startup_bound(started);
    PyObject* coro =
        lifespan_ && bound ? PyObject_CallMethod(lifespan_, "startup", "O", bound) : nullptr;
    Py_XDECREF(bound);
    PyObject* failed = coro ? PyObject_CallMethod(loop_, "run_until_complete", "O", coro) : nullptr;
    Py_XDECREF(coro);
    if (!failed) {
      log_python_error("boot-failed detail=\"lifespan\"");
      return worker::kExitBootFailed;
    }
    if (lifespan_timed_out()) {
      // Exits as a boot failure: the first generation's ends the master (exit 3), a later
      // one's is backed off. Not left to the heartbeat's SIGABRT, which would be retried.
      spdlog::error(
          "event=lifespan-timeout timeout_s={} action=exit detail=\"the app's lifespan startup "
          "did not finish within --timeout\"",
          cfg_.timeout);
      Py_DECREF(failed);
      return worker::kExitBootFailed;
    }
    if (failed != Py_None) {
      spdlog::error("event=boot-failed error={}", log::quote(PyUnicode_AsUTF8(failed)));
      Py_DECREF(failed);
      return worker::kExitBootFailed;
    }
    Py_DECREF(failed);
    PyObject* supported = PyObject_GetAttrString(lifespan_, "supported");
    if (supported != Py_True) {
      if (cfg_.lifespan == "on") {
        spdlog::error("event=boot-failed error=\"--lifespan on: the app does not support it\"");
        Py_XDECREF(supported);
        return worker::kExitBootFailed;
      }
      Py_CLEAR(state_);  // no lifespan: no state in the scope
      log_lifespan_unsupported();
    }
    Py_XDECREF(supported);
  }
  if (!configure_logging(true)) {
    log_python_error("boot-failed detail=\"logging\"");
    return worker::kExitBootFailed;
  }
  return worker::kExitOk;
}

// The lifespan startup ends before the master's --timeout would abort a worker that is not
// ready (counted from `started`): a share of it, up to 1 s, is left for the worker to say so
// and exit. None (no bound) without a --timeout.
PyObject* AsgiWorker::startup_bound(int64_t started) {
  if (cfg_.timeout <= 0) Py_RETURN_NONE;
  double margin = std::min(1.0, cfg_.timeout / 10);
  double elapsed = static_cast<double>(monotonic_ns() - started) / 1e9;
  return PyFloat_FromDouble(std::max(0.0, cfg_.timeout - margin - elapsed));
}

bool AsgiWorker::lifespan_timed_out() {
  PyObject* t = PyObject_GetAttrString(lifespan_, "timed_out");
  if (!t) PyErr_Clear();
  bool yes = t == Py_True;
  Py_XDECREF(t);
  return yes;
}

// As uvicorn says it (at info), with what the app raised at debug.
void AsgiWorker::log_lifespan_unsupported() {
  spdlog::info(
      "event=lifespan-unsupported detail=\"ASGI 'lifespan' protocol appears unsupported\"");
  PyObject* why = PyObject_GetAttrString(lifespan_, "unsupported");
  const char *summary = nullptr, *tb = nullptr;
  if (!why || !PyArg_ParseTuple(why, "ss", &summary, &tb)) {
    PyErr_Clear();
  } else if (*summary && spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("event=lifespan-unsupported error={}", log::quote(summary));
    std::fputs(tb, stderr);
  }
  Py_XDECREF(why);
}

bool AsgiWorker::configure_logging(bool root) {
  std::string level = cfg_.log_level;
  for (char& c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (level == "TRACE") level = "DEBUG";
  PyObject* r = PyObject_CallMethod(bridge_, "configure_logging", "sO", level.c_str(),
                                    root ? Py_True : Py_False);
  Py_XDECREF(r);
  return r != nullptr;
}

bool AsgiWorker::init_eager_start() {
  PyObject* tasks = PyImport_ImportModule("asyncio.tasks");
  if (!tasks) return false;
  enter_task_ = PyObject_GetAttrString(tasks, "_enter_task");
  leave_task_ = PyObject_GetAttrString(tasks, "_leave_task");
  Py_DECREF(tasks);
  PyObject* exceptions = PyImport_ImportModule("asyncio.exceptions");
  if (!exceptions) return false;
  cancelled_error_ = PyObject_GetAttrString(exceptions, "CancelledError");
  Py_DECREF(exceptions);
  host_cls_ = PyObject_GetAttrString(bridge_, "_Host");
  name_task_ = PyUnicode_InternFromString("task");
  name_take_ = PyUnicode_InternFromString("take");
  name_wake_ = PyUnicode_InternFromString("wake");
  name_done_ = PyUnicode_InternFromString("done");
  hosts_ = PyList_New(0);
  if (!enter_task_ || !leave_task_ || !cancelled_error_ || !host_cls_ || !hosts_) return false;
  // One host to start with; it parks (joins hosts_) once the loop runs.
  PyObject* host = PyObject_CallFunctionObjArgs(host_cls_, loop_, hosts_, nullptr);
  Py_XDECREF(host);
  return host != nullptr;
}

void AsgiWorker::run(uv_loop_t* loop) {
  base_ctx_ = PyContext_CopyCurrent();
  PyObject* tick_ctx = base_ctx_ ? PyContext_Copy(base_ctx_) : nullptr;
  driver_ = std::make_unique<LoopDriver>(loop, loop_, tick_ctx ? tick_ctx : Py_None);
  Py_XDECREF(tick_ctx);
  if (!tick_ctx || !driver_->start()) {
    log_python_error("loop-failed");
    return;
  }
  PyObject* r = PyObject_CallMethod(loop_, "run_forever", nullptr);
  if (!r) log_python_error("loop-failed");
  Py_XDECREF(r);
  driver_->stop();
}

void AsgiWorker::stop() {
  PyObject* r = PyObject_CallMethod(loop_, "stop", nullptr);
  if (!r) PyErr_Clear();
  Py_XDECREF(r);
}

void AsgiWorker::stop_when_idle() {
  if (calls_ == 0) {
    stop();
    return;
  }
  // Like uvicorn's "Waiting for background tasks to complete"; --graceful-timeout bounds it.
  spdlog::info("event=drain-wait app_calls={}", calls_);
  stop_when_idle_ = true;
}

void AsgiWorker::call_ended() {
  if (calls_ > 0) --calls_;
  if (calls_ == 0 && stop_when_idle_) {
    stop_when_idle_ = false;
    // May run with the app's exception pending (start_eagerly): keep it for the caller.
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    stop();
    PyErr_Restore(et, ev, etb);
  }
}

PyObject* AsgiWorker::py_log(PyObject* args) {
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

PyObject* AsgiWorker::py_client_left(PyObject* args) {
  unsigned long long rid;
  if (!PyArg_ParseTuple(args, "K", &rid)) return nullptr;
  // The app stopped because its send or receive said the client went away: no app error. A
  // request still held (the client only half-closed) is closed unanswered, as uvicorn does.
  spdlog::debug("event=client-gone detail=\"the app stopped: its client went away\"");
  if (Live* l = find(rid)) {
    l->conn->close_now();
    forget(rid);
    if (driver_) driver_->kick();
  }
  Py_RETURN_NONE;
}

void AsgiWorker::finish(int64_t deadline_ns) {
  if (lifespan_ && state_) shut_lifespan(deadline_ns);
  end_tasks(deadline_ns);
}

// bridge.end_tasks, as asyncio.run ends: the app's pending tasks are cancelled and awaited.
// Of the time left, the exit after it (threads, atexit) keeps a quarter, up to 1 s.
void AsgiWorker::end_tasks(int64_t deadline_ns) {
  int64_t left_ns = std::max<int64_t>(0, deadline_ns - monotonic_ns());
  left_ns -= std::min<int64_t>(1'000'000'000, left_ns / 4);
  PyObject* coro =
      PyObject_CallMethod(bridge_, "end_tasks", "d", static_cast<double>(left_ns) / 1e9);
  PyObject* r = coro ? PyObject_CallMethod(loop_, "run_until_complete", "O", coro) : nullptr;
  Py_XDECREF(coro);
  if (!r) {
    log_python_error("python-exit-failed step=tasks");
    return;
  }
  long pending = PyLong_AsLong(r);
  Py_DECREF(r);
  if (pending > 0) {
    spdlog::warn(
        "event=python-exit-timeout phase=tasks tasks={} detail=\"cancelled tasks of the app "
        "that did not end in time\"",
        pending);
  }
  PyErr_Clear();
}

void AsgiWorker::shut_lifespan(int64_t deadline_ns) {
  PyObject* coro = PyObject_CallMethod(lifespan_, "shutdown", nullptr);
  PyObject* asyncio = PyImport_ImportModule("asyncio");
  double left = static_cast<double>(std::max<int64_t>(0, deadline_ns - monotonic_ns())) / 1e9;
  PyObject* bounded =
      coro && asyncio ? PyObject_CallMethod(asyncio, "wait_for", "Od", coro, left) : nullptr;
  PyObject* r = bounded ? PyObject_CallMethod(loop_, "run_until_complete", "O", bounded) : nullptr;
  if (!r) log_python_error("lifespan-shutdown-failed");
  Py_XDECREF(r);
  Py_XDECREF(bounded);
  Py_XDECREF(asyncio);
  Py_XDECREF(coro);
}

void AsgiWorker::on_request(http::Connection& conn, const http::Request& req) {
  if (conn.websocket_requested()) {
    start_websocket(conn, req);
    return;
  }
  uint64_t rid = next_rid_++;
  conn.handler_tag = rid;
  PyObject* scope = scope_.build(conn, req, state_);
  PyObject* ex = scope ? exchange_new(loop_, rid) : nullptr;
  // run() wraps the app for a task, and for a request timeout (its timer); an eager start
  // without either steps the app's own coroutine.
  PyObject* coro = ex && (req.has_body || cfg_.timeout_request != 0)
                       ? PyObject_CallFunctionObjArgs(run_fn_, app_, scope, ex, timeout_, nullptr)
                       : nullptr;
  if (!ex || (!coro && PyErr_Occurred())) {
    Py_XDECREF(scope);
    Py_XDECREF(ex);
    log_python_error("request-failed");
    conn.fail_response(500);
    return;
  }
  live_[rid] = {&conn, ex, 0};
  ++calls_;  // until run(), _carry() or start_eagerly() says it returned
  // Without a body the request is complete now: start the app at once (its receive has the
  // whole, empty body). A body arrives after this call, so such requests get a task.
  if (!req.has_body) {
    on_body_end(conn);
    if (start_eagerly(coro, scope, ex)) {
      Py_XDECREF(coro);
      Py_DECREF(scope);
      return;
    }
  }
  if (!coro) coro = PyObject_CallFunctionObjArgs(run_fn_, app_, scope, ex, timeout_, nullptr);
  Py_DECREF(scope);
  PyObject* task = coro ? spawn(coro) : nullptr;
  Py_XDECREF(coro);
  if (!task) {
    forget(rid);
    log_python_error("request-failed");
    conn.fail_response(500);
    call_ended();  // never ran
    return;
  }
  Py_DECREF(task);  // the loop keeps it
}

PyObject* AsgiWorker::spawn(PyObject* coro) {
  PyObject* ctx = PyContext_Copy(base_ctx_);
  if (!ctx) return nullptr;
  if (PyContext_Enter(ctx) != 0) {
    Py_DECREF(ctx);
    return nullptr;
  }
  PyObject* task = PyObject_CallOneArg(create_task_, coro);  // the task copies `ctx`
  PyObject *et, *ev, *etb;
  PyErr_Fetch(&et, &ev, &etb);
  PyContext_Exit(ctx);
  PyErr_Restore(et, ev, etb);
  Py_DECREF(ctx);
  return task;
}

bool AsgiWorker::start_eagerly(PyObject* coro, PyObject* scope, PyObject* ex) {
  Py_ssize_t idle = PyList_GET_SIZE(hosts_);
  if (idle == 0) {
    // Every host is busy with a suspended request (or none has parked yet): one more for the
    // next requests; this one gets a task of its own.
    PyObject* host = PyObject_CallFunctionObjArgs(host_cls_, loop_, hosts_, nullptr);
    if (!host) log_python_error("host-failed");
    Py_XDECREF(host);  // its task keeps it
    return false;
  }
  PyObject* host = Py_NewRef(PyList_GET_ITEM(hosts_, idle - 1));
  if (PyList_SetSlice(hosts_, idle - 1, idle, nullptr) != 0) {
    Py_DECREF(host);
    log_python_error("host-failed");
    return false;
  }
  PyObject* task = PyObject_GetAttr(host, name_task_);
  PyObject* ctx = task ? PyContext_Copy(base_ctx_) : nullptr;
  PyObject* args[] = {loop_, task};
  // A task may be running already (a pipelined request dispatched from inside another
  // request's send): then entering fails, and this request gets a task of its own.
  PyObject* entered = ctx && PyContext_Enter(ctx) == 0
                          ? PyObject_Vectorcall(enter_task_, args, 2, nullptr)
                          : nullptr;
  if (!entered) {
    if (ctx) PyContext_Exit(ctx);
    PyErr_Clear();
    park(host);
    Py_XDECREF(ctx);
    Py_XDECREF(task);
    Py_DECREF(host);
    return false;
  }
  Py_DECREF(entered);
  Py_INCREF(ex);  // the response may complete (and the engine forget it) before we are done
  // Called in the request's context and host task, as run() calls it in a task.
  bool direct = !coro;
  if (direct) {
    PyObject *receive, *send;
    if (exchange_callables(ex, &receive, &send)) {
      PyObject* app_args[] = {scope, receive, send};
      coro = PyObject_Vectorcall(app_, app_args, 3, nullptr);
      Py_DECREF(receive);
      Py_DECREF(send);
    }
    if (coro && !PyCoro_CheckExact(coro)) {
      // An awaitable that is no coroutine (a class-based app): _carry awaits and answers it.
      PyObject* carried = PyObject_CallFunctionObjArgs(carry_fn_, ex, coro, nullptr);
      Py_SETREF(coro, carried);
      direct = !carried;
    }
  } else {
    Py_INCREF(coro);
  }
  PyObject* result = nullptr;
  PySendResult sent = coro ? PyIter_Send(coro, Py_None, &result) : PYGEN_ERROR;
  // The app's exception (if any) is kept aside while the task and context are left.
  PyObject *et, *ev, *etb;
  PyErr_Fetch(&et, &ev, &etb);
  PyObject* left = PyObject_Vectorcall(leave_task_, args, 2, nullptr);
  if (!left) log_python_error("host-failed");
  Py_XDECREF(left);
  PyContext_Exit(ctx);
  PyErr_Restore(et, ev, etb);
  if (sent == PYGEN_NEXT) {
    PyObject* r = PyObject_CallMethodObjArgs(host, name_take_, coro, result, ctx,
                                             direct ? ex : Py_None, nullptr);
    if (!r) log_python_error("host-failed");
    Py_XDECREF(r);
  } else {
    if (direct) {
      answer_outcome(ex, sent);
      call_ended();  // the app's own coroutine ended here (run() says so itself)
    }
    if (PyErr_Occurred()) {
      // What run() lets through is a cancel (a task would end cancelled, silently), or the
      // GeneratorExit of a coroutine being closed.
      if (PyErr_ExceptionMatches(cancelled_error_)) {
        PyErr_Clear();
      } else {
        log_python_error("app-failed");
      }
    }
    park(host);
  }
  Py_XDECREF(result);
  Py_XDECREF(coro);
  Py_DECREF(ex);
  Py_DECREF(ctx);
  Py_DECREF(task);
  Py_DECREF(host);
  return true;
}

void AsgiWorker::answer_outcome(PyObject* ex, PySendResult sent) {
  if (sent == PYGEN_RETURN) {
    if (exchange_answered(ex)) return;  // the common case: nothing left to do
    PyObject* r = PyObject_CallOneArg(returned_fn_, ex);
    if (!r) log_python_error("app-failed");
    Py_XDECREF(r);
    return;
  }
  PyObject *et, *ev, *etb;
  PyErr_Fetch(&et, &ev, &etb);
  if (!et) return;
  PyErr_NormalizeException(&et, &ev, &etb);
  if (etb) PyException_SetTraceback(ev, etb);  // for the traceback failed() logs
  PyObject* r = PyObject_CallFunctionObjArgs(failed_fn_, ex, ev, timeout_, nullptr);
  if (!r) log_python_error("app-failed");
  Py_XDECREF(r);
  // As run() re-raises only a cancel (bridge._passes): an exit is this request's failure.
  if (!PyErr_GivenExceptionMatches(et, cancelled_error_) &&
      !PyErr_GivenExceptionMatches(et, PyExc_GeneratorExit)) {
    Py_XDECREF(et);
    Py_XDECREF(ev);
    Py_XDECREF(etb);
  } else {
    PyErr_Restore(et, ev, etb);
  }
}

// An eager start is over: the host goes back to the idle pool, unless a cancel() woke it
// meanwhile (it then carries that on as a task).
void AsgiWorker::park(PyObject* host) {
  PyObject* wake = PyObject_GetAttr(host, name_wake_);
  PyObject* done = wake ? PyObject_CallMethodNoArgs(wake, name_done_) : nullptr;
  if (!done || (done == Py_False && PyList_Append(hosts_, host) != 0)) {
    log_python_error("host-failed");
  }
  Py_XDECREF(done);
  Py_XDECREF(wake);
}

void AsgiWorker::on_body(http::Connection& conn, std::string_view data) {
  Live* l = find(conn.handler_tag);
  if (!l) return;
  l->unread += data.size();
  if (l->unread >= kBodyHighWater) conn.pause_body();
  if (!exchange_feed(l->exchange, data, true)) log_python_error("bridge-failed");
}

void AsgiWorker::on_body_end(http::Connection& conn) {
  Live* l = find(conn.handler_tag);
  if (l && !exchange_feed(l->exchange, {}, false)) log_python_error("bridge-failed");
}

PyObject* AsgiWorker::py_resume_body(PyObject* args) {
  unsigned long long rid;
  if (!PyArg_ParseTuple(args, "K", &rid)) return nullptr;
  resume_body(rid);
  Py_RETURN_NONE;
}

void AsgiWorker::resume_body(uint64_t rid) {
  Live* l = find(rid);
  if (!l) return;
  l->unread = 0;
  l->conn->resume_body();
  if (driver_) driver_->kick();  // reading restarts in the loop
}

PyObject* AsgiWorker::py_want_body(PyObject* args) {
  unsigned long long rid;
  if (!PyArg_ParseTuple(args, "K", &rid)) return nullptr;
  if (Live* l = find(rid)) {
    l->conn->continue_if_expected();
    if (driver_) driver_->kick();
  }
  Py_RETURN_NONE;
}

void AsgiWorker::on_abort(http::Connection& conn) {
  if (Live* l = find(conn.handler_tag); l && l->websocket) {
    websocket_gone(*l, 1006, "");
  } else if (l && !exchange_gone(l->exchange)) {
    log_python_error("bridge-failed");
  }
  forget(conn.handler_tag);
}

void AsgiWorker::on_peer_closed(http::Connection& conn) {
  if (Live* l = find(conn.handler_tag); l && !exchange_gone(l->exchange)) {
    log_python_error("bridge-failed");
  }
}

// A half-closed client still gets its answer: receive says disconnect, send goes on writing.
void AsgiWorker::on_peer_done(http::Connection& conn) {
  if (Live* l = find(conn.handler_tag); l && !l->websocket && !exchange_peer_done(l->exchange)) {
    log_python_error("bridge-failed");
  }
}

void AsgiWorker::on_drained(http::Connection& conn) {
  Live* l = find(conn.handler_tag);
  if (l && l->websocket) {
    PyObject* r = PyObject_CallMethod(l->exchange, "wake", nullptr);
    if (!r) log_python_error("bridge-failed");
    Py_XDECREF(r);
  } else if (l && !exchange_wake(l->exchange)) {
    log_python_error("bridge-failed");
  }
}

// --- WebSocket sessions ----------------------------------------------------------------------

void AsgiWorker::start_websocket(http::Connection& conn, const http::Request& req) {
  uint64_t rid = next_rid_++;
  conn.handler_tag = rid;
  PyObject* scope = scope_.build_websocket(conn, req, state_);
  PyObject* session = scope ? PyObject_CallFunction(ws_cls_, "OK", loop_, rid) : nullptr;
  PyObject* coro =
      session ? PyObject_CallFunctionObjArgs(run_ws_fn_, app_, scope, session, nullptr) : nullptr;
  PyObject* task = coro ? spawn(coro) : nullptr;
  Py_XDECREF(coro);
  Py_XDECREF(scope);
  if (!task) {
    Py_XDECREF(session);
    log_python_error("request-failed");
    conn.fail_response(500);
    return;
  }
  Py_DECREF(task);  // the loop keeps it
  live_[rid] = {&conn, session, 0, true};
  ++calls_;  // run_websocket says when it returned
}

void AsgiWorker::on_ws_message(http::Connection& conn, bool text, std::string_view data) {
  Live* l = find(conn.handler_tag);
  if (!l) return;
  auto n = static_cast<Py_ssize_t>(data.size());
  size_t cost = data.size() + kMessageOverhead;
  PyObject* payload = text ? PyUnicode_DecodeUTF8(data.data(), n, "strict")
                           : PyBytes_FromStringAndSize(data.data(), n);
  PyObject* r = payload ? PyObject_CallMethod(l->exchange, "push", "OOn", text ? Py_True : Py_False,
                                              payload, static_cast<Py_ssize_t>(cost))
                        : nullptr;
  if (!r) log_python_error("bridge-failed");
  Py_XDECREF(r);
  Py_XDECREF(payload);
  // Reading stops while the app leaves this much unreceived (ws_took resumes it).
  l->unread += cost;
  if (l->unread >= kBodyHighWater) conn.pause_websocket();
}

void AsgiWorker::on_ws_closed(http::Connection& conn, uint16_t code, std::string_view reason) {
  if (Live* l = find(conn.handler_tag)) websocket_gone(*l, code, reason);
  forget(conn.handler_tag);
}

void AsgiWorker::websocket_gone(Live& l, uint16_t code, std::string_view reason) {
  PyObject* why =
      PyUnicode_DecodeUTF8(reason.data(), static_cast<Py_ssize_t>(reason.size()), "replace");
  PyObject* r =
      why ? PyObject_CallMethod(l.exchange, "gone", "iO", static_cast<int>(code), why) : nullptr;
  if (!r) log_python_error("bridge-failed");
  Py_XDECREF(r);
  Py_XDECREF(why);
}

PyObject* AsgiWorker::py_ws_accept(PyObject* args) {
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
  if (driver_) driver_->kick();
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

PyObject* AsgiWorker::py_ws_send(PyObject* args) {
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
  if (res == http::SendResult::kPaused) return Py_NewRef(paused_);
  Py_RETURN_TRUE;
}

PyObject* AsgiWorker::py_ws_close(PyObject* args) {
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
    if (driver_) driver_->kick();
  }
  Py_RETURN_NONE;
}

PyObject* AsgiWorker::py_ws_deny(PyObject* args) {
  unsigned long long rid;
  int status;
  if (!PyArg_ParseTuple(args, "Ki", &rid, &status)) return nullptr;
  if (Live* l = find(rid)) {
    l->conn->fail_response(status);
    forget(rid);
    if (driver_) driver_->kick();
  }
  Py_RETURN_NONE;
}

PyObject* AsgiWorker::py_ws_took(PyObject* args) {
  unsigned long long rid;
  Py_ssize_t n;
  if (!PyArg_ParseTuple(args, "Kn", &rid, &n)) return nullptr;
  if (Live* l = find(rid)) {
    l->unread -= std::min(l->unread, static_cast<size_t>(n));
    if (l->unread < kBodyHighWater / 2) {
      l->conn->resume_websocket();
      if (driver_) driver_->kick();  // reading restarts in the loop
    }
  }
  Py_RETURN_NONE;
}

PyObject* AsgiWorker::py_app_error(PyObject* args) {
  const char *summary, *tb;
  if (!PyArg_ParseTuple(args, "ss", &summary, &tb)) return nullptr;
  spdlog::error("event=app-error error={}", log::quote(summary));
  if (*tb) std::fputs(tb, stderr);
  Py_RETURN_NONE;
}

// --gc-collect-every: a full collection once the response has gone out, from the loop (not
// inside the app's send).
void AsgiWorker::after_response() {
  if (!gc_collect_ || ++answered_ % cfg_.gc_collect_every != 0) return;
  PyObject* h = PyObject_CallMethod(loop_, "call_soon", "O", gc_collect_);
  if (!h) log_python_error("gc-collect-failed");
  Py_XDECREF(h);
}

bool AsgiWorker::apply_gc_settings() {
  PyObject* gc = PyImport_ImportModule("gc");
  if (!gc) return false;
  bool ok = true;
  if (!cfg_.gc_threshold.empty()) {
    long a = 0, b = 0, c = 0;
    std::sscanf(cfg_.gc_threshold.c_str(), "%ld,%ld,%ld", &a, &b, &c);
    PyObject* r = PyObject_CallMethod(gc, "set_threshold", "lll", a, b, c);
    ok = ok && r;
    Py_XDECREF(r);
  }
  if (ok && cfg_.gc_freeze) {
    PyObject* r = PyObject_CallMethod(gc, "freeze", nullptr);
    ok = ok && r;
    Py_XDECREF(r);
  }
  if (ok && cfg_.gc_collect_every > 0) gc_collect_ = PyObject_GetAttrString(gc, "collect");
  Py_DECREF(gc);
  return ok;
}

// --loop: uvloop is a faster asyncio loop; it drives rotor's libuv loop through the same
// LoopDriver (its own uv_loop_t is never shared, so any uvloop build is safe).
PyObject* AsgiWorker::new_event_loop(PyObject* asyncio) {
  if (cfg_.loop != "asyncio") {
    PyObject* uvloop = PyImport_ImportModule("uvloop");
    if (uvloop) {
      PyObject* loop = PyObject_CallMethod(uvloop, "new_event_loop", nullptr);
      Py_DECREF(uvloop);
      if (loop) spdlog::debug("event=event-loop kind=uvloop");
      return loop;
    }
    if (cfg_.loop == "uvloop") return nullptr;  // asked for explicitly: the ImportError stands
    PyErr_Clear();
  }
  spdlog::debug("event=event-loop kind=asyncio");
  return PyObject_CallMethod(asyncio, "new_event_loop", nullptr);
}

void AsgiWorker::forget(uint64_t rid) {
  auto it = live_.find(rid);
  if (it == live_.end()) return;
  Py_XDECREF(it->second.exchange);
  live_.erase(it);
}

PyObject* AsgiWorker::py_send(PyObject* args) {
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
      return Py_NewRef(paused_);
    case SendOutcome::kOk:
      break;
  }
  Py_RETURN_TRUE;
}

SendOutcome AsgiWorker::send_part(uint64_t rid, int status, PyObject* headers,
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

PyObject* AsgiWorker::py_app_failed(PyObject* args) {
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
    if (driver_) driver_->kick();
  }
  Py_RETURN_NONE;
}

}  // namespace

std::unique_ptr<worker::WorkerClass> make_asgi_worker(const conf::Config& config) {
  return std::make_unique<AsgiWorker>(config);
}

}  // namespace rotor::asgi
