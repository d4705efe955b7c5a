// What a worker takes from its config before it serves: the HTTP server's limits, timeouts and
// response headers, and how often it beats. Pure: unit-tested without a process.
#pragma once

#include <cstdint>

#include "conf/config.hpp"
#include "workers/http/server.hpp"

namespace rotor::worker {

http::Limits server_limits(const conf::Config& cfg);

// Often enough that the master sees a stall within a small part of its --timeout: a quarter of
// it, within 50 ms .. 1 s (1 s without a timeout).
uint64_t heartbeat_interval_ms(const conf::Config& cfg);

}  // namespace rotor::worker
