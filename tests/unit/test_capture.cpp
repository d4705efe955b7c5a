// conf/capture: a helper program is read until it exits, bounded by its deadline, and nothing
// it leaves running outlives it.
#include <doctest/doctest.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "conf/capture.hpp"

using rotor::conf::capture;

namespace {

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Whether `pid` is gone within a few seconds (its new parent, init, reaps it).
bool gone(pid_t pid) {
  for (int i = 0; i < 300; ++i) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    usleep(10000);
  }
  return false;
}

}  // namespace

TEST_SUITE("capture") {
  TEST_CASE("a program that exits is done, although a child it left holds its output") {
    double started = now_s();
    auto run = capture({"/bin/sh", "-c", "sleep 100 & echo $!; exit 0"}, {}, "", 10000);
    CHECK(now_s() - started < 5);
    CHECK(run.error == "");
    CHECK(run.exit_code == 0);
    pid_t child = static_cast<pid_t>(std::stol(run.out));
    CHECK(gone(child));
  }

  TEST_CASE("a program past its deadline is killed with what it started") {
    double started = now_s();
    auto run = capture({"/bin/sh", "-c", "sleep 100 & echo $!; sleep 100"}, {}, "", 500);
    CHECK(now_s() - started < 5);
    CHECK(run.error == "did not finish within 0 s");
    CHECK(run.exit_code == -1);
    pid_t child = static_cast<pid_t>(std::stol(run.out));
    CHECK(gone(child));
  }

  TEST_CASE("all of the output is read") {
    auto run = capture({"/bin/sh", "-c", "/usr/bin/head -c 200000 /dev/zero | /usr/bin/tr '\\0' x"},
                       {}, "", 10000);
    CHECK(run.exit_code == 0);
    CHECK(run.out == std::string(200000, 'x'));
  }
}
