// The asgi worker's life: start the interpreter and import the app (preload, once in a
// template), fork, boot (event loop, lifespan startup), run, drain, and end as a Python process
// ends. What serves the requests is the RequestHandler (request_handler.cpp).
#include "workers/asgi/asgi_worker.hpp"

#include "workers/asgi/py_ref.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "conf/python_executable.hpp"
#include "log/log.hpp"
#include "supervisor/scoreboard.hpp"
#include "workers/asgi/app_objects.hpp"
#include "workers/asgi/exchange.hpp"
#include "workers/asgi/interpreter.hpp"
#include "workers/asgi/leak_report.hpp"
#include "workers/asgi/lifespan.hpp"
#include "workers/asgi/loop_driver.hpp"
#include "workers/asgi/python_exit.hpp"
#include "workers/asgi/request_handler.hpp"
#include "workers/asgi/rotor_module.hpp"

namespace rotor::asgi {

namespace {

class AsgiWorker : public worker::WorkerClass {
 public:
  explicit AsgiWorker(const conf::Config& cfg) : cfg_(cfg) {}

  bool preloads() const override { return true; }
  int preload() override;
  void before_fork() override;
  void after_fork(bool child) override;
  int boot(uv_loop_t* loop) override;
  http::Handler& handler() override { return handler_; }
  void trace_leaks(uint64_t generation) override {
    leak_.start(cfg_, generation);
    handler_.set_leak_report(&leak_);
  }
  void run(uv_loop_t* loop) override;
  void stop() override;
  void stop_when_idle() override { handler_.calls().stop_when_idle(); }
  void finish(int64_t deadline_ns) override;
  void end(int64_t deadline_ns) override { end_python(py_.bridge.get(), deadline_ns); }

 private:
  bool install_bridge();
  bool apply_gc_settings();
  PyRef new_event_loop(PyObject* asyncio);
  // bridge.configure_logging: uvicorn's loggers (before the lifespan startup) or the root
  // logger (after it), unless the app configured logging. False with a Python error set.
  bool configure_logging(bool root);
  void end_tasks(int64_t deadline_ns);

  const conf::Config& cfg_;
  // Never deleted: the worker and the template end with _exit, and releasing the app's objects
  // before it would run their finalizers (a pending task's, the lifespan state's, a request's
  // futures') after the app's exit.
  AppObjects& py_ = *new AppObjects;
  RequestHandler& handler_ = *new RequestHandler(cfg_, py_, [this] { stop(); });
  bool preloaded_ = false;
  std::unique_ptr<LoopDriver> driver_;
  LeakReport leak_;  // --leak-report, in the worker the master chose
};

bool AsgiWorker::install_bridge() {
  py_.paused = PyRef::steal(PyUnicode_InternFromString("paused"));
  return py_.paused && install_rotor_module(&handler_, py_.paused.get()) && load_bridge(py_) &&
         exchange_init(py_.bridge.get(), &handler_);
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
  PyRef fh = PyRef::steal(PyImport_ImportModule("faulthandler"));
  if (!fh || !call_ok(PyObject_CallMethod(fh.get(), "enable", nullptr))) {
    log_python_error("faulthandler-unavailable");
  }
  fh.reset();

  if (!install_bridge()) {
    log_python_error("boot-failed detail=\"ASGI bridge\"");
    return worker::kExitBootFailed;
  }
  PyRef app = PyRef::steal(load_app(cfg_.app, cfg_.factory, &error));
  if (!app) {
    spdlog::error("event=app-load-failed app={} error={}", log::quote(cfg_.app), log::quote(error));
    return worker::kExitAppLoadFailed;
  }
  py_.app = PyRef::steal(PyObject_CallMethod(py_.bridge.get(), "prepare", "O", app.get()));
  app.reset();
  py_.timeout = PyRef::steal(PyFloat_FromDouble(cfg_.timeout_request));
  if (!py_.app) {
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
    PyRef m = PyRef::steal(PyImport_ImportModule(module));
    if (!m) PyErr_Clear();
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
    if (!stream || !call_ok(PyObject_CallMethod(stream, "flush", nullptr))) PyErr_Clear();
  }
  std::fflush(nullptr);  // nothing buffered may be written twice, by the template and a worker
  PyRef gc = PyRef::steal(PyImport_ImportModule("gc"));
  if (!gc || !call_ok(PyObject_CallMethod(gc.get(), "freeze", nullptr))) {
    log_python_error("gc-freeze-failed");
  }
  gc.reset();
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
  PyRef asyncio = PyRef::steal(PyImport_ImportModule("asyncio"));
  py_.loop = asyncio ? new_event_loop(asyncio.get()) : PyRef();
  if (py_.loop) {
    // A failure stays pending: the checks below report it.
    (void)call_ok(PyObject_CallMethod(asyncio.get(), "set_event_loop", "O", py_.loop.get()));
  }
  asyncio.reset();
  PyObject* loop = py_.loop.get();
  if (loop) py_.create_task = PyRef::steal(PyObject_GetAttrString(loop, "create_task"));
  if (loop && !handler_.init_eager_start()) {
    log_python_error("boot-failed detail=\"eager start\"");
    return worker::kExitBootFailed;
  }
  if (!loop || !py_.create_task || !handler_.init_scope()) {
    log_python_error("boot-failed detail=\"event loop\"");
    return worker::kExitBootFailed;
  }

  if (!configure_logging(false)) {
    log_python_error("boot-failed detail=\"logging\"");
    return worker::kExitBootFailed;
  }
  if (cfg_.lifespan != "off") {
    if (int code = start_lifespan(cfg_, py_, started); code != worker::kExitOk) return code;
  }
  if (!configure_logging(true)) {
    log_python_error("boot-failed detail=\"logging\"");
    return worker::kExitBootFailed;
  }
  return worker::kExitOk;
}

bool AsgiWorker::configure_logging(bool root) {
  std::string level = cfg_.log_level;
  for (char& c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (level == "TRACE") level = "DEBUG";
  return call_ok(PyObject_CallMethod(py_.bridge.get(), "configure_logging", "sO", level.c_str(),
                                     root ? Py_True : Py_False));
}

void AsgiWorker::run(uv_loop_t* loop) {
  py_.base_ctx = PyRef::steal(PyContext_CopyCurrent());
  PyRef tick_ctx = py_.base_ctx ? PyRef::steal(PyContext_Copy(py_.base_ctx.get())) : PyRef();
  bool have_ctx = static_cast<bool>(tick_ctx);
  driver_ = std::make_unique<LoopDriver>(loop, py_.loop.get(), have_ctx ? tick_ctx.get() : Py_None);
  tick_ctx.reset();  // the driver holds it
  handler_.set_driver(driver_.get());
  if (!have_ctx || !driver_->start()) {
    log_python_error("loop-failed");
    return;
  }
  if (!call_ok(PyObject_CallMethod(py_.loop.get(), "run_forever", nullptr))) {
    log_python_error("loop-failed");
  }
  driver_->stop();
}

void AsgiWorker::stop() {
  if (!call_ok(PyObject_CallMethod(py_.loop.get(), "stop", nullptr))) PyErr_Clear();
}

void AsgiWorker::finish(int64_t deadline_ns) {
  leak_.report();  // what the app holds after its last response, before its shutdown frees it
  if (py_.lifespan && py_.state) shut_lifespan(py_, deadline_ns);
  end_tasks(deadline_ns);
}

// bridge.end_tasks, as asyncio.run ends: the app's pending tasks are cancelled and awaited.
// Of the time left, the exit after it (threads, atexit) keeps a quarter, up to 1 s.
void AsgiWorker::end_tasks(int64_t deadline_ns) {
  int64_t left_ns = std::max<int64_t>(0, deadline_ns - monotonic_ns());
  left_ns -= std::min<int64_t>(1'000'000'000, left_ns / 4);
  PyRef coro = PyRef::steal(
      PyObject_CallMethod(py_.bridge.get(), "end_tasks", "d", static_cast<double>(left_ns) / 1e9));
  PyRef r =
      coro
          ? PyRef::steal(PyObject_CallMethod(py_.loop.get(), "run_until_complete", "O", coro.get()))
          : PyRef();
  coro.reset();
  if (!r) {
    log_python_error("python-exit-failed step=tasks");
    return;
  }
  long pending = PyLong_AsLong(r.get());
  r.reset();
  if (pending > 0) {
    spdlog::warn(
        "event=python-exit-timeout phase=tasks tasks={} detail=\"cancelled tasks of the app "
        "that did not end in time\"",
        pending);
  }
  PyErr_Clear();
}

bool AsgiWorker::apply_gc_settings() {
  PyRef gc = PyRef::steal(PyImport_ImportModule("gc"));
  if (!gc) return false;
  bool ok = true;
  if (!cfg_.gc_threshold.empty()) {
    long a = 0, b = 0, c = 0;
    std::sscanf(cfg_.gc_threshold.c_str(), "%ld,%ld,%ld", &a, &b, &c);
    ok = call_ok(PyObject_CallMethod(gc.get(), "set_threshold", "lll", a, b, c));
  }
  if (ok && cfg_.gc_freeze) ok = call_ok(PyObject_CallMethod(gc.get(), "freeze", nullptr));
  if (ok && cfg_.gc_collect_every > 0) {
    py_.gc_collect = PyRef::steal(PyObject_GetAttrString(gc.get(), "collect"));
  }
  return ok;
}

// --loop: uvloop is a faster asyncio loop; it drives rotor's libuv loop through the same
// LoopDriver (its own uv_loop_t is never shared, so any uvloop build is safe).
PyRef AsgiWorker::new_event_loop(PyObject* asyncio) {
  if (cfg_.loop != "asyncio") {
    PyRef uvloop = PyRef::steal(PyImport_ImportModule("uvloop"));
    if (uvloop) {
      PyRef loop = PyRef::steal(PyObject_CallMethod(uvloop.get(), "new_event_loop", nullptr));
      uvloop.reset();
      if (loop) spdlog::debug("event=event-loop kind=uvloop");
      return loop;
    }
    if (cfg_.loop == "uvloop") return PyRef();  // asked for explicitly: the ImportError stands
    PyErr_Clear();
  }
  spdlog::debug("event=event-loop kind=asyncio");
  return PyRef::steal(PyObject_CallMethod(asyncio, "new_event_loop", nullptr));
}

}  // namespace

std::unique_ptr<worker::WorkerClass> make_asgi_worker(const conf::Config& config) {
  return std::make_unique<AsgiWorker>(config);
}

}  // namespace rotor::asgi
