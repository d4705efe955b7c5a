// What `rotor ctl` and `rotor top` show people: the master's JSON replies as short text and
// tables. Pure: JSON in, text out.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "supervisor/control_command.hpp"
#include "supervisor/json.hpp"

namespace rotor::ctl {

// The text for a successful reply to `request`.
std::string render_reply(const control::Request& request, const json::Value& reply);

// `status` as a few lines.
std::string render_status(const json::Value& status);

// Requests served so far by pid, from a workers array: what top's rates are computed from.
using Counts = std::map<int64_t, double>;
Counts request_counts(const json::Value& workers);

// The workers as a table; with `previous` counts taken `interval_s` ago the REQ/S column is the
// rate over that interval, else each worker's average since it became ready.
std::string render_workers(const json::Value& workers, const Counts* previous = nullptr,
                           double interval_s = 0);

}  // namespace rotor::ctl
