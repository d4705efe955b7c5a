// App calls (HTTP requests, WebSocket sessions) not yet returned: a response may be complete
// (and its request forgotten) while the app still runs work after it, such as Starlette's
// BackgroundTasks. The drain stops the worker's loop only once none is left.
#pragma once

#include <cstddef>
#include <functional>
#include <utility>

namespace rotor::asgi {

class AppCalls {
 public:
  explicit AppCalls(std::function<void()> stop_loop) : stop_loop_(std::move(stop_loop)) {}

  void started() { ++running_; }
  // An app call has returned; the last one ends a drain that waited for it. May run with the
  // app's exception pending (the eager start): it is kept for the caller.
  void ended() {
    if (running_ > 0) --running_;
    if (running_ == 0 && stop_when_idle_) stop_now();
  }
  // Stops the loop now if no call runs, else once the last one has returned.
  void stop_when_idle();

 private:
  void stop_now();

  size_t running_ = 0;
  bool stop_when_idle_ = false;
  std::function<void()> stop_loop_;
};

}  // namespace rotor::asgi
