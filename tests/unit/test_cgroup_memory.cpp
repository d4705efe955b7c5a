// The memory limit of rotor's cgroup: the kernel's file formats, and finding the limit in a fake
// /proc and cgroup tree (v1, v2, hybrid, nested) written under a temp directory.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "supervisor/cgroup_memory.hpp"
#include "temp_dir.hpp"

using namespace rotor::cgroup;

namespace {

void put(const rotor::test::TempDir& tmp, const std::string& name, const std::string& content) {
  std::filesystem::path path = tmp.path / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << content;
}

std::string mount_line(const std::string& point, const std::string& fs, const std::string& super) {
  return "32 31 0:29 / " + point + " rw,nosuid,nodev,noexec,relatime shared:9 - " + fs + " " + fs +
         " " + super + "\n";
}

// This machine's layout: v1 memory beside v1 cpu, an empty cgroup2.
const std::string kHybridMounts = "25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n" +
                                  mount_line("/sys/fs/cgroup/cpu", "cgroup", "rw,cpu") +
                                  mount_line("/sys/fs/cgroup/memory", "cgroup", "rw,memory") +
                                  mount_line("/sys/fs/cgroup/unified", "cgroup2", "rw");

const std::string kV2Mounts = "25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n" +
                              mount_line("/sys/fs/cgroup", "cgroup2", "rw,nsdelegate");

}  // namespace

TEST_SUITE("cgroup memory") {
  TEST_CASE("memory.max and limit_in_bytes: bytes, or no limit") {
    CHECK(parse_memory_limit("268435456\n") == 268435456u);
    CHECK(parse_memory_limit("268435456") == 268435456u);
    CHECK_FALSE(parse_memory_limit("max\n"));
    CHECK_FALSE(parse_memory_limit("9223372036854771712\n"));  // v1's "unlimited"
    CHECK_FALSE(parse_memory_limit("0\n"));
    CHECK_FALSE(parse_memory_limit(""));
    CHECK_FALSE(parse_memory_limit("-1\n"));
    CHECK_FALSE(parse_memory_limit("12 MB\n"));
    CHECK(parse_memory_usage("1048576\n") == 1048576u);
    CHECK_FALSE(parse_memory_usage("lots\n"));
  }

  TEST_CASE("the memory controller's line and mounts, not the cpu's") {
    Membership in = parse_proc_cgroup("5:memory:/rotor/a\n4:cpu,cpuacct:/b\n0::/c\n", "memory");
    CHECK(in.v1 == "/rotor/a");
    CHECK(in.v2 == "/c");
    std::vector<Mount> mounts = parse_mountinfo(kHybridMounts, "memory");
    REQUIRE(mounts.size() == 2);
    CHECK(mounts[0].mount_point == "/sys/fs/cgroup/memory");
    CHECK(mounts[1].v2);
  }

  TEST_CASE("v1: the limit of rotor's cgroup, and its usage") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "5:memory:/rotor-test\n4:cpu:/\n0::/\n");
    put(tmp, "proc/self/mountinfo", kHybridMounts);
    put(tmp, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put(tmp, "sys/fs/cgroup/memory/rotor-test/memory.limit_in_bytes", "314572800\n");
    put(tmp, "sys/fs/cgroup/memory/rotor-test/memory.usage_in_bytes", "52428800\n");
    put(tmp, "sys/fs/cgroup/unified/memory.max", "1000\n");  // no memory controller there
    MemoryLimit found = find_memory_limit(tmp.dir());
    CHECK(found.version == Version::kV1);
    CHECK(found.bytes == 314572800u);
    CHECK(found.dir == tmp.dir() + "/sys/fs/cgroup/memory/rotor-test");
    CHECK(read_memory_usage(found) == 52428800u);
  }

  TEST_CASE("a parent's tighter limit holds for rotor's cgroup") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "5:memory:/pod/rotor\n0::/\n");
    put(tmp, "proc/self/mountinfo", kHybridMounts);
    put(tmp, "sys/fs/cgroup/memory/pod/memory.limit_in_bytes", "209715200\n");
    put(tmp, "sys/fs/cgroup/memory/pod/rotor/memory.limit_in_bytes", "9223372036854771712\n");
    MemoryLimit found = find_memory_limit(tmp.dir());
    CHECK(found.bytes == 209715200u);
    CHECK(found.dir == tmp.dir() + "/sys/fs/cgroup/memory/pod");
  }

  TEST_CASE("v2: memory.max and memory.current; max is no limit") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "0::/app.slice/rotor.service\n");
    put(tmp, "proc/self/mountinfo", kV2Mounts);
    put(tmp, "sys/fs/cgroup/app.slice/rotor.service/memory.max", "536870912\n");
    put(tmp, "sys/fs/cgroup/app.slice/rotor.service/memory.current", "1000000\n");
    MemoryLimit found = find_memory_limit(tmp.dir());
    CHECK(found.version == Version::kV2);
    CHECK(found.bytes == 536870912u);
    CHECK(read_memory_usage(found) == 1000000u);
    put(tmp, "sys/fs/cgroup/app.slice/rotor.service/memory.max", "max\n");
    CHECK_FALSE(find_memory_limit(tmp.dir()).bytes);
  }

  TEST_CASE("no cgroup files: no hierarchy, no limit") {
    rotor::test::TempDir tmp;
    MemoryLimit found = find_memory_limit(tmp.dir());
    CHECK(found.version == Version::kNone);
    CHECK_FALSE(found.bytes);
    CHECK_FALSE(read_memory_usage(found));
  }
}
