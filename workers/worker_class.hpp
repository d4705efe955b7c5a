// A worker class: what serves the requests inside the shared worker runtime (hello, asgi).
#pragma once

#include <uv.h>

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
  // Before anything is accepted: load the app, run its start-up. A non-zero exit code on
  // failure, with the reason logged.
  virtual int boot(uv_loop_t* loop) = 0;
  virtual http::Handler& handler() = 0;
  // Serves until stop(): drives `loop` (directly, or from another event loop).
  virtual void run(uv_loop_t* loop) = 0;
  virtual void stop() = 0;
  // After the drain, before exit: the app's shutdown.
  virtual void finish() {}
};

std::unique_ptr<WorkerClass> make_worker_class(const conf::Config& config);

}  // namespace rotor::worker
