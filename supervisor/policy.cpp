#include "supervisor/policy.hpp"

#include <algorithm>
#include <unordered_map>

namespace rotor::policy {

uint64_t draw_request_limit(int64_t max_requests, int64_t jitter, std::mt19937_64& rng) {
  if (max_requests <= 0) return 0;
  uint64_t extra = 0;
  if (jitter > 0) {
    extra = std::uniform_int_distribution<uint64_t>(0, static_cast<uint64_t>(jitter))(rng);
  }
  return static_cast<uint64_t>(max_requests) + extra;
}

int64_t draw_lifetime_ns(double max_lifetime, double jitter, std::mt19937_64& rng) {
  if (max_lifetime <= 0) return 0;
  double extra = jitter > 0 ? std::uniform_real_distribution<double>(0, jitter)(rng) : 0;
  return static_cast<int64_t>((max_lifetime + extra) * 1e9);
}

std::optional<std::string> retire_reason(const RetireInputs& in) {
  if (in.request_limit > 0 && in.requests >= in.request_limit) return "max-requests";
  if (in.max_rss_bytes > 0 && in.rss_bytes > in.max_rss_bytes &&
      in.now_ns - in.ready_ns >= in.rss_min_age_ns) {
    return "max-rss";
  }
  if (in.max_private_bytes > 0 && in.private_bytes > in.max_private_bytes &&
      in.now_ns - in.ready_ns >= in.private_min_age_ns) {
    return "max-private";
  }
  int64_t deadline = guarded_deadline(in.deadline_ns, in.ready_ns, in.lifetime_min_age_ns);
  if (deadline > 0 && in.now_ns >= deadline) return "max-lifetime";
  return std::nullopt;
}

int64_t guarded_deadline(int64_t deadline_ns, int64_t ready_ns, int64_t min_age_ns) {
  return deadline_ns > 0 ? std::max(deadline_ns, ready_ns + min_age_ns) : 0;
}

bool retired_at_once(const std::string& reason, const RetireInputs& in, bool seen_under) {
  if (reason == "max-rss" || reason == "max-private") return !seen_under;
  if (reason == "max-lifetime") return in.deadline_ns <= in.ready_ns + in.lifetime_min_age_ns;
  return false;
}

bool LimitGuard::on_retire(bool at_once) {
  if (!at_once) {
    min_age_ns_ = floor_ns_;
    return false;
  }
  min_age_ns_ = std::min(cap_ns_, 2 * min_age_ns_);
  bool first = !warned_;
  warned_ = true;
  return first;
}

bool death_is_boot_failure(const DeathInputs& in, int64_t settle_ns) {
  if (!in.was_ready) return true;
  return !in.took_work && in.ready_for_ns < settle_ns;
}

std::optional<std::string> rotation_due_soon(const DueInputs& in) {
  if (in.deadline_ns > 0 && in.deadline_ns - in.now_ns <= in.lead_ns) return "max-lifetime";
  if (in.request_limit == 0 || in.requests >= in.request_limit) return std::nullopt;
  int64_t served_ns = in.now_ns - in.ready_ns;
  if (in.requests == 0 || served_ns <= 0 || served_ns < in.lead_ns) return std::nullopt;
  // requests left <= rate * lead, in integers: left * served_ns <= requests * lead_ns.
  double left = static_cast<double>(in.request_limit - in.requests);
  if (left * static_cast<double>(served_ns) <=
      static_cast<double>(in.requests) * static_cast<double>(in.lead_ns)) {
    return "max-requests";
  }
  return std::nullopt;
}

int64_t rotation_lead_ns(int64_t spawn_latency_ns, int64_t sweep_ns) {
  return spawn_latency_ns + spawn_latency_ns / 2 + sweep_ns;
}

void Backoff::on_crash(int64_t now_ns) {
  if (crashes_ > 0 && now_ns - last_crash_ns_ > window_ns_) crashes_ = 0;
  ++crashes_;
  last_crash_ns_ = now_ns;
  if (crashes_ <= 1) {
    delay_ns_ = 0;
  } else {
    delay_ns_ = base_ns_;
    for (int i = 2; i < crashes_ && delay_ns_ < max_ns_; ++i) delay_ns_ *= 2;
    delay_ns_ = std::min(delay_ns_, max_ns_);
  }
  not_before_ns_ = now_ns + delay_ns_;
}

Plan plan(const std::vector<WorkerView>& workers, int desired, int max_concurrent_rotations,
          bool spawn_allowed, PlanTiming timing) {
  Plan out;
  std::unordered_map<uint64_t, const WorkerView*> by_id;
  for (const auto& w : workers) by_id[w.id] = &w;

  // A retiring worker and its booting successor hold one place between them.
  int places = 0;
  int rotating = 0;
  std::vector<const WorkerView*> waiting;  // retiring, no successor yet
  std::vector<const WorkerView*> soon;     // due soon, no successor yet
  for (const auto& w : workers) {
    if (w.phase == Phase::kDraining) continue;
    ++places;
    if (!w.retiring && !w.due_soon) continue;
    auto succ = w.successor ? by_id.find(w.successor) : by_id.end();
    if (succ == by_id.end() || succ->second->phase == Phase::kDraining) {
      (w.retiring ? waiting : soon).push_back(&w);
      continue;
    }
    --places;
    const WorkerView& s = *succ->second;
    if (s.phase != Phase::kReady) {
      ++rotating;
    } else if (w.retiring) {
      out.drain.push_back(w.id);
    } else if (timing.early_grace_ns > 0 && s.ready_ns > 0 &&
               timing.now_ns - s.ready_ns >= timing.early_grace_ns) {
      out.drain.push_back(w.id);
      out.drain_early.push_back(w.id);
    }
  }

  int surplus = places - desired;
  if (surplus > 0) {
    // Shed the workers that were leaving anyway first, then the youngest booting, then the
    // oldest ready ones.
    std::vector<const WorkerView*> order = waiting;
    std::vector<const WorkerView*> booting, ready;
    for (const auto& w : workers) {
      if (w.phase == Phase::kDraining || w.retiring || w.is_successor) continue;
      (w.phase == Phase::kBooting ? booting : ready).push_back(&w);
    }
    std::sort(booting.begin(), booting.end(),
              [](auto* a, auto* b) { return a->started_ns > b->started_ns; });
    std::sort(ready.begin(), ready.end(),
              [](auto* a, auto* b) { return a->started_ns < b->started_ns; });
    order.insert(order.end(), booting.begin(), booting.end());
    order.insert(order.end(), ready.begin(), ready.end());
    for (int i = 0; i < surplus && i < static_cast<int>(order.size()); ++i) {
      out.scale_down.push_back(order[i]->id);
      waiting.erase(std::remove(waiting.begin(), waiting.end(), order[i]), waiting.end());
    }
    return out;
  }
  out.spawn_fresh = std::max(0, desired - places - (spawn_allowed ? 0 : timing.held_back));
  if (!spawn_allowed) return out;

  auto oldest_first = [](auto* a, auto* b) { return a->started_ns < b->started_ns; };
  std::sort(waiting.begin(), waiting.end(), oldest_first);
  std::sort(soon.begin(), soon.end(), oldest_first);
  waiting.insert(waiting.end(), soon.begin(), soon.end());
  for (const auto* w : waiting) {
    if (rotating >= max_concurrent_rotations) break;
    out.start_rotation.push_back(w->id);
    ++rotating;
  }
  return out;
}

TemplateExit template_exit(const TemplateExitInputs& in) {
  if (in.asked) return TemplateExit::kIgnore;
  if (in.was_ready) return TemplateExit::kRestart;
  // The workers of the generation in force (template or cold ones) keep serving.
  if (in.other_ready || (in.for_reload && in.ever_served)) return TemplateExit::kReloadFailed;
  if (!in.ever_served) return TemplateExit::kBootFailed;
  return TemplateExit::kRestart;  // a restart after a crash failed: keep trying, backed off
}

bool need_template(const TemplateNeedInputs& in) {
  if (!in.spawn_allowed) return false;
  if (!in.any_alive) return true;
  return !in.current_alive && !in.current_failed;
}

int auto_workers(int64_t quota_us, int64_t period_us, int affinity_cpus, int max_workers) {
  int64_t cpus = affinity_cpus;
  if (quota_us > 0 && period_us > 0) cpus = quota_us / period_us + (quota_us % period_us != 0);
  return static_cast<int>(std::clamp<int64_t>(cpus, 1, max_workers));
}

}  // namespace rotor::policy
