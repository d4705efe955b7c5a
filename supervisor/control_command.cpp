#include "supervisor/control_command.hpp"

#include <algorithm>
#include <charconv>

namespace rotor::control {
namespace {

constexpr Verb kVerbs[] = {Verb::kStatus, Verb::kWorkers, Verb::kReload, Verb::kScale, Verb::kAdd,
                           Verb::kRemove, Verb::kRotate,  Verb::kReopen, Verb::kStop};

std::optional<Verb> verb_from(std::string_view name) {
  for (Verb v : kVerbs) {
    if (name == verb_name(v)) return v;
  }
  return std::nullopt;
}

std::optional<int64_t> whole_number(std::string_view text) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return n;
}

bool takes_count(Verb v) {
  return v == Verb::kScale || v == Verb::kAdd || v == Verb::kRemove;
}

// The argument words of `verb` (after its name) into `r`; "" or the reason they are wrong.
std::string read_arguments(Verb verb, const std::vector<std::string>& args, Request& r) {
  std::string name = verb_name(verb);
  if (takes_count(verb)) {
    if (args.size() > 1 || (verb == Verb::kScale && args.empty()))
      return name + (verb == Verb::kScale ? " takes one number" : " takes at most one number");
    if (args.empty()) return "";
    auto n = whole_number(args[0]);
    if (!n) return name + ": not a whole number: " + args[0];
    r.n = *n;
    return "";
  }
  if (verb == Verb::kRotate) {
    if (args.size() != 1) return "rotate takes a worker's pid or 'all'";
    if (args[0] == "all") {
      r.all = true;
      return "";
    }
    auto pid = whole_number(args[0]);
    if (!pid || *pid <= 0 || *pid > INT32_MAX) return "rotate: not a pid: " + args[0];
    r.pid = static_cast<pid_t>(*pid);
    return "";
  }
  if (verb == Verb::kStop && args.size() == 1 && args[0] == "--fast") {
    r.fast = true;
    return "";
  }
  if (!args.empty())
    return name + " takes no argument" + (verb == Verb::kStop ? " but --fast" : "");
  return "";
}

bool contains(const std::vector<pid_t>& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

std::string rotate_refusal(pid_t pid, const State& s) {
  std::string p = "pid " + std::to_string(pid);
  if (contains(s.leaving, pid)) return p + " is already leaving";
  if (contains(s.booting, pid)) return p + " is still booting";
  return p + " is not a worker of this rotor";
}

Decision decide_count(const Request& r, const State& s) {
  Decision d;
  std::string name = verb_name(r.verb);
  int64_t target = r.verb == Verb::kScale ? r.n
                   : r.verb == Verb::kAdd ? s.desired + r.n
                                          : s.desired - r.n;
  if (r.verb != Verb::kScale && r.n < 1) {
    d.refusal = name + ": at least 1 (got " + std::to_string(r.n) + ")";
  } else if (target < 1) {
    d.refusal =
        r.verb == Verb::kScale
            ? "scale: at least 1 worker (got " + std::to_string(r.n) + ")"
            : "remove: rotor keeps at least 1 worker (it has " + std::to_string(s.desired) + ")";
  } else if (target > s.max_workers) {
    d.refusal = name + ": at most " + std::to_string(s.max_workers) + " workers (asked for " +
                std::to_string(target) + ")";
  }
  d.desired = static_cast<int>(std::clamp<int64_t>(target, 1, s.max_workers));
  return d;
}

}  // namespace

const char* verb_name(Verb verb) {
  switch (verb) {
    case Verb::kStatus:
      return "status";
    case Verb::kWorkers:
      return "workers";
    case Verb::kReload:
      return "reload";
    case Verb::kScale:
      return "scale";
    case Verb::kAdd:
      return "add";
    case Verb::kRemove:
      return "remove";
    case Verb::kRotate:
      return "rotate";
    case Verb::kReopen:
      return "reopen";
    case Verb::kStop:
      return "stop";
  }
  return "";
}

std::optional<Request> from_words(const std::vector<std::string>& words, std::string* error) {
  if (words.empty()) {
    *error = "no command";
    return std::nullopt;
  }
  auto verb = verb_from(words[0]);
  if (!verb) {
    *error = "unknown command: " + words[0];
    return std::nullopt;
  }
  Request r;
  r.verb = *verb;
  std::vector<std::string> args(words.begin() + 1, words.end());
  if (std::string why = read_arguments(*verb, args, r); !why.empty()) {
    *error = why;
    return std::nullopt;
  }
  return r;
}

std::string to_line(const Request& r) {
  json::Object o{{"v", kProtocolVersion}, {"cmd", verb_name(r.verb)}};
  if (takes_count(r.verb)) o.emplace_back("n", r.n);
  if (r.verb == Verb::kRotate) {
    if (r.all)
      o.emplace_back("pid", "all");
    else
      o.emplace_back("pid", static_cast<int64_t>(r.pid));
  }
  if (r.verb == Verb::kStop) o.emplace_back("fast", r.fast);
  return json::dump(json::Value(std::move(o)));
}

std::optional<Request> from_line(std::string_view line, std::string* error) {
  auto v = json::parse(line, error);
  if (!v) return std::nullopt;
  auto fail = [&](std::string why) -> std::optional<Request> {
    *error = std::move(why);
    return std::nullopt;
  };
  if (!v->object()) return fail("a request is a JSON object");
  const json::Value* version = v->get("v");
  if (!version || !version->number() || *version->number() != kProtocolVersion)
    return fail("unsupported protocol version (this rotor speaks v" +
                std::to_string(kProtocolVersion) + ")");
  const json::Value* cmd = v->get("cmd");
  auto verb = cmd && cmd->string() ? verb_from(*cmd->string()) : std::nullopt;
  if (!verb) return fail("unknown command");
  Request r;
  r.verb = *verb;
  if (takes_count(r.verb)) {
    const json::Value* n = v->get("n");
    if (n &&
        (!n->number() || *n->number() != static_cast<double>(static_cast<int64_t>(*n->number()))))
      return fail("n: not a whole number");
    if (n)
      r.n = static_cast<int64_t>(*n->number());
    else if (r.verb == Verb::kScale)
      return fail("scale needs n");
  }
  if (r.verb == Verb::kRotate) {
    const json::Value* pid = v->get("pid");
    if (pid && pid->string() && *pid->string() == "all") {
      r.all = true;
    } else if (pid && pid->number() && *pid->number() >= 1 && *pid->number() <= INT32_MAX) {
      r.pid = static_cast<pid_t>(*pid->number());
    } else {
      return fail("rotate needs pid: a worker's pid or \"all\"");
    }
  }
  if (const json::Value* fast = v->get("fast"); r.verb == Verb::kStop && fast && fast->boolean())
    r.fast = *fast->boolean();
  return r;
}

Decision decide(const Request& r, const State& s) {
  Decision d;
  d.desired = s.desired;
  bool reads_only = r.verb == Verb::kStatus || r.verb == Verb::kWorkers;
  if (s.stopping && !reads_only && r.verb != Verb::kStop) {
    d.refusal = "rotor is stopping";
    return d;
  }
  if (takes_count(r.verb)) return decide_count(r, s);
  if (r.verb != Verb::kRotate) return d;
  if (r.all) {
    d.rotate = s.serving;
  } else if (contains(s.serving, r.pid)) {
    d.rotate = {r.pid};
  } else {
    d.refusal = "rotate: " + rotate_refusal(r.pid, s);
  }
  return d;
}

json::Value ok_reply(json::Object fields) {
  json::Object o{{"v", kProtocolVersion}, {"ok", true}};
  for (auto& f : fields) o.push_back(std::move(f));
  return json::Value(std::move(o));
}

json::Value error_reply(const std::string& why) {
  return json::Value(json::Object{{"v", kProtocolVersion}, {"ok", false}, {"error", why}});
}

}  // namespace rotor::control
