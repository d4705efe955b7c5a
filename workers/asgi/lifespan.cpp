#include "workers/asgi/lifespan.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "log/log.hpp"
#include "supervisor/scoreboard.hpp"
#include "workers/asgi/interpreter.hpp"
#include "workers/worker_class.hpp"

namespace rotor::asgi {

namespace {

// The lifespan startup ends before the master's --timeout would abort a worker that is not
// ready (counted from `started`): a share of it, up to 1 s, is left for the worker to say so
// and exit. None (no bound) without a --timeout.
PyRef startup_bound(const conf::Config& cfg, int64_t started) {
  if (cfg.timeout <= 0) return PyRef::borrow(Py_None);
  double margin = std::min(1.0, cfg.timeout / 10);
  double elapsed = static_cast<double>(monotonic_ns() - started) / 1e9;
  return PyRef::steal(PyFloat_FromDouble(std::max(0.0, cfg.timeout - margin - elapsed)));
}

bool timed_out(PyObject* lifespan) {
  PyRef t = PyRef::steal(PyObject_GetAttrString(lifespan, "timed_out"));
  if (!t) PyErr_Clear();
  return t.get() == Py_True;
}

// As uvicorn says it (at info), with what the app raised at debug.
void log_unsupported(PyObject* lifespan) {
  spdlog::info(
      "event=lifespan-unsupported detail=\"ASGI 'lifespan' protocol appears unsupported\"");
  PyRef why = PyRef::steal(PyObject_GetAttrString(lifespan, "unsupported"));
  const char *summary = nullptr, *tb = nullptr;
  if (!why || !PyArg_ParseTuple(why.get(), "ss", &summary, &tb)) {
    PyErr_Clear();
  } else if (*summary && spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("event=lifespan-unsupported error={}", log::quote(summary));
    std::fputs(tb, stderr);
  }
}

// Runs bridge.Lifespan's startup: its failure (a str), None, or null with a Python error set.
PyRef run_startup(const conf::Config& cfg, AppObjects& py, int64_t started) {
  py.state = PyRef::steal(PyDict_New());
  py.lifespan = PyRef::steal(PyObject_CallMethod(py.bridge.get(), "Lifespan", "OsO", py.app.get(),
                                                 cfg.lifespan.c_str(), py.state.get()));
  PyRef bound = startup_bound(cfg, started);
  PyRef coro =
      py.lifespan && bound
          ? PyRef::steal(PyObject_CallMethod(py.lifespan.get(), "startup", "O", bound.get()))
          : PyRef();
  bound.reset();
  return coro ? PyRef::steal(
                    PyObject_CallMethod(py.loop.get(), "run_until_complete", "O", coro.get()))
              : PyRef();
}

}  // namespace

int start_lifespan(const conf::Config& cfg, AppObjects& py, int64_t started) {
  PyRef failed = run_startup(cfg, py, started);
  if (!failed) {
    log_python_error("boot-failed detail=\"lifespan\"");
    return worker::kExitBootFailed;
  }
  if (timed_out(py.lifespan.get())) {
    // Exits as a boot failure: the first generation's ends the master (exit 3), a later
    // one's is backed off. Not left to the heartbeat's SIGABRT, which would be retried.
    spdlog::error(
        "event=lifespan-timeout timeout_s={} action=exit detail=\"the app's lifespan startup "
        "did not finish within --timeout\"",
        cfg.timeout);
    return worker::kExitBootFailed;
  }
  if (failed.get() != Py_None) {
    spdlog::error("event=boot-failed error={}", log::quote(PyUnicode_AsUTF8(failed.get())));
    return worker::kExitBootFailed;
  }
  failed.reset();
  PyRef supported = PyRef::steal(PyObject_GetAttrString(py.lifespan.get(), "supported"));
  if (supported.get() != Py_True) {
    if (cfg.lifespan == "on") {
      spdlog::error("event=boot-failed error=\"--lifespan on: the app does not support it\"");
      return worker::kExitBootFailed;
    }
    py.state.reset();  // no lifespan: no state in the scope
    log_unsupported(py.lifespan.get());
  }
  return worker::kExitOk;
}

void shut_lifespan(AppObjects& py, int64_t deadline_ns) {
  PyRef coro = PyRef::steal(PyObject_CallMethod(py.lifespan.get(), "shutdown", nullptr));
  PyRef asyncio = PyRef::steal(PyImport_ImportModule("asyncio"));
  double left = static_cast<double>(std::max<int64_t>(0, deadline_ns - monotonic_ns())) / 1e9;
  PyRef bounded =
      coro && asyncio
          ? PyRef::steal(PyObject_CallMethod(asyncio.get(), "wait_for", "Od", coro.get(), left))
          : PyRef();
  PyRef r = bounded ? PyRef::steal(PyObject_CallMethod(py.loop.get(), "run_until_complete", "O",
                                                       bounded.get()))
                    : PyRef();
  if (!r) log_python_error("lifespan-shutdown-failed");
}

}  // namespace rotor::asgi
