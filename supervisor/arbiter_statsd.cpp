// The master's statsd (--statsd-host): what changed since the last datagrams, once a second.
#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "supervisor/arbiter.hpp"

namespace rotor {

namespace {

constexpr int64_t kStatsdIntervalNs = 1'000'000'000;
// Below the smallest MTU that matters (a statsd collector reads whole datagrams only).
constexpr size_t kStatsdDatagramBytes = 1024;

}  // namespace

void Arbiter::set_statsd(StatsdSink sink) {
  statsd_ = std::move(sink);
  statsd_format_ = {statsd::normalize_prefix(cfg_.statsd_prefix),
                    statsd::dogstatsd_suffix(cfg_.dogstatsd_tags)};
  spdlog::info("event=statsd address={} prefix={}", log::quote(statsd_.address()),
               log::quote(statsd_format_.prefix));
}

void Arbiter::statsd_tick(bool last) {
  if (!statsd_.is_open()) return;
  int64_t now = monotonic_ns();
  if (!last && now < statsd_due_ns_) return;
  statsd_due_ns_ = now + kStatsdIntervalNs;
  metrics::Snapshot m;
  add_request_metrics(m);
  add_exit_metrics(m);
  auto lines = statsd::lines(statsd_sent_, m, children_.workers().size(), statsd_format_);
  size_t lost = statsd_.send(statsd::pack(lines, kStatsdDatagramBytes));
  // A collector that is down refuses datagrams until it is back: said once, not every second.
  if (lost > 0 && !statsd_warned_) {
    spdlog::warn(
        "event=statsd-send-failed address={} lost={} detail=\"said once; metrics are "
        "lost until the collector is back\"",
        log::quote(statsd_.address()), lost);
    statsd_warned_ = true;
  }
  statsd_sent_ = std::move(m);
}

}  // namespace rotor
