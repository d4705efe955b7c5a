#include <doctest/doctest.h>

#include <unistd.h>

#include "supervisor/memory.hpp"

using rotor::GrowthFit;
using rotor::parse_smaps_rollup;

namespace {

// /proc/PID/smaps_rollup of a process on this machine (Linux 6.x), as read.
constexpr const char* kRollup =
    "55faaa8d5000-7fffb60a1000 ---p 00000000 00:00 0                          [rollup]\n"
    "Rss:                1620 kB\n"
    "Pss:                 199 kB\n"
    "Pss_Dirty:           116 kB\n"
    "Pss_Anon:            116 kB\n"
    "Pss_File:             83 kB\n"
    "Pss_Shmem:             0 kB\n"
    "Shared_Clean:       1464 kB\n"
    "Shared_Dirty:          0 kB\n"
    "Private_Clean:        40 kB\n"
    "Private_Dirty:       116 kB\n"
    "Referenced:         1620 kB\n"
    "Anonymous:           116 kB\n"
    "KSM:                   0 kB\n"
    "LazyFree:              0 kB\n"
    "AnonHugePages:         0 kB\n"
    "ShmemPmdMapped:        0 kB\n"
    "FilePmdMapped:         0 kB\n"
    "Shared_Hugetlb:        0 kB\n"
    "Private_Hugetlb:       0 kB\n"
    "Swap:                  0 kB\n"
    "SwapPss:               0 kB\n"
    "Locked:                0 kB\n";

}  // namespace

TEST_CASE("smaps_rollup gives resident, proportional and private (clean + dirty) memory") {
  auto m = parse_smaps_rollup(kRollup);
  REQUIRE(m);
  CHECK(m->rss_kib == 1620);
  CHECK(m->pss_kib == 199);  // not Pss_Dirty, Pss_Anon ...: their names only begin the same
  CHECK(m->private_kib == 40 + 116);
}

TEST_CASE("smaps_rollup without an Rss line (a zombie's is empty) is no measure") {
  CHECK_FALSE(parse_smaps_rollup(""));
  CHECK_FALSE(parse_smaps_rollup("Pss: 10 kB\nPrivate_Dirty: 4 kB\n"));
}

TEST_CASE("smaps_rollup ignores a malformed value and a last line without newline") {
  auto m = parse_smaps_rollup("Rss: 12 kB\nPss: x kB\nPrivate_Clean:\nPrivate_Dirty: 3 kB");
  REQUIRE(m);
  CHECK(m->rss_kib == 12);
  CHECK(m->pss_kib == 0);
  CHECK(m->private_kib == 3);
}

TEST_CASE("this process's own memory reads as a private part of its resident size") {
  auto m = rotor::read_memory(getpid());
  REQUIRE(m);
  CHECK(m->rss_kib > 0);
  CHECK(m->private_kib > 0);
  CHECK(m->private_kib <= m->rss_kib);
  CHECK(m->pss_kib <= m->rss_kib);
  CHECK_FALSE(rotor::read_memory(0));  // /proc/0 does not exist
}

TEST_CASE("growth per request is the least-squares slope of private memory over requests") {
  GrowthFit fit;
  CHECK_FALSE(fit.kib_per_request());
  fit.add(0, 20000);
  CHECK_FALSE(fit.kib_per_request());  // one sample
  fit.add(0, 20100);
  CHECK_FALSE(fit.kib_per_request());  // no spread in requests
  fit.add(100, 20000 + 100 * 1024);
  fit.add(200, 20000 + 200 * 1024);
  // Sxy / Sxx about the means (75 requests, 96825 KiB): not the last two points' 1024.
  CHECK(*fit.kib_per_request() == doctest::Approx(28152500.0 / 27500));
}

TEST_CASE("growth per request: a burst that is freed again weighs one sample, not the estimate") {
  GrowthFit fit;
  // A worker steady at 30 MiB with one sample taken in the middle of a 50 MiB request.
  for (uint64_t r = 0; r <= 1000; r += 100) fit.add(r, r == 1000 ? 30720 + 51200 : 30720);
  CHECK(*fit.kib_per_request() < 30);  // two points (first, last) would say 51.2 KiB/request
  GrowthFit flat;
  for (uint64_t r = 1000000; r <= 2000000; r += 100000) flat.add(r, 4000000);
  CHECK(*flat.kib_per_request() == doctest::Approx(0));
}
