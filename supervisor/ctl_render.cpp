#include "supervisor/ctl_render.hpp"

#include <fmt/format.h>

namespace rotor::ctl {
namespace {

double number(const json::Value& v, std::string_view key) {
  const json::Value* m = v.get(key);
  return m && m->number() ? *m->number() : 0;
}

std::string text(const json::Value& v, std::string_view key) {
  const json::Value* m = v.get(key);
  return m && m->string() ? *m->string() : "";
}

int64_t whole(const json::Value& v, std::string_view key) {
  return static_cast<int64_t>(number(v, key));
}

std::string age_text(double s) {
  if (s < 120) return fmt::format("{:.0f}s", s);
  if (s < 7200) return fmt::format("{:.0f}m", s / 60);
  return fmt::format("{:.1f}h", s / 3600);
}

std::string requests_text(const json::Value& w) {
  int64_t limit = whole(w, "limit");
  return limit ? fmt::format("{}/{}", whole(w, "requests"), limit)
               : fmt::format("{}/-", whole(w, "requests"));
}

std::string pid_list(const json::Value* pids) {
  std::string out;
  if (!pids || !pids->array()) return out;
  for (const auto& p : *pids->array()) {
    if (p.number()) out += fmt::format(" {}", static_cast<int64_t>(*p.number()));
  }
  return out;
}

}  // namespace

std::string render_status(const json::Value& s) {
  std::string listeners;
  if (const json::Value* l = s.get("listeners"); l && l->array()) {
    for (const auto& a : *l->array()) listeners += " " + (a.string() ? *a.string() : "");
  }
  const json::Value* c = s.get("config");
  json::Value none;
  const json::Value& cfg = c ? *c : none;
  std::string app = text(cfg, "app");
  return fmt::format(
      "master      pid {}, rotor {}, up {}{}\n"
      "generation  {} (in force: {})\n"
      "workers     {} running, {} wanted, {} requests served\n"
      "listeners  {}\n"
      "config      {} {}, max-requests {} (+{} jitter), {} rotation(s) at once, "
      "timeout {}s, graceful {}s\n",
      whole(s, "master_pid"), text(s, "version"), age_text(number(s, "uptime_s")),
      s.get("stopping") && s.get("stopping")->boolean() && *s.get("stopping")->boolean()
          ? ", stopping"
          : "",
      whole(s, "generation"), whole(s, "generation_in_force"), whole(s, "workers"),
      whole(s, "desired"), whole(s, "served"), listeners, text(cfg, "worker_class"),
      app.empty() ? "-" : app, whole(cfg, "max_requests"), whole(cfg, "max_requests_jitter"),
      whole(cfg, "max_concurrent_rotations"), number(cfg, "timeout"),
      number(cfg, "graceful_timeout"));
}

Counts request_counts(const json::Value& workers) {
  Counts out;
  if (!workers.array()) return out;
  for (const auto& w : *workers.array()) out[whole(w, "pid")] = number(w, "requests");
  return out;
}

std::string render_workers(const json::Value& workers, const Counts* previous, double interval_s) {
  std::string out =
      fmt::format("{:>8} {:>4} {:>4} {:<9} {:>15} {:>8} {:>8} {:>8} {:>6}\n", "PID", "SLOT", "GEN",
                  "STATE", "REQUESTS/LIMIT", "REQ/S", "RSS_MiB", "PRIV_MiB", "AGE");
  if (!workers.array()) return out;
  for (const auto& w : *workers.array()) {
    double rate = number(w, "req_per_s");
    if (previous && interval_s > 0) {
      auto it = previous->find(whole(w, "pid"));
      if (it != previous->end()) rate = (number(w, "requests") - it->second) / interval_s;
    }
    out += fmt::format("{:>8} {:>4} {:>4} {:<9} {:>15} {:>8.1f} {:>8.1f} {:>8.1f} {:>6}\n",
                       whole(w, "pid"), whole(w, "slot"), whole(w, "generation"), text(w, "state"),
                       requests_text(w), rate, number(w, "rss_mib"), number(w, "private_mib"),
                       age_text(number(w, "age_s")));
  }
  return out;
}

std::string render_reply(const control::Request& r, const json::Value& reply) {
  using control::Verb;
  switch (r.verb) {
    case Verb::kStatus:
      return reply.get("status") ? render_status(*reply.get("status")) : "";
    case Verb::kWorkers:
      return reply.get("workers") ? render_workers(*reply.get("workers")) : "";
    case Verb::kReload:
      return fmt::format("reload: generation {} started\n", whole(reply, "generation"));
    case Verb::kScale:
    case Verb::kAdd:
    case Verb::kRemove:
      return fmt::format("{}: {} workers wanted\n", control::verb_name(r.verb),
                         whole(reply, "workers"));
    case Verb::kRotate: {
      std::string pids = pid_list(reply.get("rotating"));
      return pids.empty() ? "rotate: no worker to rotate\n" : "rotate: rotating" + pids + "\n";
    }
    case Verb::kReopen:
      return "reopen: logs reopened\n";
    case Verb::kStop:
      return "stop: " + text(reply, "mode") + " stop begun\n";
  }
  return "";
}

}  // namespace rotor::ctl
