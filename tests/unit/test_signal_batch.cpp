#include <doctest/doctest.h>

#include <csignal>

#include "supervisor/signal_batch.hpp"

using rotor::SignalBatch;
using rotor::StopKind;

TEST_CASE("signals: a stop in the batch wins over a HUP and scaling, whatever their order") {
  SignalBatch b;
  b.add(SIGHUP);
  b.add(SIGTTIN);
  b.add(SIGTERM);
  b.add(SIGTTOU);
  auto p = b.plan(false);
  CHECK(p.stop == StopKind::kGraceful);
  CHECK_FALSE(p.reload);
  CHECK(p.scale == 0);
  CHECK(p.ignored == 3);
}

TEST_CASE("signals: once stopping, a HUP or a TTIN does nothing, a log reopen still happens") {
  SignalBatch b;
  b.add(SIGHUP);
  b.add(SIGTTIN);
  b.add(SIGUSR1);
  auto p = b.plan(true);
  CHECK(p.stop == StopKind::kNone);
  CHECK_FALSE(p.reload);
  CHECK(p.scale == 0);
  CHECK(p.reopen);
  CHECK(p.ignored == 2);
}

TEST_CASE("signals: a fast stop wins over a graceful one in the same batch") {
  SignalBatch b;
  b.add(SIGTERM);
  b.add(SIGQUIT);
  CHECK(b.plan(false).stop == StopKind::kFast);
}

TEST_CASE("signals: without a stop, HUP reloads and TTIN/TTOU add up") {
  SignalBatch b;
  b.add(SIGTTIN);
  b.add(SIGTTIN);
  b.add(SIGTTOU);
  b.add(SIGHUP);
  b.add(SIGCHLD);
  auto p = b.plan(false);
  CHECK(p.stop == StopKind::kNone);
  CHECK(p.reload);
  CHECK(p.scale == 1);
  CHECK(p.ignored == 0);
}
