// A worker's signals, in its three stages: while the app boots a stop ends it at once; while its
// loop runs the loop's handlers act (drain, stop, reopen logs); after the loop only a fast stop
// cuts the app's shutdown short.
#pragma once

#include <uv.h>

namespace rotor::worker {

// A signal handler that ends the process at once (exit 0): a stop that arrives while a worker
// or the template is still loading the app, before anything is accepted.
void exit_at_once(int);

// Until the loop runs, TERM, INT, QUIT and USR2 end the worker at once: nothing is accepted yet,
// and a cold worker's import may take long (a stop must not wait for it, nor end in a timeout).
// Set before Python starts, which leaves SIGINT alone only when it is already handled. A USR1
// (reopen logs) waits, blocked, for the loop's handler.
void exit_on_stop_until_loop();

// The loop's handlers for TERM, INT, QUIT, USR1 and USR2; they keep no loop alive. A USR1 held
// since exit_on_stop_until_loop() reaches them once they are in place.
class LoopSignals {
 public:
  void start(uv_loop_t* loop, uv_signal_cb on_signal, void* data);

 private:
  uv_signal_t handles_[5];  // one per signal, in worker_signals.cpp's order
};

// The app's shutdown and exit run after the loop, without its handlers: a fast stop (INT, QUIT)
// ends them at once.
void exit_on_fast_stop();

}  // namespace rotor::worker
