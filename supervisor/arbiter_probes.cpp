// The master's probes (/healthz, /readyz, /metrics on --metrics-bind) and the shutdown delay:
// on TERM, rotor first reports itself not ready while it keeps serving, so that a load
// balancer stops sending before the listeners close.
#include <time.h>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/arbiter.hpp"

namespace rotor {

namespace {

constexpr std::string_view kText = "text/plain; charset=utf-8";
constexpr std::string_view kExposition = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

void Arbiter::serve_probes(Listener listener) {
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  metrics_.start_time_seconds = static_cast<double>(wall.tv_sec) + wall.tv_nsec / 1e9;
  spdlog::info("event=metrics-listening address={}", log::quote(listener.address));
  probe_server_ = std::make_unique<ProbeServer>(
      std::move(listener), [this](const probe::Head& head) { return answer_probe(head); });
}

std::string Arbiter::answer_probe(const probe::Head& head) {
  bool head_only = head.method == "HEAD";
  if (head.method != "GET" && !head_only) {
    return probe::response(405, kText, "GET or HEAD\n", false, "Allow: GET, HEAD\r\n");
  }
  if (head.path == "/metrics") {
    return probe::response(200, kExposition, metrics::render(metrics_snapshot()), head_only);
  }
  if (head.path == "/healthz") return probe::response(200, kText, "ok\n", head_only);
  if (head.path == "/readyz") {
    if (ready_for_traffic()) return probe::response(200, kText, "ready\n", head_only);
    return probe::response(503, kText, stop_pending() ? "stopping\n" : "no worker ready\n",
                           head_only);
  }
  return probe::response(404, kText, "/metrics, /healthz or /readyz\n", head_only);
}

// A worker serves (ready, not told to leave) and no stop is pending.
bool Arbiter::ready_for_traffic() const {
  if (stop_pending()) return false;
  for (const auto& [pid, w] : children_.workers()) {
    if (w.phase == policy::Phase::kReady && !w.drain_ns) return true;
  }
  return false;
}

// TERM with --shutdown-delay: not ready at once, serving on; a second TERM stops now, as INT
// and QUIT (fast) always do.
void Arbiter::on_stop_signal(StopKind kind) {
  bool graceful = kind == StopKind::kGraceful;
  if (graceful && cfg_.shutdown_delay > 0 && !stop_pending()) {
    shutdown_delay_until_ns_ = monotonic_ns() + static_cast<int64_t>(cfg_.shutdown_delay * 1e9);
    spdlog::info("event=shutdown-delay seconds={} workers={}", cfg_.shutdown_delay,
                 children_.workers().size());
    notify_stopping();
    return;
  }
  if (shutdown_delay_until_ns_ && !stopping_) {
    spdlog::info("event=shutdown-delay-cut signal={}", graceful ? "TERM" : "fast");
  }
  begin_stop(graceful);
}

void Arbiter::end_shutdown_delay_when_due() {
  if (!shutdown_delay_until_ns_ || stopping_ || monotonic_ns() < shutdown_delay_until_ns_) return;
  begin_stop(true);
}

}  // namespace rotor
