// A worker class: what serves the requests inside the shared worker runtime (hello, asgi).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

#include "conf/config.hpp"
#include "workers/http/server.hpp"

namespace rotor::worker {

// Exit codes of a worker process, read by the master.
constexpr int kExitOk = 0;
constexpr int kExitBootFailed = 3;
constexpr int kExitAppLoadFailed = 4;  // gunicorn's APP_LOAD_ERROR

class WorkerClass {
 public:
  virtual ~WorkerClass() = default;
  // Whether preload() is worth a template process (Python apps: the import is the cost).
  virtual bool preloads() const { return false; }
  // The part of the start-up that can run once in the template, before fork: start the
  // interpreter, import the app. No event loop and no thread may exist afterwards. Called by
  // boot() itself when nothing was preloaded.
  virtual int preload() { return kExitOk; }
  // Around each fork from the template: the language runtime's fork hooks.
  virtual void before_fork() {}
  virtual void after_fork(bool child) { (void)child; }
  // Before anything is accepted: load the app if not preloaded, run its start-up. A non-zero
  // exit code on failure, with the reason logged.
  virtual int boot(uv_loop_t* loop) = 0;
  virtual http::Handler& handler() = 0;
  // Before run(), in the worker the master chose for --leak-report (supervisor/leak_trace.hpp):
  // trace the app's memory from now on and report its growth as the worker ends (finish);
  // `generation` names the app's code in the report.
  virtual void trace_leaks(uint64_t generation) { (void)generation; }
  // Serves until stop(): drives `loop` (directly, or from another event loop).
  virtual void run(uv_loop_t* loop) = 0;
  virtual void stop() = 0;
  // The drain is over (every connection closed): stop() once the app's calls still running
  // (work after the response, such as background tasks) have returned. The runtime's
  // --graceful-timeout bounds the wait.
  virtual void stop_when_idle() { stop(); }
  // After the drain, before exit: the app's shutdown, until `deadline_ns` (monotonic).
  virtual void finish(int64_t deadline_ns) { (void)deadline_ns; }
  // Last, whatever ended the worker: what the language runtime does as its process ends (wait
  // for the app's threads, run its exit handlers, flush its output), until `deadline_ns`.
  virtual void end(int64_t deadline_ns) { (void)deadline_ns; }
};

std::unique_ptr<WorkerClass> make_worker_class(const conf::Config& config);

// Whether the configured worker class loads an app worth a template (WorkerClass::preloads),
// answered without making one (the master never holds Python).
bool preloads(const conf::Config& config);

}  // namespace rotor::worker
