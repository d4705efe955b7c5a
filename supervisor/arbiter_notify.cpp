// The master's side of sd_notify: systemd hears when the workers are ready, when a HUP starts
// and ends, when a stop begins, how things stand, and that the loop is alive (the watchdog).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/arbiter.hpp"

namespace rotor {

namespace {

std::string take(conf::Environment& env, const char* key) {
  auto it = env.find(key);
  std::string value = it == env.end() ? "" : it->second;
  if (it != env.end()) env.erase(it);
  unsetenv(key);
  return value;
}

}  // namespace

// The variables are ours alone, as sd_notify(unset_environment=1) has it: a worker's app that
// called sd_notify itself would tell systemd it is ready, or stopping, in the master's name.
void Arbiter::open_notify() {
  std::string address = take(env_, "NOTIFY_SOCKET");
  std::string usec = take(env_, "WATCHDOG_USEC");
  std::string pid = take(env_, "WATCHDOG_PID");
  if (address.empty()) return;
  std::string error;
  if (!notify_socket_.open(address, &error)) {
    spdlog::error("event=notify-failed socket={} error={} detail=\"systemd is not told\"",
                  log::quote(address), log::quote(error));
    return;
  }
  notify_address_ = address;
  int64_t watchdog_ns = sd::watchdog_interval_ns(usec, pid, master_pid_);
  notices_.emplace(master_pid_, watchdog_ns);
  spdlog::info("event=notify socket={} watchdog_ms={}", log::quote(address),
               watchdog_ns / kNsPerMs);
}

void Arbiter::notify(const std::string& message) {
  std::string error;
  if (message.empty() || notify_socket_.send(message, &error) || notify_failed_) return;
  notify_failed_ = true;  // once: systemd may be gone for good, and the log must not fill
  spdlog::error(
      "event=notify-failed socket={} error={} detail=\"rotor serves on; later failures are not "
      "logged\"",
      log::quote(notify_address_), log::quote(error));
}

sd::Snapshot Arbiter::notify_snapshot() const {
  sd::Snapshot s;
  s.desired = desired_;
  s.requests = served_retired_;
  s.generation = generation_;
  s.in_force = cfg_generation_;
  s.failed = failed_generation_;
  for (const auto& [pid, w] : children_.workers()) {
    const Slot& slot = scoreboard_->slot(w.slot);
    if (slot.token.load(std::memory_order_acquire) == w.id)
      s.requests += slot.requests.load(std::memory_order_relaxed);
    if (w.phase != policy::Phase::kReady || w.drain_ns) continue;
    ++s.serving;
    if (w.generation >= cfg_generation_) ++s.ready;
  }
  return s;
}

void Arbiter::notify_tick() {
  if (notices_) notify(notices_->tick(notify_snapshot(), monotonic_ns()));
}

void Arbiter::notify_reloading() {
  if (notices_) notify(notices_->reloading(notify_snapshot(), monotonic_ns()));
}

void Arbiter::notify_stopping() {
  if (notices_) notify(notices_->stopping(notify_snapshot(), monotonic_ns()));
}

int64_t Arbiter::notify_due_ms(int64_t timeout_ms) const {
  int64_t due = notices_ ? notices_->next_watchdog_ns() : 0;
  if (due == 0) return timeout_ms;
  return std::clamp<int64_t>((due - monotonic_ns() + kNsPerMs - 1) / kNsPerMs, 0, timeout_ms);
}

}  // namespace rotor
