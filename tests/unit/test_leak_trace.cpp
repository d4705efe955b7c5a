// supervisor/leak_trace: which spawns carry tracemalloc, and the report directory's check.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>

#include "supervisor/leak_trace.hpp"
#include "temp_dir.hpp"

using rotor::leak_report_dir_refusal;
using rotor::traces_leaks;

TEST_SUITE("leak_trace") {
  TEST_CASE("no spawn is traced while the leak report is off") {
    for (uint64_t spawn = 1; spawn <= 8; ++spawn) CHECK_FALSE(traces_leaks(false, 1, spawn));
  }

  TEST_CASE("every spawn is traced at one in one") {
    for (uint64_t spawn = 1; spawn <= 8; ++spawn) CHECK(traces_leaks(true, 1, spawn));
  }

  TEST_CASE("the first spawn and then one in N are traced") {
    int traced = 0;
    for (uint64_t spawn = 1; spawn <= 40; ++spawn) traced += traces_leaks(true, 4, spawn);
    CHECK(traced == 10);
    CHECK(traces_leaks(true, 4, 1));
    CHECK_FALSE(traces_leaks(true, 4, 2));
    CHECK_FALSE(traces_leaks(true, 4, 4));
    CHECK(traces_leaks(true, 4, 5));
    // Two workers at one in two: the first boot spawn is traced, its sibling is not.
    CHECK(traces_leaks(true, 2, 1));
    CHECK_FALSE(traces_leaks(true, 2, 2));
  }

  TEST_CASE("an N below one traces every spawn, and spawn 0 (none) is never traced") {
    CHECK(traces_leaks(true, 0, 3));
    CHECK(traces_leaks(true, -5, 3));
    CHECK_FALSE(traces_leaks(true, 1, 0));
  }

  TEST_CASE("the report directory is created when missing and refused when it cannot be") {
    rotor::test::TempDir tmp;
    std::string fresh = tmp.dir() + "/reports";
    CHECK(leak_report_dir_refusal(fresh, false, 0, 0).empty());
    CHECK(std::filesystem::is_directory(fresh));
    CHECK(std::filesystem::is_empty(fresh));                  // the probe file is gone
    CHECK(leak_report_dir_refusal("", false, 0, 0).empty());  // none: the log only
    std::string file = tmp.write("plain", "x");
    CHECK(leak_report_dir_refusal(file, false, 0, 0) == file + ": not a directory");
    std::string under_file = file + "/reports";
    CHECK(leak_report_dir_refusal(under_file, false, 0, 0) == under_file + ": Not a directory");
    CHECK(
        leak_report_dir_refusal("/proc/rotor-reports", false, 0, 0).find("/proc/rotor-reports: ") ==
        0);
  }
}
