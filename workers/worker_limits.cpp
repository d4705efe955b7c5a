#include "workers/worker_limits.hpp"

#include <algorithm>
#include <string>
#include <string_view>

#include "workers/http/request.hpp"

namespace rotor::worker {

namespace {

uint64_t ms(double seconds) {
  return static_cast<uint64_t>(seconds * 1000);
}

// --header NAME:VALUE (checked by the option table) as a response line; a Server or Date given
// this way replaces rotor's own.
void add_header(const std::string& h, http::Limits& limits) {
  size_t colon = h.find(':');
  std::string_view name(h.data(), colon);
  if (http::iequals(name, "server")) limits.server_header = false;
  if (http::iequals(name, "date")) limits.date_header = false;
  size_t start = h.find_first_not_of(" \t", colon + 1);
  size_t end = h.find_last_not_of(" \t");
  limits.extra_headers += h.substr(0, colon) + ": ";
  if (start != std::string::npos) limits.extra_headers += h.substr(start, end + 1 - start);
  limits.extra_headers += "\r\n";
}

}  // namespace

http::Limits server_limits(const conf::Config& cfg) {
  http::Limits limits;
  limits.parse.request_line = static_cast<uint64_t>(cfg.limit_request_line);
  limits.parse.fields = static_cast<uint64_t>(cfg.limit_request_fields);
  limits.parse.field_size = static_cast<uint64_t>(cfg.limit_request_field_size);
  limits.parse.head = static_cast<uint64_t>(cfg.limit_request_head);
  limits.parse.body = static_cast<uint64_t>(cfg.limit_request_body);
  limits.max_in_flight = static_cast<size_t>(cfg.limit_concurrency);
  limits.keep_alive_ms = ms(cfg.keep_alive);
  limits.head_timeout_ms = ms(cfg.timeout_request_head);
  limits.body_timeout_ms = ms(cfg.timeout_request_body);
  limits.write_timeout_ms = ms(cfg.timeout_response_write);
  limits.max_connections = static_cast<size_t>(cfg.worker_connections);
  limits.ws_max_message = static_cast<uint64_t>(cfg.ws_max_size);
  limits.ws_ping_interval_ms = ms(cfg.ws_ping_interval);
  limits.ws_ping_timeout_ms = ms(cfg.ws_ping_timeout);
  limits.server_header = cfg.server_header;
  limits.date_header = cfg.date_header;
  for (const std::string& h : cfg.header) add_header(h, limits);
  // The option table checked the list: it parses.
  limits.proxy_protocol =
      cfg.proxy_protocol &&
      conf::AddressList::parse(cfg.proxy_allow_from, &limits.proxy_allow, nullptr);
  return limits;
}

uint64_t heartbeat_interval_ms(const conf::Config& cfg) {
  if (cfg.timeout <= 0) return 1000;
  return std::clamp<uint64_t>(static_cast<uint64_t>(cfg.timeout * 1000 / 4), 50, 1000);
}

}  // namespace rotor::worker
