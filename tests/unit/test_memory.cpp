#include <doctest/doctest.h>

#include <unistd.h>

#include "supervisor/memory.hpp"

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
