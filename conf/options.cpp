// The option table. Flag names follow gunicorn's so an existing gunicorn command line works.
#include "conf/options.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <charconv>

#include "conf/address_list.hpp"
#include "log/syslog.hpp"
#include "workers/http/grammar.hpp"

namespace rotor::conf {
namespace {

using http::all_digits;

// NAME:VALUE, a header every response carries: the name a token (RFC 9110), the value without
// control characters, which could otherwise split the response.
std::string check_header(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return "expected NAME:VALUE";
  if (!http::is_token(text.substr(0, colon))) {
    return "the header name must be a token (letters, digits, !#$%&'*+-.^_`|~)";
  }
  if (!http::is_field_value(text.substr(colon + 1))) {
    return "the header value may not hold control characters";
  }
  // Framing is each response's own: a second Content-Length or Connection would let a proxy
  // and rotor disagree on where a response ends.
  std::string name(text.substr(0, colon));
  for (char& c : name) c = http::ascii_lower(c);
  for (std::string_view framing : {"content-length", "transfer-encoding", "connection",
                                   "keep-alive", "upgrade", "te", "trailer"}) {
    if (name == framing) return "the engine sets " + name + " per response";
  }
  return "";
}

// KEY=VALUE with a key that can be exported (not empty, no '=' or NUL); the value may be empty.
std::string check_env_assignment(std::string_view text) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) return "expected KEY=VALUE";
  if (text.find('\0') != std::string_view::npos) return "a NUL byte cannot be exported";
  return "";
}

// HOST:PORT, [V6]:PORT, unix:PATH or fd://N. The port is required: a silent default port is
// more surprising than an error.
std::string check_bind(std::string_view text) {
  constexpr std::string_view kFormats = "expected HOST:PORT, [V6]:PORT, unix:PATH or fd://N";
  if (text.starts_with("unix:")) return text.size() > 5 ? "" : "expected a socket path after unix:";
  if (text.starts_with("fd://")) {
    int fd = -1;
    std::string_view n = text.substr(5);
    auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), fd);
    bool ok = all_digits(n) && ec == std::errc() && end == n.data() + n.size();
    return ok ? "" : "expected a file descriptor number after fd://";
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::string(kFormats);
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.starts_with('[')) {
    if (!host.ends_with(']')) return std::string(kFormats);
    std::string v6(host.substr(1, host.size() - 2));
    v6 = v6.substr(0, v6.find('%'));  // a zone id ("%eth0") is the kernel's business
    in6_addr addr{};
    if (inet_pton(AF_INET6, v6.c_str(), &addr) != 1) return "expected an IPv6 address in [...]";
  } else if (host.empty() || host.find_first_of(":[] \t") != std::string_view::npos) {
    return std::string(kFormats);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (!all_digits(port) || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return "expected a port in 0..65535";
  return "";
}

// --metrics-bind: off when empty, else an address as --bind takes it.
std::string check_metrics_bind(std::string_view text) {
  return text.empty() ? "" : check_bind(text);
}

// --statsd-host: off when empty, else HOST:PORT (a name is resolved at start) or unix:PATH.
std::string check_statsd_host(std::string_view text) {
  if (text.empty() || text.starts_with("unix:")) return check_metrics_bind(text);
  if (text.starts_with("fd://")) return "expected HOST:PORT or unix:PATH";
  return check_bind(text);
}

// --log-syslog-to: the grammar is the sink's own.
std::string check_syslog_address(std::string_view text) {
  return log::parse_syslog_address(text, nullptr);
}

// A syslog tag: printable, no spaces or colons (they end the tag in RFC 3164).
std::string check_syslog_tag(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) <= ' ' || c == ':' || c == '[' || c == ']' || c == 0x7f)
      return "expected a name without spaces, colons, brackets or control characters";
  return "";
}

std::string check_syslog_facility(std::string_view text) {
  if (log::syslog_facility(text) >= 0) return "";
  return "expected a syslog facility: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, "
         "cron, authpriv, ftp or local0 to local7";
}

// Three non-negative integers, like gc.set_threshold's arguments.
std::string check_gc_threshold(std::string_view text) {
  if (text.empty()) return "";
  int parts = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view part =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    if (part.empty() || !all_digits(part) || part.size() > 9) return "expected A,B,C (integers)";
    ++parts;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return parts == 3 ? "" : "expected A,B,C (integers)";
}

// A worker beats every quarter of --timeout (no more often than every 50 ms) and the master
// looks every 100 ms: a timeout under a second is one that workers miss (below the beat, every
// worker was killed and replaced ten times a second). gunicorn's timeout is whole seconds.
std::string check_timeout(std::string_view text) {
  double v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v > 0 && v < 1 ? "expected 0 (never) or at least 1 second" : "";
}

// --python must name an executable that exists: a typo would otherwise only show when every
// worker fails to boot.
std::string check_python(std::string_view text) {
  std::string path(text);
  if (path.empty()) return "";
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || access(path.c_str(), X_OK) != 0) {
    return "expected an executable Python interpreter";
  }
  return "";
}

}  // namespace

const std::vector<Option>& options() {
  static const std::vector<Option> table = {
      {.name = "app",
       .flags = "APP",
       .metavar = "APP",
       .help = "Application to serve, as module:attribute (for worker classes that load one).",
       .member = &Config::app,
       .gunicorn = "wsgi_app"},
      {.name = "config",
       .flags = "-c,--config",
       .metavar = "FILE",
       .help = "Configuration file: TOML, whose keys are the option names below, or a "
               "gunicorn.conf.py (also python:module), whose gunicorn settings are read. "
               "Without it, ./gunicorn.conf.py is read when it exists, as gunicorn does.",
       .member = &Config::config_file,
       .in_file = false},

      // Server socket
      {.name = "bind",
       .flags = "-b,--bind",
       .kind = Kind::kStringList,
       .default_value = "127.0.0.1:8000",
       .metavar = "ADDRESS",
       .help = "Socket to listen on: HOST:PORT, [V6]:PORT, unix:PATH or fd://N. Repeatable; "
               "replaces the default.",
       .member = &Config::bind,
       .min = 1,
       .check = check_bind,
       .gunicorn = "bind"},
      {.name = "backlog",
       .flags = "--backlog",
       .kind = Kind::kInt,
       .default_value = "2048",
       .metavar = "INT",
       .help = "Maximum number of pending connections.",
       .member = &Config::backlog,
       .min = 1,
       .gunicorn = "backlog"},
      {.name = "reuse_port",
       .flags = "--reuse-port",
       .kind = Kind::kBool,
       .default_value = "false",
       .help = "Set SO_REUSEPORT on the TCP sockets rotor binds, so that another server (the "
               "next rotor in a blue-green switch) can bind the same port while this one "
               "listens.",
       .member = &Config::reuse_port,
       .gunicorn = "reuse_port"},
      {.name = "metrics_bind",
       .flags = "--metrics-bind",
       .metavar = "ADDRESS",
       .help = "Serve /metrics (Prometheus), /healthz and /readyz from the master on this "
               "address: HOST:PORT or unix:PATH. Off by default; bound at start (a HUP does not "
               "move it).",
       .member = &Config::metrics_bind,
       .check = check_metrics_bind},
      {.name = "statsd_host",
       .flags = "--statsd-host",
       .metavar = "ADDRESS",
       .help = "Send statsd metrics from the master, once a second, to HOST:PORT (UDP) or "
               "unix:PATH (a datagram socket), under gunicorn's names: gunicorn.requests, "
               "gunicorn.request.duration, gunicorn.request.status.2xx, gunicorn.workers. Off by "
               "default; a host name is resolved at start.",
       .member = &Config::statsd_host,
       .check = check_statsd_host,
       .gunicorn = "statsd_host"},
      {.name = "statsd_prefix",
       .flags = "--statsd-prefix",
       .metavar = "PREFIX",
       .help = "Put PREFIX. before every statsd name (as gunicorn does).",
       .member = &Config::statsd_prefix,
       .gunicorn = "statsd_prefix"},
      {.name = "dogstatsd_tags",
       .flags = "--dogstatsd-tags",
       .metavar = "TAGS",
       .help = "Datadog tags (k:v,k2:v2) added to every statsd line.",
       .member = &Config::dogstatsd_tags,
       .gunicorn = "dogstatsd_tags"},

      // Workers
      {.name = "workers",
       .flags = "-w,--workers",
       .kind = Kind::kInt,
       .default_value = "1",
       .metavar = "INT|auto",
       .help = "Number of worker processes. auto: the CPU quota of rotor's cgroup, rounded up, "
               "else the CPUs rotor may run on (its affinity mask); resolved at start and on "
               "HUP, and logged.",
       .member = &Config::workers,
       .min = 1,
       .max = kMaxWorkers,
       .words = {{"auto", kWorkersAuto}},
       .env_alias = "WEB_CONCURRENCY",
       .gunicorn = "workers"},
      {.name = "worker_class",
       .flags = "-k,--worker-class",
       .kind = Kind::kChoice,
       .default_value = "auto",
       .metavar = "NAME",
       .help = "Worker implementation: asgi serves APP, hello is rotor's native test handler, "
               "auto is asgi when APP is given, else hello. gunicorn's "
               "uvicorn.workers.UvicornWorker and uvicorn_worker.UvicornWorker mean asgi.",
       .member = &Config::worker_class,
       .choices = {"auto", "asgi", "hello"},
       .aliases = {{"uvicorn.workers.UvicornWorker", "asgi"},
                   {"uvicorn.workers.UvicornH11Worker", "asgi"},
                   {"uvicorn_worker.UvicornWorker", "asgi"},
                   {"uvicorn_worker.UvicornH11Worker", "asgi"}},
       .gunicorn = "worker_class"},
      {.name = "timeout",
       .flags = "-t,--timeout",
       .kind = Kind::kSeconds,
       .default_value = "30",
       .metavar = "SECONDS",
       .help = "Kill and replace a worker silent for this long (0 = never; else at least 1).",
       .member = &Config::timeout,
       .check = check_timeout,
       .gunicorn = "timeout"},
      {.name = "graceful_timeout",
       .flags = "--graceful-timeout,--timeout-graceful-shutdown",
       .kind = Kind::kSeconds,
       .default_value = "30",
       .metavar = "SECONDS",
       .help = "Time a stopping worker gets to finish its requests before it is killed.",
       .member = &Config::graceful_timeout,
       .gunicorn = "graceful_timeout"},
      {.name = "shutdown_delay",
       .flags = "--shutdown-delay",
       .kind = Kind::kSeconds,
       .default_value = "0",
       .metavar = "SECONDS",
       .help = "On TERM, /readyz answers 503 at once while the workers keep serving and the "
               "listeners keep accepting for this long; then the graceful stop. A second TERM "
               "ends the delay; INT and QUIT stop at once.",
       .member = &Config::shutdown_delay},
      {.name = "keep_alive",
       .flags = "--keep-alive,--timeout-keep-alive",
       .kind = Kind::kSeconds,
       .default_value = "5",
       .metavar = "SECONDS",
       .help = "How long an idle keep-alive connection is kept open.",
       .member = &Config::keep_alive,
       .gunicorn = "keepalive"},
      {.name = "worker_connections",
       .flags = "--worker-connections",
       .kind = Kind::kInt,
       .default_value = "1000",
       .metavar = "INT",
       .help = "Open connections at which a worker stops accepting new ones (they wait in the "
               "shared queue for another worker) until one closes.",
       .member = &Config::worker_connections,
       .min = 1,
       .max = 1000000,
       .gunicorn = "worker_connections"},

      // Rotation
      {.name = "max_requests",
       .flags = "--max-requests,--limit-max-requests",
       .kind = Kind::kInt,
       .default_value = "0",
       .metavar = "INT",
       .help = "Replace a worker after it has served this many requests (0 = never).",
       .member = &Config::max_requests,
       .gunicorn = "max_requests"},
      {.name = "max_requests_jitter",
       .flags = "--max-requests-jitter",
       .kind = Kind::kInt,
       .default_value = "0",
       .metavar = "INT",
       .help = "Add a random 0..N to each worker's max_requests, so workers do not rotate "
               "together.",
       .member = &Config::max_requests_jitter,
       .gunicorn = "max_requests_jitter"},
      {.name = "max_rss",
       .flags = "--max-rss",
       .kind = Kind::kInt,
       .default_value = "0",
       .metavar = "MB",
       .help = "Replace a worker whose resident memory exceeds this many MiB (0 = never); not "
               "before it has served 2 s.",
       .member = &Config::max_rss_mb,
       .max = 16777216},  // 16 TiB: the master counts it in bytes, in 64 bits
      {.name = "max_private",
       .flags = "--max-private",
       .kind = Kind::kInt,
       .default_value = "0",
       .metavar = "MB",
       .help = "Replace a worker whose private memory (the pages it does not share with the "
               "template or other workers) exceeds this many MiB (0 = never); not before it has "
               "served 2 s.",
       .member = &Config::max_private_mb,
       .max = 16777216},
      {.name = "memory_budget",
       .flags = "--memory-budget",
       .kind = Kind::kInt,
       .default_value = "0",
       .metavar = "MB|auto",
       .help = "The private memory all workers together may use, in MiB (0 = no budget). From "
               "the measured growth per request, each new worker gets a request limit that keeps "
               "the workers within it (staggered, never above --max-requests); near the budget "
               "the largest worker is rotated first. auto: the cgroup's memory limit less what "
               "the master, the template and one successor take.",
       .member = &Config::memory_budget_mb,
       .max = 16777216,
       .words = {{"auto", kMemoryBudgetAuto}}},
      {.name = "max_lifetime",
       .flags = "--max-lifetime",
       .kind = Kind::kSeconds,
       .default_value = "0",
       .metavar = "SECONDS",
       .help = "Replace a worker after it has lived this long (0 = never); not before it has "
               "served 2 s.",
       .member = &Config::max_lifetime},
      {.name = "max_lifetime_jitter",
       .flags = "--max-lifetime-jitter",
       .kind = Kind::kSeconds,
       .default_value = "0",
       .metavar = "SECONDS",
       .help = "Add a random 0..N seconds to each worker's max_lifetime.",
       .member = &Config::max_lifetime_jitter},
      {.name = "max_concurrent_rotations",
       .flags = "--max-concurrent-rotations",
       .kind = Kind::kInt,
       .default_value = "1",
       .metavar = "INT",
       .help = "How many workers may be replaced at the same time.",
       .member = &Config::max_concurrent_rotations,
       .min = 1},

      // HTTP limits
      {.name = "limit_request_line",
       .flags = "--limit-request-line",
       .kind = Kind::kInt,
       .default_value = "4094",
       .metavar = "INT",
       .help = "Maximum size of the HTTP request line in bytes (0 = unlimited).",
       .member = &Config::limit_request_line,
       .max = 1048576,
       .gunicorn = "limit_request_line"},
      {.name = "limit_request_fields",
       .flags = "--limit-request-fields",
       .kind = Kind::kInt,
       .default_value = "100",
       .metavar = "INT",
       .help = "Maximum number of header fields in a request (0 = unlimited).",
       .member = &Config::limit_request_fields,
       .max = 32768,
       .gunicorn = "limit_request_fields"},
      {.name = "limit_request_field_size",
       .flags = "--limit-request-field_size,--limit-request-field-size",  // gunicorn's spelling
       .kind = Kind::kInt,
       .default_value = "8190",
       .metavar = "INT",
       .help =
           "Maximum size of one header field line in bytes: name, colon, value and its CRLF, as "
           "gunicorn counts it (0 = unlimited).",
       .member = &Config::limit_request_field_size,
       .gunicorn = "limit_request_field_size"},
      {.name = "limit_request_head",
       .flags = "--limit-request-head",
       .kind = Kind::kInt,
       .default_value = "65536",
       .metavar = "BYTES",
       .help = "Maximum size of a whole request head (request line and header fields) in bytes; "
               "larger ones get 431 (0 = the hard cap, 16 MiB).",
       .member = &Config::limit_request_head,
       .max = 16777216},
      {.name = "limit_request_body",
       .flags = "--limit-request-body",
       .kind = Kind::kInt,
       .default_value = "0",
       .metavar = "BYTES",
       .help = "Maximum size of a request body in bytes; larger ones get 413 (0 = unlimited).",
       .member = &Config::limit_request_body},

      // WebSocket
      {.name = "ws_max_size",
       .flags = "--ws-max-size",
       .kind = Kind::kInt,
       .default_value = "16777216",
       .metavar = "BYTES",
       .help = "Largest WebSocket message a client may send; a larger one closes the session "
               "with 1009.",
       .member = &Config::ws_max_size,
       .min = 1},
      {.name = "ws_ping_interval",
       .flags = "--ws-ping-interval",
       .kind = Kind::kSeconds,
       .default_value = "20",
       .metavar = "SECONDS",
       .help = "Ping each WebSocket client this often, which keeps idle sessions open through "
               "proxies and finds clients that are gone (0 = never).",
       .member = &Config::ws_ping_interval},
      {.name = "ws_ping_timeout",
       .flags = "--ws-ping-timeout",
       .kind = Kind::kSeconds,
       .default_value = "20",
       .metavar = "SECONDS",
       .help = "Close a WebSocket session (1011) whose client has not answered a ping for this "
               "long (0 = no limit).",
       .member = &Config::ws_ping_timeout},

      // HTTP timeouts
      {.name = "timeout_request_head",
       .flags = "--timeout-request-head",
       .kind = Kind::kSeconds,
       .default_value = "10",
       .metavar = "SECONDS",
       .help = "Longest time from the first byte of a request to the end of its head (slow "
               "clients, slowloris); then 408 and close (0 = no limit).",
       .member = &Config::timeout_request_head},
      {.name = "timeout_request_body",
       .flags = "--timeout-request-body",
       .kind = Kind::kSeconds,
       .default_value = "30",
       .metavar = "SECONDS",
       .help = "Longest wait for the next bytes of a request body; then 408 and close "
               "(0 = no limit).",
       .member = &Config::timeout_request_body},
      {.name = "timeout_response_write",
       .flags = "--timeout-response-write",
       .kind = Kind::kSeconds,
       .default_value = "30",
       .metavar = "SECONDS",
       .help = "Close a connection whose client has not read any of its answer for this long "
               "(0 = no limit).",
       .member = &Config::timeout_response_write},

      // Response headers
      {.name = "server_header",
       .flags = "--server-header",
       .kind = Kind::kBool,
       .default_value = "true",
       .help = "Send Server: rotor with every response. --no-server-header leaves it out (as "
               "uvicorn's).",
       .member = &Config::server_header,
       .negation = "--no-server-header"},
      {.name = "date_header",
       .flags = "--date-header",
       .kind = Kind::kBool,
       .default_value = "true",
       .help = "Send Date with every response. --no-date-header leaves it out (as uvicorn's).",
       .member = &Config::date_header,
       .negation = "--no-date-header"},
      {.name = "header",
       .flags = "--header",
       .kind = Kind::kStringList,
       .metavar = "NAME:VALUE",
       .help = "A header sent with every response, before the app's own (as uvicorn's); a "
               "Server or Date given here replaces rotor's. Repeatable.",
       .member = &Config::header,
       .check = check_header},

      // Process
      {.name = "chdir",
       .flags = "--chdir",
       .metavar = "DIR",
       .help = "Change to this directory before loading the application; relative log and pid "
               "file paths are relative to it.",
       .member = &Config::chdir,
       .gunicorn = "chdir"},
      {.name = "pid_file",
       .flags = "-p,--pid",
       .metavar = "FILE",
       .help = "Write the master's PID to this file (refused while the PID it holds is "
               "running, and in a directory another user owns, or can write unless it is sticky).",
       .member = &Config::pid_file,
       .gunicorn = "pidfile"},
      {.name = "control_socket",
       .flags = "--control-socket",
       .metavar = "PATH",
       .help = "Serve `rotor ctl` and `rotor top` on this unix socket (mode 0600, owned by the "
               "user rotor starts as; relative to --chdir; kept across HUP, removed at exit). "
               "Off by default.",
       .member = &Config::control_socket},
      {.name = "user",
       .flags = "-u,--user",
       .metavar = "USER",
       .help = "Run the app as this user (name or uid): the template and the workers switch "
               "before they import it, only the master keeps root; log files the master "
               "creates are given to it, so workers can reopen them after a rotation.",
       .member = &Config::user,
       .gunicorn = "user"},
      {.name = "group",
       .flags = "-g,--group",
       .metavar = "GROUP",
       .help = "Run workers as this group (name or gid).",
       .member = &Config::group,
       .gunicorn = "group"},
      {.name = "umask",
       .flags = "-m,--umask",
       .kind = Kind::kOctal,
       .default_value = "0",
       .metavar = "MODE",
       .help = "File mode creation mask, octal (022, 0o22): unix sockets are created with it "
               "(0: any user may connect, as gunicorn), and above 0 it is rotor's umask.",
       .member = &Config::umask,
       .max = 0777,
       .gunicorn = "umask"},

      // Logging
      {.name = "log_level",
       .flags = "--log-level",
       .kind = Kind::kChoice,
       .default_value = "info",
       .metavar = "LEVEL",
       .help = "Error log verbosity.",
       .member = &Config::log_level,
       .choices = {"debug", "info", "warning", "error", "critical"},
       .aliases = {{"trace", "debug"}},
       .gunicorn = "loglevel"},  // uvicorn's most verbose level
      {.name = "error_logfile",
       .flags = "--error-logfile,--log-file",
       .default_value = "-",
       .metavar = "FILE",
       .help = "Error log file; - is stderr.",
       .member = &Config::error_logfile,
       .gunicorn = "errorlog"},
      {.name = "access_logfile",
       .flags = "--access-logfile",
       .metavar = "FILE",
       .help = "Access log file; - is stdout, empty is off.",
       .member = &Config::access_logfile,
       .gunicorn = "accesslog"},
      {.name = "access_logformat",
       .flags = "--access-logformat",
       .default_value = R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")",
       .metavar = "FORMAT",
       .help = "Access log line format (gunicorn's atoms).",
       .member = &Config::access_logformat,
       .gunicorn = "access_log_format"},
      {.name = "log_syslog",
       .flags = "--log-syslog",
       .kind = Kind::kBool,
       .default_value = "false",
       .help = "Send the error log to syslog as well (--log-syslog-to), one RFC 3164 message "
               "a line. The access log stays in its file.",
       .member = &Config::log_syslog,
       .gunicorn = "syslog"},
      {.name = "log_syslog_to",
       .flags = "--log-syslog-to",
       .default_value = "udp://localhost:514",
       .metavar = "ADDRESS",
       .help = "Where syslog listens: unix://PATH (#dgram or #stream to choose the socket "
               "type), udp://HOST:PORT or tcp://HOST:PORT.",
       .member = &Config::log_syslog_to,
       .check = check_syslog_address,
       .gunicorn = "syslog_addr"},
      {.name = "log_syslog_prefix",
       .flags = "--log-syslog-prefix",
       .metavar = "TAG",
       .help = "The program name (tag) of rotor's syslog messages (empty = rotor).",
       .member = &Config::log_syslog_prefix,
       .check = check_syslog_tag,
       .gunicorn = "syslog_prefix"},
      {.name = "log_syslog_facility",
       .flags = "--log-syslog-facility",
       .default_value = "user",
       .metavar = "FACILITY",
       .help = "The syslog facility of rotor's messages (user, daemon, local0 to local7, ...).",
       .member = &Config::log_syslog_facility,
       .check = check_syslog_facility,
       .gunicorn = "syslog_facility"},

      // Python (worker class asgi)
      {.name = "python",
       .flags = "--python",
       .metavar = "PATH",
       .help = "Python executable whose environment the app runs in (a virtualenv's "
               "bin/python); default: $VIRTUAL_ENV/bin/python, else the python of the virtualenv "
               "whose bin/ holds rotor (a wheel's), else the python3 rotor was built against. "
               "Served by the plugin for its CPython version; one rotor has no plugin for is "
               "refused (exit 4).",
       .member = &Config::python,
       .check = check_python},
      {.name = "pythonpath",
       .flags = "--pythonpath,--app-dir",
       .kind = Kind::kStringList,
       .metavar = "DIR",
       .help = "Directory to put on sys.path before the working directory. Repeatable.",
       .member = &Config::pythonpath,
       .gunicorn = "pythonpath"},
      {.name = "env",
       .flags = "-e,--env",
       .kind = Kind::kStringList,
       .metavar = "KEY=VALUE",
       .help = "Environment variable for the app, as gunicorn's -e: the master sets it before it "
               "forks, so the app's import and every worker see it. Repeatable; after a HUP each "
               "generation gets its own config's list. rotor's own settings are never read from "
               "these.",
       .member = &Config::env,
       .check = check_env_assignment,
       .gunicorn = "raw_env"},
      {.name = "factory",
       .flags = "--factory",
       .kind = Kind::kBool,
       .default_value = "false",
       .help = "APP is a factory: call it (without arguments) to get the application.",
       .member = &Config::factory},
      {.name = "lifespan",
       .flags = "--lifespan",
       .kind = Kind::kChoice,
       .default_value = "auto",
       .metavar = "MODE",
       .help = "ASGI lifespan protocol: on (a failing startup stops the worker), off, or auto "
               "(used when the app supports it).",
       .member = &Config::lifespan,
       .choices = {"auto", "on", "off"}},
      {.name = "root_path",
       .flags = "--root-path",
       .metavar = "PREFIX",
       .help = "ASGI root_path: the prefix the app is mounted under behind a proxy.",
       .member = &Config::root_path},
      {.name = "proxy_headers",
       .flags = "--proxy-headers",
       .kind = Kind::kBool,
       .default_value = "true",
       .help = "ASGI scope client and scheme from X-Forwarded-For and X-Forwarded-Proto, when "
               "the peer is in --forwarded-allow-ips (as uvicorn). --no-proxy-headers ignores "
               "them.",
       .member = &Config::proxy_headers,
       .negation = "--no-proxy-headers"},
      {.name = "forwarded_allow_ips",
       .flags = "--forwarded-allow-ips",
       .default_value = "127.0.0.1,::1",
       .metavar = "LIST",
       .help = "Peers trusted to set proxy headers: IP addresses and networks (10.0.0.0/8) "
               "separated by commas, or * for any. The client is the rightmost X-Forwarded-For "
               "address that is not itself trusted.",
       .member = &Config::forwarded_allow_ips,
       .check = check_address_list,
       .env_alias = "FORWARDED_ALLOW_IPS",
       .gunicorn = "forwarded_allow_ips"},
      {.name = "proxy_protocol",
       .flags = "--proxy-protocol",
       .kind = Kind::kBool,
       .default_value = "false",
       .help = "Connections from --proxy-allow-from peers (and unix-socket peers) must start with "
               "a PROXY protocol header, v1 or v2 (AWS NLB, HAProxy send-proxy): its source is "
               "the client (ASGI client, access log), its destination the server. Others must "
               "not send one. See docs/http.md.",
       .member = &Config::proxy_protocol,
       .gunicorn = "proxy_protocol"},
      {.name = "proxy_allow_from",
       .flags = "--proxy-allow-from",
       .default_value = "127.0.0.1,::1",
       .metavar = "LIST",
       .help = "Peers that send a PROXY protocol header (with --proxy-protocol): IP addresses "
               "and networks (10.0.0.0/8) separated by commas, or * for any.",
       .member = &Config::proxy_allow_from,
       .check = check_address_list,
       .gunicorn = "proxy_allow_ips"},
      {.name = "loop",
       .flags = "--loop",
       .kind = Kind::kChoice,
       .default_value = "auto",
       .metavar = "LOOP",
       .help = "The asyncio event loop of asgi workers: asyncio, uvloop, or auto (uvloop when it "
               "can be imported). Either drives rotor's own libuv loop; no loop is shared.",
       .member = &Config::loop,
       .choices = {"auto", "asyncio", "uvloop"}},
      {.name = "timeout_request",
       .flags = "--timeout-request",
       .kind = Kind::kSeconds,
       .default_value = "0",
       .metavar = "SECONDS",
       .help = "Cancel an app's request task after this long: 504 when no response started, "
               "else the connection is closed (0 = no limit).",
       .member = &Config::timeout_request},
      {.name = "limit_concurrency",
       .flags = "--limit-concurrency",
       .kind = Kind::kInt,
       .default_value = "0",
       .metavar = "INT",
       .help = "Requests in flight at which a worker stops accepting new connections (they wait "
               "in the shared queue for another worker) (0 = no limit).",
       .member = &Config::limit_concurrency},
      {.name = "gc_threshold",
       .flags = "--gc-threshold",
       .metavar = "A,B,C",
       .help = "Python's gc.set_threshold(A, B, C) in each worker (empty = Python's default).",
       .member = &Config::gc_threshold,
       .check = check_gc_threshold},
      {.name = "preload",
       .flags = "--preload",
       .kind = Kind::kBool,
       .default_value = "true",
       .help = "Python apps: a template process imports the app once and every worker is "
               "forked from it, warm (gc.freeze() before each fork). --no-preload starts a "
               "cold interpreter in each worker, for apps that cannot be forked after import.",
       .member = &Config::preload,
       .negation = "--no-preload",
       .gunicorn = "preload_app"},
      {.name = "gc_freeze",
       .flags = "--gc-freeze",
       .kind = Kind::kBool,
       .default_value = "false",
       .help = "gc.freeze() once the app is loaded in each worker: what import built is never "
               "scanned again (the template always freezes before it forks).",
       .member = &Config::gc_freeze},
      {.name = "gc_collect_every",
       .flags = "--gc-collect-every",
       .kind = Kind::kInt,
       .default_value = "0",
       .metavar = "N",
       .help = "A full gc.collect() after every N responses, once the response is sent "
               "(0 = never).",
       .member = &Config::gc_collect_every},
      {.name = "leak_report",
       .flags = "--leak-report",
       .kind = Kind::kBool,
       .default_value = "false",
       .help = "Python apps: trace the memory of one worker in --leak-report-every N with "
               "tracemalloc; as it retires it logs where its memory grew since its warm-up "
               "(event=leak-site, one line per place) and the cyclic GC's work. See "
               "docs/leaks.md.",
       .member = &Config::leak_report},
      {.name = "leak_report_every",
       .flags = "--leak-report-every",
       .kind = Kind::kInt,
       .default_value = "1",
       .metavar = "N",
       .help = "With --leak-report, trace the first worker spawned and then one spawn in N; "
               "the others run untraced, at full speed.",
       .member = &Config::leak_report_every,
       .min = 1,
       .max = 1000000},
      {.name = "leak_report_depth",
       .flags = "--leak-report-depth",
       .kind = Kind::kInt,
       .default_value = "10",
       .metavar = "FRAMES",
       .help = "Frames of each allocation's traceback that tracemalloc keeps (more: a "
               "clearer report, a slower traced worker).",
       .member = &Config::leak_report_depth,
       .min = 1,
       .max = 100},
      {.name = "leak_report_warmup",
       .flags = "--leak-report-warmup",
       .kind = Kind::kInt,
       .default_value = "20",
       .metavar = "REQUESTS",
       .help = "Responses a traced worker serves before its baseline: what first requests "
               "fill once (caches, lazy imports) is not reported as growth.",
       .member = &Config::leak_report_warmup},
      {.name = "leak_report_dir",
       .flags = "--leak-report-dir",
       .metavar = "DIR",
       .help = "Also write each leak report as DIR/leak-PID-TIME.json (empty: the log only). "
               "Created if missing; one that cannot be written stops rotor at start.",
       .member = &Config::leak_report_dir},

  };
  return table;
}

const Option* find_option(std::string_view name) {
  for (const Option& option : options())
    if (option.name == name) return &option;
  return nullptr;
}

static std::vector<IgnoredFlag> build_ignored_flags() {
  // The last field is the setting's name in a gunicorn.conf.py.
  constexpr std::string_view kGunicorn = "gunicorn";
  std::vector<IgnoredFlag> table = {
      {"--threads", true, "workers are single-threaded event loops", false, kGunicorn, "threads"},
      {"--worker-tmp-dir", true, "heartbeats go through shared memory", false, kGunicorn,
       "worker_tmp_dir"},
      {"--reload", false, "code reload is SIGHUP", false, kGunicorn, "reload"},
      {"--reload-engine", true, "code reload is SIGHUP", false, kGunicorn, "reload_engine"},
      {"-D,--daemon", false, "run rotor under a service manager instead", false, kGunicorn,
       "daemon"},
      {"-n,--name", true, "process names are not changed", false, kGunicorn, "proc_name"},
      {"--log-config", true, "logging is configured with --log-level and the log files", false,
       kGunicorn, "logconfig"},
      {"--capture-output", false, "workers write to the error log already", false, kGunicorn,
       "capture_output"},
      {"--initgroups", false, "--user drops supplementary groups", false, kGunicorn, "initgroups"},
      {"-R,--enable-stdio-inheritance", false, "rotor does not daemonize; workers keep its stdio",
       false, kGunicorn, "enable_stdio_inheritance"},
      {"--reload-extra-file", true, "code reload is SIGHUP", false, kGunicorn,
       "reload_extra_files"},
      {"--spew", false, "rotor does not trace every executed line", false, kGunicorn, "spew"},
      {"--no-sendfile", false, "rotor never uses sendfile", false, kGunicorn, "sendfile"},
      {"--logger-class", true, "logs are rotor's own key=value lines", false, kGunicorn,
       "logger_class"},
      {"--disable-redirect-access-to-syslog", false, "the access log never goes to syslog", false,
       kGunicorn, "disable_redirect_access_to_syslog"},
  };
  // Ignoring these would serve what the operator asked not to, or not serve the app at all.
  constexpr std::string_view kNoPaste =
      "rotor serves an ASGI app named module:attribute; it cannot load a PasteDeploy app";
  table.push_back({"--paster,--paste", true, kNoPaste, true, kGunicorn, "paste"});
  table.push_back({"--paste-global", true, kNoPaste, true, kGunicorn, "raw_paste_global_conf"});
  table.push_back({"--strip-header-spaces", false,
                   "rotor never strips spaces before a header's colon: such a request is "
                   "answered 400, as one a proxy may read differently",
                   true, kGunicorn, "strip_header_spaces"});
  table.push_back({"--tolerate-dangerous-framing", false,
                   "rotor never tolerates ambiguous framing (Content-Length with "
                   "Transfer-Encoding, a repeated Content-Length): such a request is answered 400",
                   true, kGunicorn, "tolerate_dangerous_framing"});
  constexpr std::string_view kNoTls =
      "TLS is not supported; terminate it in a proxy (nginx, a load balancer) in front of rotor";
  // In a gunicorn.conf.py only a certificate or key asks for TLS: the other TLS settings have
  // non-empty defaults and mean nothing without them.
  table.push_back({"--certfile", true, kNoTls, true, kGunicorn, "certfile"});
  table.push_back({"--keyfile", true, kNoTls, true, kGunicorn, "keyfile"});
  for (std::string_view flag :
       {"--ca-certs", "--ssl-version", "--cert-reqs", "--ciphers", "--ssl-context"}) {
    table.push_back({flag, true, kNoTls, true});
  }
  for (std::string_view flag : {"--do-handshake-on-connect", "--suppress-ragged-eofs"}) {
    table.push_back({flag, false, kNoTls, true});
  }
  // uvicorn's (its --ssl-version is gunicorn's too, above)
  constexpr std::string_view kUvicorn = "uvicorn";
  for (std::string_view flag : {"--ssl-keyfile", "--ssl-certfile", "--ssl-keyfile-password",
                                "--ssl-cert-reqs", "--ssl-ca-certs", "--ssl-ciphers"}) {
    table.push_back({flag, true, kNoTls, true, kUvicorn});
  }
  table.push_back({"--env-file", true,
                   "rotor does not read dotenv files; pass the variables with -e KEY=VALUE or "
                   "set them in its environment",
                   true, kUvicorn});
  table.push_back({"--ws", true, "WebSockets are rotor's own", false, kUvicorn});
  table.push_back(
      {"--ws-per-message-deflate", true, "permessage-deflate is not offered", false, kUvicorn});
  table.push_back({"--http", true, "the HTTP/1.1 engine is rotor's own", false, kUvicorn});
  table.push_back({"--interface", true, "rotor serves ASGI 3 apps", false, kUvicorn});
  table.push_back({"--h11-max-incomplete-event-size", true,
                   "request heads are bounded by --limit-request-head", false, kUvicorn});
  for (std::string_view flag :
       {"--reload-dir", "--reload-include", "--reload-exclude", "--reload-delay"}) {
    table.push_back({flag, true, "code reload is SIGHUP", false, kUvicorn});
  }
  table.push_back({"--use-colors", false, "logs are plain key=value lines", false, kUvicorn});
  table.push_back({"--no-use-colors", false, "logs are plain key=value lines", false, kUvicorn});
  return table;
}

const std::vector<IgnoredFlag>& ignored_flags() {
  static const std::vector<IgnoredFlag> table = build_ignored_flags();
  return table;
}

const std::vector<ActionFlag>& action_flags() {
  static const std::vector<ActionFlag> table = {
      {"--print-config", Action::kPrintConfig,
       "Print the effective configuration as TOML and exit."},
      {"--check-config", Action::kCheckConfig, "Validate the configuration and exit."},
      {"-v,--version", Action::kVersion, "Print the version and exit."},
      {"-h,--help", Action::kHelp, "Print this help and exit."},
      {"--help-options-markdown", Action::kHelp,
       "Print the documented option table (docs/configuration.md).", true},
      {"--help-man", Action::kHelp, "Print the man page rotor(1) (docs/rotor.1).", true},
      {"--help-bash-completion", Action::kHelp,
       "Print the bash completion script (deploy/bash-completion/rotor).", true},
  };
  return table;
}

std::string env_name(const Option& option) {
  std::string name = "ROTOR_";
  for (char c : option.name) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

std::vector<std::string> flag_names(std::string_view flags) {
  std::vector<std::string> names;
  while (!flags.empty()) {
    size_t comma = flags.find(',');
    names.emplace_back(flags.substr(0, comma));
    flags = comma == std::string_view::npos ? "" : flags.substr(comma + 1);
  }
  return names;
}

std::string cli_label(const Option& option) {
  std::vector<std::string> names = flag_names(option.flags);
  for (const std::string& name : names)
    if (name.starts_with("--")) return name;
  return names.front();
}

std::string help_text(const Option& option) {
  std::string text(option.help);
  for (size_t i = 0; i < option.choices.size(); ++i)
    text += (i == 0 ? " One of: " : ", ") + std::string(option.choices[i]);
  return option.choices.empty() ? text : text + ".";
}

}  // namespace rotor::conf
