// The Prometheus text exposition (format 0.0.4) of what the master knows: a pure rendering of
// plain structs, filled by the arbiter on each scrape, so that names, labels and histogram
// shapes are unit-tested without a server.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rotor::metrics {

// Buckets as counted (not cumulative): counts has one more entry than bounds (+Inf).
struct Histogram {
  std::vector<double> bounds;  // upper bounds, seconds
  std::vector<uint64_t> counts;
  double sum = 0;  // seconds
};

struct WorkerSample {
  size_t slot = 0;
  uint64_t generation = 0;
  uint64_t requests = 0;
  uint64_t request_limit = 0;  // 0 = none
  double age_seconds = 0;
  uint64_t resident_bytes = 0;  // 0 = not known
  uint64_t private_bytes = 0;   // 0 = not known
};

struct ListenerSample {
  std::string address;
  uint32_t queue = 0;      // connections waiting to be accepted
  uint32_t queue_max = 0;  // the backlog
};

struct ProcessSample {
  double cpu_seconds = 0;
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  double start_time_seconds = 0;  // since the epoch
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;
};

struct Snapshot {
  std::string version;
  uint64_t requests = 0;  // answered since start, reaped workers included
  uint64_t in_flight = 0;
  uint64_t connections = 0;
  uint64_t responses_by_class[5] = {};  // 1xx..5xx
  Histogram request_duration;
  Histogram spawn_duration;
  std::map<std::string, uint64_t> workers_by_state;  // every state, zeros included
  std::map<std::string, uint64_t> exits_by_reason;   // every reason, zeros included
  uint64_t desired_workers = 0;
  std::vector<WorkerSample> workers;
  std::vector<ListenerSample> listeners;  // TCP only: a unix socket has no TCP_INFO
  uint64_t generation = 0;                // the newest asked for
  uint64_t generation_in_force = 0;
  uint64_t reloads_succeeded = 0;
  uint64_t reloads_failed = 0;
  std::map<uint64_t, double> growth_bytes_per_request;  // by generation, the live ones
  bool ready = false;
  bool stopping = false;
  ProcessSample process;
};

std::string render(const Snapshot& s);

// A label value as the format wants it: backslash, double quote and newline escaped.
std::string escape_label(const std::string& value);

}  // namespace rotor::metrics
