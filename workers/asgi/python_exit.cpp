#include "workers/asgi/python_exit.hpp"

#include "workers/asgi/py_ref.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/scoreboard.hpp"
#include "workers/asgi/interpreter.hpp"

namespace rotor::asgi {

namespace {

// Of the time left, exit handlers (a telemetry flush, say) keep a quarter, up to this much,
// even when a thread never ends.
constexpr int64_t kHandlersShareMaxNs = 1000 * kNsPerMs;

int64_t ms(int64_t ns) {
  return ns / kNsPerMs;
}

// atexit handlers run in the main thread, as in Python; this thread ends the process if they
// are still running at the deadline. It logs under the GIL: the main thread's own log lines
// (its Python calls logging) are written under it too, and rotor's log sink has no lock.
class Watchdog {
 public:
  Watchdog(int64_t deadline_ns, int64_t start_ns)
      : thread_([this, deadline_ns, start_ns] { watch(deadline_ns, start_ns); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    Py_BEGIN_ALLOW_THREADS;  // the watchdog may be waiting for the GIL
    thread_.join();
    Py_END_ALLOW_THREADS;
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void watch(int64_t deadline_ns, int64_t start_ns) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto left = std::chrono::nanoseconds(std::max<int64_t>(0, deadline_ns - monotonic_ns()));
      if (cv_.wait_for(lock, left, [this] { return done_; })) return;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    bool done;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done = done_;
    }
    if (done) {  // the handlers ended while we waited for the GIL
      PyGILState_Release(gil);
      return;
    }
    spdlog::warn("event=python-exit-timeout phase=atexit waited_ms={} action=exit",
                 ms(monotonic_ns() - start_ns));
    _exit(0);
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: started once the members above exist
};

std::string join_names(PyObject* names) {
  std::string out;
  Py_ssize_t n = PyList_Check(names) ? PyList_GET_SIZE(names) : 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    const char* name = PyUnicode_AsUTF8(PyList_GET_ITEM(names, i));
    if (!name) {
      PyErr_Clear();
      continue;
    }
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

// bridge.join_threads: how many threads it waited for (-1 when it failed).
long join_threads(PyObject* bridge, int64_t start_ns, int64_t until_ns) {
  double timeout = static_cast<double>(std::max<int64_t>(0, until_ns - start_ns)) / 1e9;
  PyRef r = PyRef::steal(PyObject_CallMethod(bridge, "join_threads", "d", timeout));
  long threads = 0;
  PyObject *names = nullptr, *finished = nullptr;  // borrowed from r
  if (!r || !PyArg_ParseTuple(r.get(), "lOO", &threads, &names, &finished)) {
    r.reset();
    log_python_error("python-exit-failed step=threads");
    return -1;
  }
  if (finished != Py_True) {
    std::string alive = join_names(names);
    spdlog::warn(
        "event=python-exit-timeout phase=threads threads={} names={} waited_ms={} "
        "detail=\"gave up waiting for the app's threads at the graceful timeout\"",
        PyList_Check(names) ? PyList_GET_SIZE(names) : 0, log::quote(alive.empty() ? "-" : alive),
        ms(monotonic_ns() - start_ns));
  }
  return threads;
}

}  // namespace

void end_python(PyObject* bridge, int64_t deadline_ns) {
  int64_t start = monotonic_ns();
  int64_t handlers_share =
      std::min(kHandlersShareMaxNs, std::max<int64_t>(0, deadline_ns - start) / 4);
  long threads = join_threads(bridge, start, deadline_ns - handlers_share);
  long handlers = -1;
  {
    Watchdog watchdog(deadline_ns, start);
    PyRef r = PyRef::steal(PyObject_CallMethod(bridge, "run_exit_handlers", nullptr));
    if (r) handlers = PyLong_AsLong(r.get());
    if (!r || PyErr_Occurred()) log_python_error("python-exit-failed step=atexit");
  }
  spdlog::info("event=python-exit threads={} atexit={} waited_ms={}", threads, handlers,
               ms(monotonic_ns() - start));
}

}  // namespace rotor::asgi
