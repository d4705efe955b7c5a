// The effective configuration of one rotor run: plain typed values, filled in by the loaders
// (conf/load.cpp) from the option table (conf/options.cpp). Nothing outside conf/ parses options.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rotor::conf {

// --workers at most. The scoreboard holds twice as many slots: successors and draining workers.
constexpr int kMaxWorkers = 512;
// workers = "auto": the master turns it into a number from its CPU quota or affinity
// (supervisor/workers_auto) before it uses the config.
constexpr int64_t kWorkersAuto = 0;
// memory_budget = "auto": the cgroup's memory limit less what is not the workers' (see
// supervisor/arbiter_budget.cpp).
constexpr int64_t kMemoryBudgetAuto = -1;

struct Config {
  // Application
  std::string app;  // positional APP ("module:attr"); empty for native worker classes
  std::string worker_class = "hello";  // "hello" (native); "asgi" comes later
  std::string config_file;             // -c/--config, informational

  // Server socket
  std::vector<std::string> bind;  // HOST:PORT, [V6]:PORT, unix:PATH, fd://N
  int64_t backlog = 2048;
  bool reuse_port = false;   // SO_REUSEPORT on the TCP sockets the master binds
  std::string metrics_bind;  // the master's /metrics, /healthz, /readyz listener; empty = off
  std::string statsd_host;   // HOST:PORT or unix:PATH the master sends statsd to; empty = off
  std::string statsd_prefix;
  std::string dogstatsd_tags;  // "k:v,k2:v2", added to every statsd line

  // Workers and rotation
  int64_t workers = 1;       // or kWorkersAuto
  int64_t max_requests = 0;  // 0 = off
  int64_t max_requests_jitter = 0;
  int64_t max_rss_mb = 0;        // 0 = off
  int64_t max_private_mb = 0;    // 0 = off
  int64_t memory_budget_mb = 0;  // all workers together, 0 = off, or kMemoryBudgetAuto
  double max_lifetime = 0;       // seconds, 0 = off
  double max_lifetime_jitter = 0;
  int64_t max_concurrent_rotations = 1;
  double timeout = 30;                // heartbeat timeout, seconds (0 = off)
  double graceful_timeout = 30;       // seconds
  double shutdown_delay = 0;          // TERM: seconds not ready, still serving, before the stop
  double keep_alive = 5;              // idle keep-alive timeout, seconds
  int64_t worker_connections = 1000;  // a worker stops accepting at this many connections

  // HTTP timeouts, seconds (0 = none)
  double timeout_request_head = 10;    // first byte of a request to the end of its head
  double timeout_request_body = 30;    // between two reads of a request body
  double timeout_response_write = 30;  // an answer the client does not read

  // Headers of every response
  bool server_header = true;        // Server: rotor
  bool date_header = true;          // Date
  std::vector<std::string> header;  // NAME:VALUE, added to every response

  // HTTP limits
  int64_t limit_request_line = 4094;
  int64_t limit_request_fields = 100;
  int64_t limit_request_field_size = 8190;
  int64_t limit_request_head = 65536;  // bytes of a whole request head
  int64_t limit_request_body = 0;      // bytes, 0 = unlimited

  // WebSocket sessions (as uvicorn's --ws-* options)
  int64_t ws_max_size = 16 * 1024 * 1024;  // largest message a client may send, bytes
  double ws_ping_interval = 20;            // seconds between our pings (0 = none)
  double ws_ping_timeout = 20;             // a pong must come within this (0 = no limit)

  // Process
  std::string chdir;
  std::string pid_file;        // --pid
  std::string control_socket;  // empty = no control socket
  std::string user;
  std::string group;
  int64_t umask = 0;  // parsed from octal ("0o22", "022", "18" as decimal is not accepted)

  // Logging
  std::string log_level = "info";   // debug, info, warning, error, critical
  std::string error_logfile = "-";  // "-" is stderr
  std::string access_logfile;       // empty = off, "-" is stdout
  std::string access_logformat;
  bool log_syslog = false;  // the error log also goes to syslog
  std::string log_syslog_to = "udp://localhost:514";
  std::string log_syslog_prefix;  // the syslog tag; empty = "rotor"
  std::string log_syslog_facility = "user";

  // Python (worker class asgi)
  std::string python;  // executable; empty = $VIRTUAL_ENV/bin/python or the build's python3
  std::vector<std::string> pythonpath;
  std::vector<std::string> env;  // KEY=VALUE, exported by the master before it forks
  bool factory = false;
  std::string lifespan = "auto";
  std::string root_path;
  bool proxy_headers = true;  // asgi: trust X-Forwarded-For/-Proto from forwarded_allow_ips
  std::string forwarded_allow_ips = "127.0.0.1,::1";
  bool proxy_protocol = false;  // a PROXY protocol header starts connections from proxy_allow_from
  std::string proxy_allow_from = "127.0.0.1,::1";
  std::string loop = "auto";      // asyncio event loop: auto, asyncio, uvloop
  double timeout_request = 0;     // seconds, 0 = off
  int64_t limit_concurrency = 0;  // requests in flight per worker, 0 = off
  std::string gc_threshold;       // "A,B,C", empty = Python's default
  bool gc_freeze = false;
  bool preload = true;  // asgi: fork warm workers from a template process
  int64_t gc_collect_every = 0;

  // Leak report (asgi): tracemalloc in one worker spawn in `leak_report_every`
  bool leak_report = false;
  int64_t leak_report_every = 1;
  int64_t leak_report_depth = 10;   // frames per traceback
  int64_t leak_report_warmup = 20;  // responses before the baseline
  std::string leak_report_dir;      // empty = the log only

  // Not an option: the plugin for the app's Python's version (rotor-python3.X.so), chosen by
  // the loader, loaded by the template or a worker.
  std::string python_plugin;
};

}  // namespace rotor::conf
