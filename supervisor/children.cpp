#include "supervisor/children.hpp"

#include <sys/wait.h>

#include <cstring>

namespace rotor {

const char* exit_reason_name(ExitReason reason) {
  switch (reason) {
    case ExitReason::kNone:
      return "";
    case ExitReason::kCrash:
      return "crash";
    case ExitReason::kTimeout:
      return "timeout";
    case ExitReason::kSignal:
      return "signal";
    case ExitReason::kShutdown:
      return "shutdown";
    case ExitReason::kReload:
      return "reload";
    case ExitReason::kScaleDown:
      return "scale-down";
    case ExitReason::kMaxRequests:
      return "max-requests";
    case ExitReason::kMaxRss:
      return "max-rss";
    case ExitReason::kMaxPrivate:
      return "max-private";
    case ExitReason::kMaxLifetime:
      return "max-lifetime";
    case ExitReason::kRotate:
      return "rotate";
    case ExitReason::kMemoryBudget:
      return "memory-budget";
  }
  return "";
}

ExitReason exit_reason_from(std::string_view name) {
  for (ExitReason r : {ExitReason::kMaxRequests, ExitReason::kMaxRss, ExitReason::kMaxPrivate,
                       ExitReason::kMaxLifetime}) {
    if (name == exit_reason_name(r)) return r;
  }
  return ExitReason::kNone;
}

ExitReason drain_reason(const Worker& w, ExitReason otherwise) {
  if (w.reason != ExitReason::kNone) return w.reason;
  if (w.due_soon && w.due_reason != ExitReason::kNone) return w.due_reason;
  return otherwise;
}

std::string exit_status_text(int status) {
  if (WIFEXITED(status)) return "exit:" + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return std::string("signal:") + (name ? name : std::to_string(WTERMSIG(status)).c_str());
  }
  return "unknown";
}

const char* spawn_reason_name(const Worker& w) {
  switch (w.cause) {
    case SpawnCause::kBoot:
      return "boot";
    case SpawnCause::kReplace:
      return "replace";
    case SpawnCause::kSuccessor:
      break;
  }
  return w.succeeds_for == ExitReason::kNone ? "due-soon" : exit_reason_name(w.succeeds_for);
}

Worker* Children::find(uint64_t id) {
  for (auto& [pid, w] : workers_) {
    if (w.id == id) return &w;
  }
  auto it = pending_.find(id);
  return it == pending_.end() ? nullptr : &it->second;
}

Worker* Children::find_pid(pid_t pid) {
  auto it = workers_.find(pid);
  return it == workers_.end() ? nullptr : &it->second;
}

void Children::link_successor(Worker& w, uint64_t predecessor) {
  Worker* old = predecessor ? find(predecessor) : nullptr;
  if (!old) return;
  old->successor = w.id;
  w.is_successor = true;
  w.cause = SpawnCause::kSuccessor;
  w.succeeds_for = old->reason;
  w.replaces = old->pid;
}

void Children::add(const Worker& w) {
  workers_[w.pid] = w;
}

void Children::add_pending(const Worker& w) {
  pending_[w.id] = w;
}

void Children::unlink(uint64_t id) {
  Worker* gone = find(id);
  uint64_t successor = gone ? gone->successor : 0;
  auto unlink_from = [id, successor](Worker& other) {
    if (other.successor == id) other.successor = 0;
    if (successor == other.id) other.is_successor = false;
  };
  for (auto& [pid, other] : workers_) unlink_from(other);
  for (auto& [pending_id, other] : pending_) unlink_from(other);
}

void Children::remove(pid_t pid) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  unlink(it->second.id);
  workers_.erase(it);
}

std::optional<Worker> Children::drop_pending(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  Worker w = it->second;
  unlink(id);
  pending_.erase(it);
  return w;
}

std::vector<uint64_t> Children::pending_of(pid_t tpid) const {
  std::vector<uint64_t> ids;
  for (const auto& [id, w] : pending_) {
    if (w.template_pid == tpid) ids.push_back(id);
  }
  return ids;
}

std::vector<uint64_t> Children::overdue(int64_t now_ns, int64_t wait_ns) const {
  std::vector<uint64_t> ids;
  for (const auto& [id, w] : pending_) {
    if (now_ns - w.started_ns > wait_ns) ids.push_back(id);
  }
  return ids;
}

bool Children::note_unknown_exit(pid_t pid, const ChildExit& exit, int64_t now_ns) {
  if (templates_.empty()) return false;  // no template is left to report it
  unknown_exits_[pid] = {exit, now_ns};
  return true;
}

void Children::forget_unknown_exits(int64_t now_ns, int64_t keep_ns) {
  std::erase_if(unknown_exits_, [&](const auto& e) { return now_ns - e.second.second > keep_ns; });
}

AdoptResult Children::adopt(uint64_t id, pid_t pid, bool alive) {
  AdoptResult result;
  // Only a pid that is not our child now may be one that died before it was reported; an
  // older exit of the same pid (an app's subprocess we reaped) must not be applied to it.
  auto early = alive ? unknown_exits_.end() : unknown_exits_.find(pid);
  if (alive) unknown_exits_.erase(pid);
  if (!alive && early == unknown_exits_.end()) return result;
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    result.outcome = Adoption::kUnwanted;
    if (!alive) unknown_exits_.erase(early);
    return result;
  }
  Worker w = it->second;
  pending_.erase(it);
  w.pid = pid;
  result.worker = &(workers_[pid] = w);
  result.outcome = alive ? Adoption::kAdopted : Adoption::kDied;
  if (!alive) {
    result.exit = early->second.first;
    unknown_exits_.erase(early);
  }
  return result;
}

void Children::reload_before(uint64_t generation) {
  for (auto& [pid, w] : workers_) {
    if (w.generation < generation && w.phase != policy::Phase::kDraining &&
        w.reason == ExitReason::kNone) {
      w.reason = ExitReason::kReload;
    }
  }
}

std::vector<policy::WorkerView> Children::views() const {
  std::vector<policy::WorkerView> views;
  views.reserve(workers_.size() + pending_.size());
  auto view = [](const Worker& w) {
    policy::WorkerView v;
    v.id = w.id;
    v.phase = w.phase;
    v.retiring = w.reason != ExitReason::kNone;
    v.due_soon = w.due_soon;
    v.ready_ns = w.ready_ns;
    v.successor = w.successor;
    v.is_successor = w.is_successor;
    v.started_ns = w.started_ns;
    return v;
  };
  for (const auto& [pid, w] : workers_) views.push_back(view(w));
  for (const auto& [id, w] : pending_) views.push_back(view(w));
  return views;
}

Template* Children::find_template(pid_t pid) {
  auto it = templates_.find(pid);
  return it == templates_.end() ? nullptr : &it->second;
}

Template* Children::ready_template() {
  Template* best = nullptr;
  for (auto& [pid, t] : templates_) {
    if (!t.ready || t.asked_to_exit || t.exited || t.fd < 0) continue;
    if (!best || t.generation > best->generation) best = &t;
  }
  return best;
}

}  // namespace rotor
