// The control socket's commands as data, and the pure decisions on them: what `rotor ctl`'s
// words mean, their one-line JSON form ({"v":1,"cmd":"scale","n":3}), and whether the master
// carries one out given its workers and limits (or refuses it, with the reason). No I/O.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/json.hpp"

namespace rotor::control {

constexpr int kProtocolVersion = 1;

enum class Verb { kStatus, kWorkers, kReload, kScale, kAdd, kRemove, kRotate, kReopen, kStop };
const char* verb_name(Verb verb);

struct Request {
  Verb verb = Verb::kStatus;
  int64_t n = 1;      // scale, add, remove
  pid_t pid = 0;      // rotate: one worker (0 with `all`)
  bool all = false;   // rotate all
  bool fast = false;  // stop --fast
};

// The words after `rotor ctl [options]`: a request, or nothing with `error` set (one line).
std::optional<Request> from_words(const std::vector<std::string>& words, std::string* error);
// A request line as the client sends it (no newline), and as the master reads it.
std::string to_line(const Request& request);
std::optional<Request> from_line(std::string_view line, std::string* error);

// What the master knows when it decides.
struct State {
  int desired = 1;  // workers it keeps
  int max_workers = 0;
  bool stopping = false;
  std::vector<pid_t> serving;  // ready workers with no reason to leave: rotatable
  std::vector<pid_t> leaving;  // workers already retiring or draining
  std::vector<pid_t> booting;
};

struct Decision {
  std::string refusal;  // empty: carry it out
  int desired = 0;      // scale, add, remove: the new number of workers
  std::vector<pid_t> rotate;
};
Decision decide(const Request& request, const State& state);

// Replies: {"v":1,"ok":true,...} or {"v":1,"ok":false,"error":"..."}.
json::Value ok_reply(json::Object fields = {});
json::Value error_reply(const std::string& why);

}  // namespace rotor::control
