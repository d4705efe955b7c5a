// statsd lines from two snapshots of the master's metrics, under gunicorn's names where they map
// (gunicorn.requests, gunicorn.request.duration, gunicorn.request.status.*, gunicorn.workers), so
// that dashboards made for gunicorn keep working. Pure: the sender and the clock are elsewhere.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "supervisor/metrics_text.hpp"

namespace rotor::statsd {

struct Format {
  std::string prefix;  // "" or "name." (see normalize_prefix)
  std::string tags;    // dogstatsd: "" or "|#k:v,k2:v2"
};

// gunicorn's rule: a prefix gets exactly one trailing dot ("app" and "app.." both give "app.").
std::string normalize_prefix(const std::string& prefix);
// "k:v,k2" -> "|#k:v,k2" (spaces around items dropped); "" -> "".
std::string dogstatsd_suffix(const std::string& tags);

// The lines for what changed from `before` to `now`: counters as deltas (a counter that went back,
// which the master never lets happen, sends nothing), the request durations as one timing per
// histogram bucket that grew (its midpoint, in ms, sampled at 1/delta so statsd counts every
// request), and the gauges as they are.
std::vector<std::string> lines(const metrics::Snapshot& before, const metrics::Snapshot& now,
                               size_t workers, const Format& format);

// Lines joined with '\n' into datagrams of at most `max_bytes` (a line longer than that goes
// alone).
std::vector<std::string> pack(const std::vector<std::string>& lines, size_t max_bytes);

}  // namespace rotor::statsd
