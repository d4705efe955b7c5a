#include "supervisor/sd_notices.hpp"

#include <charconv>

namespace rotor::sd {

namespace {

bool parse_positive(const std::string& text, int64_t* out) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v <= 0) return false;
  *out = v;
  return true;
}

// The new generation is in (or its import failed and the one in force serves on) and the
// generation in force has all its workers ready.
bool settled(const Snapshot& s) {
  return s.ready >= s.desired && (s.in_force == s.generation || s.failed == s.generation);
}

}  // namespace

int64_t watchdog_interval_ns(const std::string& usec, const std::string& pid, pid_t self) {
  int64_t timeout_us = 0, watched = 0;
  if (!parse_positive(usec, &timeout_us)) return 0;
  // systemd names the process the watchdog is for; a child that inherited it must not ping.
  if (!pid.empty() && (!parse_positive(pid, &watched) || watched != self)) return 0;
  return timeout_us * 1000 / 2;
}

std::string Notices::status(const Snapshot& s) const {
  using std::to_string;
  std::string text = to_string(s.serving) + " of " + to_string(s.desired) + " workers ready, " +
                     to_string(s.requests) + " requests served, generation " +
                     to_string(s.in_force);
  if (phase_ == Phase::kStarting) return "starting: " + text;
  if (phase_ == Phase::kReloading)
    return "reloading to generation " + to_string(s.generation) + ": " + text;
  if (phase_ == Phase::kStopping) return "stopping: " + text;
  if (s.failed == s.generation && s.generation > s.in_force)
    return text + " (the reload to generation " + to_string(s.failed) + " failed)";
  return text;
}

void Notices::add_status(std::string& out, const Snapshot& s, int64_t now_ns) {
  last_status_ = status(s);
  status_ns_ = now_ns;
  status_sent_ = true;
  out += "STATUS=" + last_status_ + "\n";
}

std::string Notices::reloading(const Snapshot& s, int64_t now_ns) {
  // A HUP before the first READY: systemd is still starting us; READY tells it the rest.
  if (phase_ != Phase::kReady) return "";
  phase_ = Phase::kReloading;
  std::string out = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(now_ns / 1000) + "\n";
  add_status(out, s, now_ns);
  return out;
}

std::string Notices::stopping(const Snapshot& s, int64_t now_ns) {
  if (phase_ == Phase::kStopping) return "";
  phase_ = Phase::kStopping;
  std::string out = "STOPPING=1\n";
  add_status(out, s, now_ns);
  return out;
}

std::string Notices::tick(const Snapshot& s, int64_t now_ns) {
  std::string out;
  bool was_starting = phase_ == Phase::kStarting;
  if ((was_starting || phase_ == Phase::kReloading) && settled(s)) {
    phase_ = Phase::kReady;
    out += "READY=1\n";
    // For a rotor started by a wrapper that forks (with NotifyAccess=all).
    if (was_starting) out += "MAINPID=" + std::to_string(main_pid_) + "\n";
    add_status(out, s, now_ns);
  } else if (!status_sent_ ||
             (now_ns - status_ns_ >= kStatusIntervalNs && status(s) != last_status_)) {
    add_status(out, s, now_ns);
  }
  if (watchdog_ns_ > 0 && now_ns >= next_ping_ns_) {
    out += "WATCHDOG=1\n";
    next_ping_ns_ = now_ns + watchdog_ns_;
  }
  if (!out.empty()) out.pop_back();  // the last newline
  return out;
}

}  // namespace rotor::sd
