#include "workers/asgi/app_calls.hpp"

#include <spdlog/spdlog.h>

#include "workers/asgi/py_ref.hpp"

namespace rotor::asgi {

void AppCalls::stop_now() {
  stop_when_idle_ = false;
  ErrorAside pending;
  stop_loop_();
}

void AppCalls::stop_when_idle() {
  if (running_ == 0) {
    stop_loop_();
    return;
  }
  // Like uvicorn's "Waiting for background tasks to complete"; --graceful-timeout bounds it.
  spdlog::info("event=drain-wait app_calls={}", running_);
  stop_when_idle_ = true;
}

}  // namespace rotor::asgi
