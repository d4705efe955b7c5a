// The master's side of /metrics: a snapshot of the scoreboard (every claimed slot, so that a
// worker whose template has not reported it yet counts too), the master's own counts and the
// reaped workers' totals, for metrics::render.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "supervisor/arbiter.hpp"

namespace rotor {

namespace {

// A worker's memory is sampled at most this often for /metrics.
constexpr int64_t kMemoryMaxAgeNs = 1 * kSec;

template <size_t N>
metrics::Histogram histogram(const std::array<int64_t, N>& bounds_ns,
                             const std::array<uint64_t, N + 1>& counts, uint64_t sum_ns) {
  metrics::Histogram h;
  for (int64_t b : bounds_ns) h.bounds.push_back(static_cast<double>(b) / 1e9);
  h.counts.assign(counts.begin(), counts.end());
  h.sum = static_cast<double>(sum_ns) / 1e9;
  return h;
}

// The accept queue of a listening TCP socket: Linux reports its length as tcpi_unacked and
// its size (the backlog) as tcpi_sacked.
bool listen_queue(int fd, metrics::ListenerSample& out) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  out.queue = info.tcpi_unacked;
  out.queue_max = info.tcpi_sacked;
  return true;
}

metrics::ProcessSample own_process(double start_time_seconds) {
  metrics::ProcessSample p;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  p.cpu_seconds = secs(usage.ru_utime) + secs(usage.ru_stime);
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (statm >> size >> resident) {
    p.virtual_bytes = size * page;
    p.resident_bytes = resident * page;
  }
  p.start_time_seconds = start_time_seconds;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++p.open_fds;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) p.max_fds = lim.rlim_cur;
  return p;
}

}  // namespace

void Arbiter::release_slot(size_t slot, uint64_t id) {
  Slot& s = scoreboard_->slot(slot);
  if (s.token.load(std::memory_order_acquire) == id) metrics_.retired.add(s.request_counters);
  metrics_.memory.erase(slot);
  scoreboard_->release(slot);
}

metrics::Snapshot Arbiter::metrics_snapshot() {
  metrics::Snapshot m;
  m.version = ROTOR_VERSION;
  add_request_metrics(m);
  add_worker_metrics(m);
  add_master_metrics(m);
  return m;
}

void Arbiter::add_request_metrics(metrics::Snapshot& m) const {
  RequestTotals t = metrics_.retired;
  for (size_t i = 0, n = scoreboard_->high_water(); i < n; ++i) {
    const Slot& s = scoreboard_->slot(i);
    if (s.token.load(std::memory_order_acquire) == 0) continue;
    t.add(s.request_counters);
    m.in_flight += s.in_flight.load(std::memory_order_relaxed);
    m.connections += s.connections.load(std::memory_order_relaxed);
  }
  m.requests = t.requests();
  for (size_t c = 0; c < 5; ++c) m.responses_by_class[c] = t.by_status_class[c];
  m.request_duration = histogram(kRequestDurationBoundsNs, t.duration_buckets, t.duration_sum_ns);
  m.spawn_duration = histogram(kSpawnDurationBoundsNs, metrics_.spawn_buckets,
                               static_cast<uint64_t>(metrics_.spawn_sum_ns));
}

void Arbiter::add_worker_metrics(metrics::Snapshot& m) {
  int64_t now = monotonic_ns();
  for (auto state :
       {WorkerState::kBooting, WorkerState::kReady, WorkerState::kRetiring, WorkerState::kDraining})
    m.workers_by_state[to_string(state)] = 0;
  for (size_t i = 0, n = scoreboard_->high_water(); i < n; ++i) {
    const Slot& s = scoreboard_->slot(i);
    uint64_t token = s.token.load(std::memory_order_acquire);
    if (token == 0) continue;
    auto state = static_cast<WorkerState>(s.state.load(std::memory_order_relaxed));
    if (state != WorkerState::kFree && state <= WorkerState::kDraining)
      ++m.workers_by_state[to_string(state)];
    const Worker* w = children_.find(token);
    if (!w) continue;
    metrics::WorkerSample x;
    x.slot = i;
    x.generation = w->generation;
    x.requests = s.requests.load(std::memory_order_relaxed);
    x.request_limit = w->request_limit;
    x.age_seconds = seconds(now - w->started_ns);
    if (w->pid > 0) {
      auto& cached = metrics_.memory[i];
      if (cached.worker_id != w->id || now - cached.taken_ns > kMemoryMaxAgeNs) {
        cached = {w->id, now, read_memory(w->pid).value_or(MemoryUsage{})};
      }
      x.resident_bytes = cached.usage.rss_kib << 10;
      x.private_bytes = cached.usage.private_kib << 10;
    }
    m.workers.push_back(x);
  }
  add_exit_metrics(m);
  m.desired_workers = static_cast<uint64_t>(desired_);
}

void Arbiter::add_exit_metrics(metrics::Snapshot& m) const {
  for (ExitReason r : kExitReasons) {
    auto it = metrics_.exits.find(r);
    m.exits_by_reason[exit_reason_name(r)] = it == metrics_.exits.end() ? 0 : it->second;
  }
}

void Arbiter::add_master_metrics(metrics::Snapshot& m) const {
  for (const auto& l : listeners_) {
    metrics::ListenerSample x;
    x.address = l.address;
    if (!l.is_unix && listen_queue(l.fd, x)) m.listeners.push_back(x);
  }
  m.generation = generation_;
  m.generation_in_force = cfg_generation_;
  m.reloads_succeeded = metrics_.reloads_succeeded;
  m.reloads_failed = metrics_.reloads_failed;
  for (const auto& [gen, trend] : memory_trends_) {
    if (auto e = trend.estimate()) m.growth_bytes_per_request[gen] = e->kib_per_request * 1024;
  }
  m.ready = ready_for_traffic();
  m.stopping = stop_pending();
  m.process = own_process(metrics_.start_time_seconds);
}

}  // namespace rotor
