#include <doctest/doctest.h>

#include <sys/wait.h>

#include <csignal>

#include "supervisor/children.hpp"

using rotor::Adoption;
using rotor::ChildExit;
using rotor::Children;
using rotor::ExitReason;
using rotor::SpawnCause;
using rotor::Template;
using rotor::Worker;
using rotor::policy::Phase;

namespace {

Worker worker(uint64_t id, pid_t pid, uint64_t generation = 1) {
  Worker w;
  w.id = id;
  w.pid = pid;
  w.slot = id;
  w.generation = generation;
  return w;
}

Template ready_template(pid_t pid, uint64_t generation) {
  Template t;
  t.pid = pid;
  t.fd = 3;
  t.generation = generation;
  t.ready = true;
  return t;
}

}  // namespace

TEST_CASE("children: a worker is found by its id and by its pid") {
  Children c;
  c.add(worker(1, 100));
  REQUIRE(c.find(1) != nullptr);
  CHECK(c.find(1)->pid == 100);
  REQUIRE(c.find_pid(100) != nullptr);
  CHECK(c.find_pid(100)->id == 1);
  CHECK(c.find(2) == nullptr);
  CHECK(c.find_pid(101) == nullptr);
}

TEST_CASE("children: a pending spawn is found by id and becomes a worker once its pid is known") {
  Children c;
  c.add_pending(worker(7, 0));
  REQUIRE(c.find(7) != nullptr);
  CHECK(c.find(7)->pid == 0);
  auto r = c.adopt(7, 200, true);
  CHECK(r.outcome == Adoption::kAdopted);
  REQUIRE(r.worker != nullptr);
  CHECK(r.worker->pid == 200);
  CHECK(c.pending().empty());
  CHECK(c.find_pid(200) == r.worker);
}

TEST_CASE("children: a worker reaped before its template reported it gets its exit applied") {
  Children c;
  c.add_template(ready_template(50, 1));
  c.add_pending(worker(3, 0));
  ChildExit exit{.status = 9, .cpu_ms = 1.5, .minflt = 4};
  CHECK(c.note_unknown_exit(300, exit, 1000));
  auto r = c.adopt(3, 300, false);
  CHECK(r.outcome == Adoption::kDied);
  REQUIRE(r.worker != nullptr);
  CHECK(r.worker->pid == 300);
  CHECK(r.exit.status == 9);
  CHECK(r.exit.minflt == 4);
  // Its exit is used once: a second report of the same pid is not trusted.
  c.remove(300);
  c.add_pending(worker(4, 0));
  CHECK(c.adopt(4, 300, false).outcome == Adoption::kRejected);
}

TEST_CASE("children: an exit nobody can report is not kept, and a kept one expires") {
  Children c;
  CHECK_FALSE(c.note_unknown_exit(300, {}, 0));  // no template to name it
  c.add_template(ready_template(50, 1));
  CHECK(c.note_unknown_exit(300, {}, 0));
  c.forget_unknown_exits(100, 50);
  c.add_pending(worker(1, 0));
  CHECK(c.adopt(1, 300, false).outcome == Adoption::kRejected);
  CHECK(c.pending().size() == 1);  // the caller withdraws it
}

TEST_CASE("children: a pid that is no child of ours and was never reaped is rejected") {
  Children c;
  c.add_pending(worker(1, 0));
  CHECK(c.adopt(1, 999, false).outcome == Adoption::kRejected);
  CHECK(c.pending().count(1) == 1);
  CHECK(c.workers().empty());
}

TEST_CASE("children: a worker reported for a withdrawn request is unwanted") {
  Children c;
  c.add_template(ready_template(50, 1));
  c.add_pending(worker(1, 0));
  auto dropped = c.drop_pending(1);
  REQUIRE(dropped.has_value());
  CHECK(dropped->id == 1);
  CHECK_FALSE(c.drop_pending(1).has_value());
  CHECK(c.adopt(1, 400, true).outcome == Adoption::kUnwanted);
  CHECK(c.workers().empty());
  // One that died meanwhile: its kept exit is forgotten with it.
  c.note_unknown_exit(401, {}, 0);
  CHECK(c.adopt(1, 401, false).outcome == Adoption::kUnwanted);
  c.add_pending(worker(2, 0));
  CHECK(c.adopt(2, 401, false).outcome == Adoption::kRejected);
}

TEST_CASE("children: a successor is linked to the worker it replaces, and says why it came") {
  Children c;
  Worker old = worker(1, 100);
  old.reason = ExitReason::kMaxRequests;
  c.add(old);
  Worker next = worker(2, 0);
  next.cause = SpawnCause::kReplace;
  c.link_successor(next, 1);
  CHECK(c.find(1)->successor == 2);
  CHECK(next.is_successor);
  CHECK(next.replaces == 100);
  CHECK(std::string(rotor::spawn_reason_name(next)) == "max-requests");

  Worker due = worker(3, 0);
  c.add(worker(4, 104));  // due soon: no reason yet
  c.link_successor(due, 4);
  CHECK(std::string(rotor::spawn_reason_name(due)) == "due-soon");

  Worker fresh = worker(5, 0);
  fresh.cause = SpawnCause::kReplace;
  c.link_successor(fresh, 0);
  CHECK_FALSE(fresh.is_successor);
  CHECK(std::string(rotor::spawn_reason_name(fresh)) == "replace");
  fresh.cause = SpawnCause::kBoot;
  CHECK(std::string(rotor::spawn_reason_name(fresh)) == "boot");
}

TEST_CASE("children: when a successor leaves, its predecessor waits for another one") {
  Children c;
  c.add(worker(1, 100));
  Worker next = worker(2, 0);
  c.link_successor(next, 1);
  c.add_pending(next);
  c.drop_pending(2);
  CHECK(c.find(1)->successor == 0);
}

TEST_CASE("children: when a predecessor leaves, its successor is simply a worker") {
  Children c;
  c.add(worker(1, 100));
  Worker next = worker(2, 200);
  c.link_successor(next, 1);
  c.add(next);
  CHECK(c.find_pid(200)->is_successor);
  c.remove(100);
  CHECK_FALSE(c.find_pid(200)->is_successor);
  CHECK(c.find(1) == nullptr);
}

TEST_CASE("children: a spawn that failed before it was recorded leaves no link behind") {
  Children c;
  c.add(worker(1, 100));
  Worker next = worker(2, 0);
  c.link_successor(next, 1);
  c.unlink(next.id);
  CHECK(c.find(1)->successor == 0);
}

TEST_CASE("children: a reload rotates older workers that are not leaving already") {
  Children c;
  c.add(worker(1, 100, 1));
  Worker draining = worker(2, 101, 1);
  draining.phase = Phase::kDraining;
  c.add(draining);
  Worker leaving = worker(3, 102, 1);
  leaving.reason = ExitReason::kMaxRss;
  c.add(leaving);
  c.add(worker(4, 103, 2));
  c.add_pending(worker(5, 0, 1));
  c.reload_before(2);
  CHECK(c.find_pid(100)->reason == ExitReason::kReload);
  CHECK(c.find_pid(101)->reason == ExitReason::kNone);
  CHECK(c.find_pid(102)->reason == ExitReason::kMaxRss);
  CHECK(c.find_pid(103)->reason == ExitReason::kNone);
  CHECK(c.find(5)->reason == ExitReason::kNone);
}

TEST_CASE("children: the planner sees the workers, then the pending spawns") {
  Children c;
  c.add_pending(worker(9, 0));
  Worker w = worker(1, 100);
  w.reason = ExitReason::kReload;
  w.phase = Phase::kReady;
  c.add(w);
  c.add(worker(2, 50));
  auto views = c.views();
  REQUIRE(views.size() == 3);
  CHECK(views[0].id == 2);  // by pid
  CHECK(views[1].id == 1);
  CHECK(views[1].retiring);
  CHECK(views[1].phase == Phase::kReady);
  CHECK_FALSE(views[0].retiring);
  CHECK(views[2].id == 9);
}

TEST_CASE("children: pending spawns are found by their template and by how long they waited") {
  Children c;
  Worker a = worker(1, 0);
  a.template_pid = 50;
  a.started_ns = 0;
  Worker b = worker(2, 0);
  b.template_pid = 60;
  b.started_ns = 90;
  c.add_pending(a);
  c.add_pending(b);
  CHECK(c.pending_of(50) == std::vector<uint64_t>{1});
  CHECK(c.pending_of(70).empty());
  CHECK(c.overdue(100, 50) == std::vector<uint64_t>{1});
  CHECK(c.overdue(100, 100).empty());
}

TEST_CASE("children: the ready template is the newest one that is ready and staying") {
  Children c;
  CHECK(c.ready_template() == nullptr);
  c.add_template(ready_template(50, 1));
  Template importing = ready_template(60, 3);
  importing.ready = false;
  c.add_template(importing);
  Template leaving = ready_template(70, 2);
  leaving.asked_to_exit = true;
  c.add_template(leaving);
  REQUIRE(c.ready_template() != nullptr);
  CHECK(c.ready_template()->pid == 50);
  c.add_template(ready_template(80, 2));
  CHECK(c.ready_template()->pid == 80);
  CHECK(c.find_template(60) != nullptr);
  c.remove_template(80);
  CHECK(c.find_template(80) == nullptr);
  CHECK(c.ready_template()->pid == 50);
}

TEST_CASE("children: exit reasons have the names the logs show") {
  CHECK(std::string(rotor::exit_reason_name(ExitReason::kNone)).empty());
  CHECK(std::string(rotor::exit_reason_name(ExitReason::kCrash)) == "crash");
  CHECK(std::string(rotor::exit_reason_name(ExitReason::kScaleDown)) == "scale-down");
  CHECK(std::string(rotor::exit_reason_name(ExitReason::kShutdown)) == "shutdown");
  for (ExitReason r : {ExitReason::kMaxRequests, ExitReason::kMaxRss, ExitReason::kMaxPrivate,
                       ExitReason::kMaxLifetime}) {
    CHECK(rotor::exit_reason_from(rotor::exit_reason_name(r)) == r);
  }
  CHECK(rotor::exit_reason_from("crash") == ExitReason::kNone);
}

TEST_CASE("children: a wait status reads as exit:N or signal:NAME") {
  CHECK(rotor::exit_status_text(3 << 8) == "exit:3");
  CHECK(rotor::exit_status_text(SIGKILL) == "signal:KILL");
}

TEST_CASE(
    "children: a drained worker leaves for its own reason, else its due limit, else the cause") {
  Worker w = worker(1, 100);
  CHECK(rotor::drain_reason(w, ExitReason::kScaleDown) == ExitReason::kScaleDown);
  // A due-soon worker whose successor reached its own limit first is surplus: it still leaves
  // for the limit it was about to reach, not for a scale-down nobody asked for.
  w.due_soon = true;
  w.due_reason = ExitReason::kMaxRequests;
  CHECK(rotor::drain_reason(w, ExitReason::kScaleDown) == ExitReason::kMaxRequests);
  w.reason = ExitReason::kMaxRss;
  CHECK(rotor::drain_reason(w, ExitReason::kScaleDown) == ExitReason::kMaxRss);
}
