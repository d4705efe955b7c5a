// The master's side of the control socket: what `rotor ctl` asks, answered from the master's
// own tables and the scoreboard, and carried out through the same paths as the signals (HUP,
// TTIN/TTOU, USR1, TERM/INT) and as a max-requests rotation (spawn before retire).
#include <algorithm>
#include <string>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/arbiter.hpp"
#include "supervisor/memory.hpp"

namespace rotor {
namespace {

// A limit's memory sample is this fresh or the worker is read again.
constexpr int64_t kFreshSampleNs = 2 * kSec;

double mib(uint64_t kib) {
  return static_cast<double>(kib * 10 / 1024) / 10;  // one decimal
}

double rounded(double v, double unit) {
  return static_cast<double>(static_cast<int64_t>(v / unit + 0.5)) * unit;
}

const char* worker_state(const Worker& w) {
  switch (w.phase) {
    case policy::Phase::kBooting:
      return "booting";
    case policy::Phase::kDraining:
      return "draining";
    case policy::Phase::kReady:
      break;
  }
  if (w.reason != ExitReason::kNone) return "retiring";
  return w.due_soon ? "due-soon" : "ready";
}

}  // namespace

std::string Arbiter::control_reply(std::string_view line) {
  std::string error;
  auto request = control::from_line(line, &error);
  if (!request) {
    spdlog::warn("event=control-refused error={}", log::quote(error));
    return json::dump(control::error_reply(error));
  }
  control::Decision d = control::decide(*request, control_state());
  const char* verb = control::verb_name(request->verb);
  if (!d.refusal.empty()) {
    spdlog::warn("event=control-refused command={} error={}", verb, log::quote(d.refusal));
    return json::dump(control::error_reply(d.refusal));
  }
  if (request->verb != control::Verb::kStatus && request->verb != control::Verb::kWorkers)
    spdlog::info("event=control command={}", verb);
  return json::dump(carry_out(*request, d));
}

control::State Arbiter::control_state() const {
  control::State s;
  s.desired = desired_;
  s.max_workers = conf::kMaxWorkers;
  s.stopping = stopping_;
  for (const auto& [pid, w] : children_.workers()) {
    if (w.phase == policy::Phase::kBooting)
      s.booting.push_back(pid);
    else if (w.phase == policy::Phase::kDraining || w.reason != ExitReason::kNone)
      s.leaving.push_back(pid);
    else
      s.serving.push_back(pid);
  }
  return s;
}

json::Value Arbiter::carry_out(const control::Request& r, const control::Decision& d) {
  using control::Verb;
  switch (r.verb) {
    case Verb::kStatus:
      return control::ok_reply({{"status", status_json()}});
    case Verb::kWorkers:
      return control::ok_reply({{"workers", workers_json()}});
    case Verb::kReload:
      notify_reloading();
      reload();
      return control::ok_reply({{"generation", generation_}});
    case Verb::kScale:
    case Verb::kAdd:
    case Verb::kRemove:
      set_desired(d.desired, r);
      return control::ok_reply({{"workers", desired_}});
    case Verb::kRotate: {
      json::Array pids;
      for (pid_t pid : d.rotate) {
        if (Worker* w = children_.find_pid(pid)) {
          rotate_worker(*w);
          pids.emplace_back(static_cast<int64_t>(pid));
        }
      }
      return control::ok_reply({{"rotating", std::move(pids)}});
    }
    case Verb::kReopen:
      reopen_logs();
      return control::ok_reply();
    case Verb::kStop:
      begin_stop(!r.fast);
      return control::ok_reply({{"mode", r.fast ? "fast" : "graceful"}});
  }
  return control::error_reply("unknown command");
}

// As TTIN/TTOU, by a number: the planner spawns or drains toward it on the next sweep.
void Arbiter::set_desired(int target, const control::Request& r) {
  scale_since_reload_ += target - desired_;
  desired_ = target;
  spdlog::info("event=scale workers={} signal=- command={} n={}", desired_,
               control::verb_name(r.verb), r.n);
}

// As a max-requests rotation: the worker has a reason to leave, the planner starts its
// successor (within --max-concurrent-rotations) and drains it once the successor is ready.
void Arbiter::rotate_worker(Worker& w) {
  w.reason = ExitReason::kRotate;
  const Slot& s = scoreboard_->slot(w.slot);
  uint64_t requests = s.token.load(std::memory_order_acquire) == w.id
                          ? s.requests.load(std::memory_order_relaxed)
                          : 0;
  spdlog::info("event=control-rotate pid={} requests={} limit={}", w.pid, requests,
               w.request_limit);
}

json::Value Arbiter::status_json() const {
  int64_t now = monotonic_ns();
  uint64_t served = served_retired_;
  json::Array listeners;
  for (const auto& l : listeners_) listeners.emplace_back(l.address);
  for (const auto& [pid, w] : children_.workers()) {
    const Slot& s = scoreboard_->slot(w.slot);
    if (s.token.load(std::memory_order_acquire) == w.id)
      served += s.requests.load(std::memory_order_relaxed);
  }
  json::Object config{{"app", cfg_.app},
                      {"worker_class", cfg_.worker_class},
                      {"workers", cfg_.workers},
                      {"max_requests", cfg_.max_requests},
                      {"max_requests_jitter", cfg_.max_requests_jitter},
                      {"max_concurrent_rotations", cfg_.max_concurrent_rotations},
                      {"max_rss_mb", cfg_.max_rss_mb},
                      {"max_private_mb", cfg_.max_private_mb},
                      {"max_lifetime", cfg_.max_lifetime},
                      {"timeout", cfg_.timeout},
                      {"graceful_timeout", cfg_.graceful_timeout}};
  return json::Object{{"version", ROTOR_VERSION},
                      {"master_pid", static_cast<int64_t>(master_pid_)},
                      {"generation", generation_},
                      {"generation_in_force", cfg_generation_},
                      {"uptime_s", rounded(seconds(now - started_ns_), 0.1)},
                      {"workers", static_cast<int64_t>(children_.workers().size())},
                      {"desired", desired_},
                      {"stopping", stopping_},
                      {"served", served},
                      {"listeners", std::move(listeners)},
                      {"config", std::move(config)}};
}

json::Value Arbiter::workers_json() {
  int64_t now = monotonic_ns();
  json::Array out;
  for (auto& [pid, w] : children_.workers()) out.push_back(worker_json(w, now));
  return out;
}

json::Value Arbiter::worker_json(Worker& w, int64_t now) {
  const Slot& s = scoreboard_->slot(w.slot);
  bool own = s.token.load(std::memory_order_acquire) == w.id;
  uint64_t requests = own ? s.requests.load(std::memory_order_relaxed) : 0;
  double ready_s = w.ready_ns > 0 ? seconds(now - w.ready_ns) : 0;
  // The limits' sample when it is fresh (only --max-private reads smaps_rollup), else now.
  MemoryUsage m = w.last_memory;
  bool fresh =
      cfg_.max_private_mb > 0 && m.rss_kib > 0 && now - w.memory_checked_ns < kFreshSampleNs;
  if (!fresh) m = read_memory(w.pid).value_or(MemoryUsage{});
  return json::Object{
      {"pid", static_cast<int64_t>(w.pid)},
      {"slot", static_cast<uint64_t>(w.slot)},
      {"generation", w.generation},
      {"state", worker_state(w)},
      {"reason", exit_reason_name(w.reason)},
      {"requests", requests},
      {"limit", w.request_limit},
      {"req_per_s", ready_s > 0.5 ? rounded(static_cast<double>(requests) / ready_s, 0.1) : 0.0},
      {"in_flight", own ? s.in_flight.load(std::memory_order_relaxed) : 0U},
      {"connections", own ? s.connections.load(std::memory_order_relaxed) : 0U},
      {"rss_mib", mib(m.rss_kib)},
      {"private_mib", mib(m.private_kib)},
      {"age_s", rounded(seconds(now - w.started_ns), 0.1)},
      {"mode", w.template_pid ? "template" : "cold"}};
}

}  // namespace rotor
