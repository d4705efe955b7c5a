// The scoreboard is shared memory: a child's writes are seen by the parent.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "supervisor/scoreboard.hpp"

using namespace rotor;

TEST_SUITE("scoreboard") {
  TEST_CASE("slots are claimed, found and released") {
    Scoreboard sb(4);
    CHECK(sb.size() == 4);
    CHECK(sb.find_free() == 0);
    sb.claim(0, 11, 100);
    sb.claim(1, 12, 0);
    CHECK(sb.find_free() == 2);
    CHECK(sb.slot(0).request_limit.load() == 100);
    CHECK(sb.slot(0).state.load() == static_cast<uint32_t>(WorkerState::kBooting));
    sb.claim(2, 13, 0);
    sb.claim(3, 14, 0);
    CHECK(sb.find_free() == -1);
    sb.release(1);
    CHECK(sb.find_free() == 1);
    CHECK(sb.slot(1).state.load() == static_cast<uint32_t>(WorkerState::kFree));
  }

  TEST_CASE("a reclaimed slot starts from zero") {
    Scoreboard sb(1);
    sb.claim(0, 1, 10);
    sb.slot(0).requests.store(55);
    sb.slot(0).connections.store(3);
    sb.release(0);
    sb.claim(0, 2, 20);
    CHECK(sb.slot(0).requests.load() == 0);
    CHECK(sb.slot(0).connections.load() == 0);
    CHECK(sb.slot(0).token.load() == 2);
  }

  TEST_CASE("writes from a forked child are visible to the parent") {
    Scoreboard sb(2);
    sb.claim(1, 7, 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      sb.slot(1).requests.store(1234);
      sb.slot(1).state.store(static_cast<uint32_t>(WorkerState::kReady));
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(sb.slot(1).requests.load() == 1234);
    CHECK(sb.slot(1).state.load() == static_cast<uint32_t>(WorkerState::kReady));
    CHECK(std::string(to_string(WorkerState::kReady)) == "ready");
  }
}
