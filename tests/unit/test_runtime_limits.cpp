#include <doctest/doctest.h>

#include "conf/config.hpp"
#include "workers/worker_limits.hpp"

using rotor::conf::Config;
using rotor::worker::heartbeat_interval_ms;
using rotor::worker::server_limits;

TEST_CASE("worker limits: the request limits and timeouts come from the config, in ms") {
  Config cfg;
  cfg.limit_request_line = 100;
  cfg.limit_request_fields = 7;
  cfg.limit_request_field_size = 200;
  cfg.limit_request_head = 3000;
  cfg.limit_request_body = 4000;
  cfg.limit_concurrency = 9;
  cfg.keep_alive = 2.5;
  cfg.timeout_request_head = 1;
  cfg.timeout_request_body = 0;
  cfg.timeout_response_write = 0.25;
  cfg.worker_connections = 11;
  cfg.ws_max_size = 1234;
  cfg.ws_ping_interval = 0;
  cfg.ws_ping_timeout = 3;
  auto l = server_limits(cfg);
  CHECK(l.parse.request_line == 100);
  CHECK(l.parse.fields == 7);
  CHECK(l.parse.field_size == 200);
  CHECK(l.parse.head == 3000);
  CHECK(l.parse.body == 4000);
  CHECK(l.max_in_flight == 9);
  CHECK(l.keep_alive_ms == 2500);
  CHECK(l.head_timeout_ms == 1000);
  CHECK(l.body_timeout_ms == 0);
  CHECK(l.write_timeout_ms == 250);
  CHECK(l.max_connections == 11);
  CHECK(l.ws_max_message == 1234);
  CHECK(l.ws_ping_interval_ms == 0);
  CHECK(l.ws_ping_timeout_ms == 3000);
}

TEST_CASE("worker limits: without --header, rotor sends its own Server and Date and nothing else") {
  auto l = server_limits(Config{});
  CHECK(l.server_header);
  CHECK(l.date_header);
  CHECK(l.extra_headers.empty());
  Config off;
  off.server_header = false;
  off.date_header = false;
  auto m = server_limits(off);
  CHECK_FALSE(m.server_header);
  CHECK_FALSE(m.date_header);
}

TEST_CASE("worker limits: --header lines are trimmed, and a Server or Date one replaces rotor's") {
  Config cfg;
  cfg.header = {"X-Frame-Options:  DENY \t", "server:edge", "X-Empty:", "DATE: then"};
  auto l = server_limits(cfg);
  CHECK(l.extra_headers == "X-Frame-Options: DENY\r\nserver: edge\r\nX-Empty: \r\nDATE: then\r\n");
  CHECK_FALSE(l.server_header);
  CHECK_FALSE(l.date_header);
  cfg.header = {"X-A: 1"};
  CHECK(server_limits(cfg).server_header);
  CHECK(server_limits(cfg).date_header);
}

TEST_CASE("worker limits: a worker beats four times per --timeout, within 50 ms and 1 s") {
  Config cfg;
  cfg.timeout = 2;
  CHECK(heartbeat_interval_ms(cfg) == 500);
  cfg.timeout = 0.1;
  CHECK(heartbeat_interval_ms(cfg) == 50);
  cfg.timeout = 30;
  CHECK(heartbeat_interval_ms(cfg) == 1000);
  cfg.timeout = 0;  // no timeout: still beats, once a second
  CHECK(heartbeat_interval_ms(cfg) == 1000);
}
