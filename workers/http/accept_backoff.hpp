// What a worker does when accept() fails for want of a resource (EMFILE, ENFILE, ENOBUFS,
// ENOMEM): the listening socket stays readable, so retrying at once would spin the loop and
// write a log line per try. It stops accepting for a while instead (longer while the failures
// go on, as nginx does) and says so at most once per interval, with the count. A pure decision
// with the time passed in; the server wires it to its timers.
#pragma once

#include <cstdint>

namespace rotor::http {

class AcceptBackoff {
 public:
  static constexpr uint64_t kFirstPauseMs = 100;
  static constexpr uint64_t kMaxPauseMs = 1000;
  static constexpr uint64_t kLogIntervalMs = 1000;

  struct Step {
    uint64_t pause_ms;  // stop accepting for this long
    bool log;           // write the line now
    uint64_t count;     // failures since the last line (when log)
  };

  // accept() failed at `now_ms`.
  Step on_failure(uint64_t now_ms);
  // accept() gave a connection: the next failure starts a new episode (but still waits for
  // the log interval).
  void on_success() { pause_ms_ = 0; }

 private:
  uint64_t pause_ms_ = 0;  // of the last failure in this episode; 0 = none yet
  uint64_t unlogged_ = 0;
  uint64_t logged_ms_ = 0;
  bool ever_logged_ = false;
};

}  // namespace rotor::http
