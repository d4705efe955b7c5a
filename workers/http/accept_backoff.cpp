#include "workers/http/accept_backoff.hpp"

#include <algorithm>

namespace rotor::http {

AcceptBackoff::Step AcceptBackoff::on_failure(uint64_t now_ms) {
  pause_ms_ = pause_ms_ == 0 ? kFirstPauseMs : std::min(pause_ms_ * 2, kMaxPauseMs);
  ++unlogged_;
  Step step{pause_ms_, false, 0};
  if (!ever_logged_ || now_ms - logged_ms_ >= kLogIntervalMs) {
    step.log = true;
    step.count = unlogged_;
    unlogged_ = 0;
    logged_ms_ = now_ms;
    ever_logged_ = true;
  }
  return step;
}

}  // namespace rotor::http
