// --leak-report in the traced asgi worker: the C++ half of leak_report.py (run as the module
// _rotor_leak). It starts tracemalloc as the worker becomes ready, counts responses to the end
// of the warm-up, and logs the report as the worker retires. Never fatal: a failure is one
// warning line, and the worker serves on (untraced).
#pragma once

#include <cstdint>

#include "conf/config.hpp"
#include "workers/asgi/py_ref.hpp"

namespace rotor::asgi {

class LeakReport {
 public:
  // Compiles the reporter and starts tracing, `cfg.leak_report_depth` frames deep.
  void start(const conf::Config& cfg, uint64_t generation);
  // After each response: once the warm-up is served, the baseline is taken from `loop`
  // (call_soon: not inside the app's send).
  void on_response(PyObject* loop);
  // After the last response, before the app's shutdown: the report, to the log and the
  // report directory. Tracing stops.
  void report();

 private:
  void fail(const char* step);

  const conf::Config* cfg_ = nullptr;
  PyRef module_;  // null: not tracing
  uint64_t responses_ = 0;
};

}  // namespace rotor::asgi
