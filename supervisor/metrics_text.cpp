#include "supervisor/metrics_text.hpp"

#include <cmath>

#include <fmt/format.h>

namespace rotor::metrics {

namespace {

// Integers print as integers; other values in the shortest form that reads back the same.
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(const std::string& name, double value, const std::string& labels = "") {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += " " + number(value) + "\n";
  }
  void sample(const std::string& name, uint64_t value, const std::string& labels = "") {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += fmt::format(" {}\n", value);
  }
  void gauge(const char* name, const char* help, double value) {
    family(name, "gauge", help);
    sample(name, value);
  }
  void counter(const char* name, const char* help, double value) {
    family(name, "counter", help);
    sample(name, value);
  }
  void histogram(const char* name, const char* help, const Histogram& h) {
    family(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.counts.size(); ++i) {
      cumulative += h.counts[i];
      std::string le = i < h.bounds.size() ? number(h.bounds[i]) : "+Inf";
      sample(std::string(name) + "_bucket", cumulative, "le=\"" + le + "\"");
    }
    sample(std::string(name) + "_sum", h.sum);
    sample(std::string(name) + "_count", cumulative);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string label(const char* name, const std::string& value) {
  return std::string(name) + "=\"" + escape_label(value) + "\"";
}

void render_requests(Writer& w, const Snapshot& s) {
  w.counter("rotor_requests_total", "Requests answered, by every worker since rotor started.",
            static_cast<double>(s.requests));
  w.gauge("rotor_requests_in_flight", "Requests being handled now.",
          static_cast<double>(s.in_flight));
  w.gauge("rotor_connections", "Client connections open now.", static_cast<double>(s.connections));
  w.family("rotor_responses_total", "counter", "Responses answered, by status class.");
  for (int c = 0; c < 5; ++c)
    w.sample("rotor_responses_total", s.responses_by_class[c],
             label("code", fmt::format("{}xx", c + 1)));
  w.histogram("rotor_request_duration_seconds",
              "Time from a request's first byte to its answer being queued.", s.request_duration);
}

void render_workers(Writer& w, const Snapshot& s) {
  w.gauge("rotor_workers_desired", "Workers rotor keeps running.",
          static_cast<double>(s.desired_workers));
  w.family("rotor_workers", "gauge", "Worker processes, by state.");
  for (const auto& [state, n] : s.workers_by_state)
    w.sample("rotor_workers", n, label("state", state));
  w.family("rotor_worker_exits_total", "counter",
           "Workers that exited, by reason (as the event=worker-exit log lines).");
  for (const auto& [reason, n] : s.exits_by_reason)
    w.sample("rotor_worker_exits_total", n, label("reason", reason));
  w.histogram("rotor_worker_spawn_duration_seconds",
              "Time from a worker's spawn to its accepting connections.", s.spawn_duration);
  struct PerWorker {
    const char* name;
    const char* help;
    double (*value)(const WorkerSample&);
  };
  static const PerWorker kPerWorker[] = {
      {"rotor_worker_generation", "The generation (reload) a worker runs.",
       [](const WorkerSample& x) { return static_cast<double>(x.generation); }},
      {"rotor_worker_requests", "Requests a worker has answered.",
       [](const WorkerSample& x) { return static_cast<double>(x.requests); }},
      {"rotor_worker_request_limit", "Requests after which a worker is rotated (0: no limit).",
       [](const WorkerSample& x) { return static_cast<double>(x.request_limit); }},
      {"rotor_worker_age_seconds", "Time since a worker was spawned.",
       [](const WorkerSample& x) { return x.age_seconds; }},
      {"rotor_worker_resident_memory_bytes", "A worker's resident memory.",
       [](const WorkerSample& x) { return static_cast<double>(x.resident_bytes); }},
      {"rotor_worker_private_memory_bytes",
       "A worker's private memory (pages no other process maps), sampled at most once a second.",
       [](const WorkerSample& x) { return static_cast<double>(x.private_bytes); }},
  };
  for (const auto& m : kPerWorker) {
    w.family(m.name, "gauge", m.help);
    for (const auto& x : s.workers)
      w.sample(m.name, m.value(x), label("slot", std::to_string(x.slot)));
  }
}

void render_master(Writer& w, const Snapshot& s) {
  w.family("rotor_listen_queue", "gauge",
           "Connections waiting in a TCP listener's accept queue (TCP_INFO).");
  for (const auto& l : s.listeners)
    w.sample("rotor_listen_queue", static_cast<uint64_t>(l.queue), label("listener", l.address));
  w.family("rotor_listen_queue_max", "gauge", "A TCP listener's accept queue size (its backlog).");
  for (const auto& l : s.listeners)
    w.sample("rotor_listen_queue_max", static_cast<uint64_t>(l.queue_max),
             label("listener", l.address));
  w.gauge("rotor_generation", "The newest generation (reload) asked for.",
          static_cast<double>(s.generation));
  w.gauge("rotor_generation_in_force", "The generation whose config and code workers run.",
          static_cast<double>(s.generation_in_force));
  w.family("rotor_reloads_total", "counter", "Reloads (HUP), by result.");
  w.sample("rotor_reloads_total", s.reloads_succeeded, label("result", "success"));
  w.sample("rotor_reloads_total", s.reloads_failed, label("result", "failure"));
  w.family("rotor_generation_private_growth_bytes_per_request", "gauge",
           "A generation's private memory growth per request, estimated from its workers' exits.");
  for (const auto& [gen, bytes] : s.growth_bytes_per_request)
    w.sample("rotor_generation_private_growth_bytes_per_request", bytes,
             label("generation", std::to_string(gen)));
  w.gauge("rotor_ready", "1 while a worker is ready and rotor is not stopping (/readyz).",
          s.ready ? 1 : 0);
  w.gauge("rotor_stopping", "1 once a stop has begun (the shutdown delay included).",
          s.stopping ? 1 : 0);
  w.family("rotor_build_info", "gauge", "rotor's version.");
  w.sample("rotor_build_info", uint64_t{1}, label("version", s.version));
}

void render_process(Writer& w, const ProcessSample& p) {
  w.counter("process_cpu_seconds_total", "CPU time of the master, user and system.", p.cpu_seconds);
  w.gauge("process_resident_memory_bytes", "Resident memory of the master.",
          static_cast<double>(p.resident_bytes));
  w.gauge("process_virtual_memory_bytes", "Virtual memory of the master.",
          static_cast<double>(p.virtual_bytes));
  w.gauge("process_start_time_seconds", "When the master started, since the epoch.",
          p.start_time_seconds);
  w.gauge("process_open_fds", "File descriptors the master has open.",
          static_cast<double>(p.open_fds));
  w.gauge("process_max_fds", "The master's file descriptor limit.", static_cast<double>(p.max_fds));
}

}  // namespace

std::string escape_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string render(const Snapshot& s) {
  Writer w;
  render_requests(w, s);
  render_workers(w, s);
  render_master(w, s);
  render_process(w, s.process);
  return w.take();
}

}  // namespace rotor::metrics
