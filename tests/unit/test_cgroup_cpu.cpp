// The CPU quota of rotor's cgroup: the kernel's file formats, and finding the quota in a fake
// /proc and cgroup tree (v1, v2, hybrid, namespaced, nested) written under a temp directory.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "supervisor/cgroup_cpu.hpp"
#include "temp_dir.hpp"

using namespace rotor::cgroup;

namespace {

// Writes `content` to `name` under the temp directory, making its directories.
void put(const rotor::test::TempDir& tmp, const std::string& name, const std::string& content) {
  std::filesystem::path path = tmp.path / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << content;
}

// A mountinfo line for a cgroup mount, as the kernel writes it.
std::string mount_line(const std::string& root, const std::string& point, const std::string& fs,
                       const std::string& super) {
  return "32 31 0:29 " + root + " " + point + " rw,nosuid,nodev,noexec,relatime shared:9 - " + fs +
         " " + fs + " " + super + "\n";
}

// This machine's layout: v1 cpu and the other v1 controllers, an empty cgroup2 beside them.
const std::string kHybridMounts =
    "25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n" +
    mount_line("/", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct") +
    mount_line("/", "/sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset") +
    mount_line("/", "/sys/fs/cgroup/unified", "cgroup2", "rw");

const std::string kV2Mounts =
    "25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n" +
    mount_line("/", "/sys/fs/cgroup", "cgroup2", "rw,nsdelegate,memory_recursiveprot");

}  // namespace

TEST_SUITE("cgroup cpu") {
  TEST_CASE("cpu.max: max means no quota; a quota and a period are read") {
    auto none = parse_cpu_max("max 100000\n");
    REQUIRE(none);
    CHECK_FALSE(none->limited());
    CHECK(none->period_us == 100000);
    auto some = parse_cpu_max("150000 100000\n");
    REQUIRE(some);
    CHECK(some->limited());
    CHECK(some->quota_us == 150000);
    CHECK(some->period_us == 100000);
    CHECK(parse_cpu_max("50000 100000")->quota_us == 50000);
  }

  TEST_CASE("cpu.max: anything else is not a quota") {
    for (const char* bad : {"", "\n", "max", "150000", "150000 0", "-1 100000", "0 100000",
                            "1.5 100000", "150000 100000 7", "abc 100000", "150000  100000"}) {
      INFO(bad);
      CHECK_FALSE(parse_cpu_max(bad));
    }
  }

  TEST_CASE("cfs files: -1 is no quota; zero, garbage and other negatives are refused") {
    CHECK(parse_cfs_value("-1\n") == -1);
    CHECK(parse_cfs_value("150000\n") == 150000);
    CHECK(parse_cfs_value("100000") == 100000);
    for (const char* bad : {"", "0", "-2", "1e5", "x", " 5"}) {
      INFO(bad);
      CHECK_FALSE(parse_cfs_value(bad));
    }
  }

  TEST_CASE("/proc/self/cgroup: the v1 cpu hierarchy's path and the unified one's") {
    Membership in = parse_proc_cgroup(
        "12:cpuset:/\n"
        "4:cpu,cpuacct:/kubepods/pod1/abc\n"
        "3:cpuacct:/other\n"
        "1:name=systemd:/x\n"
        "0::/system.slice/rotor.service\n");
    CHECK(in.v1 == "/kubepods/pod1/abc");
    CHECK(in.v2 == "/system.slice/rotor.service");
  }

  TEST_CASE("/proc/self/cgroup: cpuacct or cpuset alone is not the cpu controller") {
    Membership in = parse_proc_cgroup("3:cpuacct:/a\n2:cpuset:/b\n");
    CHECK_FALSE(in.v1);
    CHECK_FALSE(in.v2);
  }

  TEST_CASE("/proc/self/cgroup: a v2-only system, and a path holding a colon") {
    CHECK(parse_proc_cgroup("0::/\n").v2 == "/");
    CHECK_FALSE(parse_proc_cgroup("0::/\n").v1);
    CHECK(parse_proc_cgroup("0::/a:b\n").v2 == "/a:b");
    CHECK(parse_proc_cgroup("2:cpu:/x:y").v1 == "/x:y");
  }

  TEST_CASE("mountinfo: cgroup2 and v1 cpu mounts, with their roots; others are left out") {
    std::vector<Mount> mounts = parse_mountinfo(
        kHybridMounts + mount_line("/", "/sys/fs/cgroup/memory", "cgroup", "rw,memory") +
        mount_line("/docker/abc", "/mnt/cpu", "cgroup", "rw,cpuacct,cpu"));
    REQUIRE(mounts.size() == 3);
    CHECK(mounts[0].mount_point == "/sys/fs/cgroup/cpu,cpuacct");
    CHECK(mounts[0].root == "/");
    CHECK_FALSE(mounts[0].v2);
    CHECK(mounts[1].mount_point == "/sys/fs/cgroup/unified");
    CHECK(mounts[1].v2);
    CHECK(mounts[2].root == "/docker/abc");
    CHECK(mounts[2].mount_point == "/mnt/cpu");
  }

  TEST_CASE("mountinfo: octal escapes in a mount point are undone; no optional fields is fine") {
    std::vector<Mount> mounts =
        parse_mountinfo("40 31 0:38 / /my\\040cgroups rw - cgroup2 cgroup2 rw\nnot a line\n");
    REQUIRE(mounts.size() == 1);
    CHECK(mounts[0].mount_point == "/my cgroups");
  }

  TEST_CASE("the cgroup's directory: under the mount's root, or the mount point itself") {
    Mount host{"/", "/sys/fs/cgroup", true};
    CHECK(cgroup_dir(host, "/") == "/sys/fs/cgroup");
    CHECK(cgroup_dir(host, "/a/b") == "/sys/fs/cgroup/a/b");
    // A container's mount of its own cgroup (v1 without a cgroup namespace).
    Mount docker{"/docker/abc", "/sys/fs/cgroup/cpu", false};
    CHECK(cgroup_dir(docker, "/docker/abc") == "/sys/fs/cgroup/cpu");
    CHECK(cgroup_dir(docker, "/docker/abc/sub") == "/sys/fs/cgroup/cpu/sub");
    CHECK(cgroup_dir(docker, "/docker/abcdef") == "/sys/fs/cgroup/cpu");
    // Outside the namespace's root: nothing of its own in view.
    CHECK(cgroup_dir(host, "/../../user.slice") == "/sys/fs/cgroup");
    CHECK(cgroup_dir(host, "relative") == "/sys/fs/cgroup");
  }

  TEST_CASE("v1: the cpu hierarchy's cfs quota and period in rotor's cgroup") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "4:cpu,cpuacct:/rotor-test\n3:cpuset:/\n0::/\n");
    put(tmp, "proc/self/mountinfo", kHybridMounts);
    put(tmp, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    put(tmp, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    put(tmp, "sys/fs/cgroup/cpu,cpuacct/rotor-test/cpu.cfs_quota_us", "150000\n");
    put(tmp, "sys/fs/cgroup/cpu,cpuacct/rotor-test/cpu.cfs_period_us", "100000\n");
    put(tmp, "sys/fs/cgroup/unified/cpu.max", "50000 100000\n");  // no cpu controller there
    Found found = find_cpu_quota(tmp.dir());
    CHECK(found.version == Version::kV1);
    CHECK(found.quota.quota_us == 150000);
    CHECK(found.quota.period_us == 100000);
    CHECK(found.dir == tmp.dir() + "/sys/fs/cgroup/cpu,cpuacct/rotor-test");
  }

  TEST_CASE("v1: -1 is no quota, with the period still read") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "4:cpu,cpuacct:/\n0::/\n");
    put(tmp, "proc/self/mountinfo", kHybridMounts);
    put(tmp, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    put(tmp, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    Found found = find_cpu_quota(tmp.dir());
    CHECK(found.version == Version::kV1);
    CHECK_FALSE(found.quota.limited());
    CHECK(found.quota.period_us == 100000);
  }

  TEST_CASE("v2: cpu.max of rotor's cgroup under the unified mount") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "0::/kubepods.slice/pod1/cri-abc\n");
    put(tmp, "proc/self/mountinfo", kV2Mounts);
    put(tmp, "sys/fs/cgroup/kubepods.slice/pod1/cri-abc/cpu.max", "250000 100000\n");
    Found found = find_cpu_quota(tmp.dir());
    CHECK(found.version == Version::kV2);
    CHECK(found.quota.quota_us == 250000);
    CHECK(found.dir == tmp.dir() + "/sys/fs/cgroup/kubepods.slice/pod1/cri-abc");
  }

  TEST_CASE("v2 in a container: the path is / in its namespace, the mount is its own cgroup") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "0::/\n");
    put(tmp, "proc/self/mountinfo", kV2Mounts);
    put(tmp, "sys/fs/cgroup/cpu.max", "150000 100000\n");
    Found found = find_cpu_quota(tmp.dir());
    CHECK(found.version == Version::kV2);
    CHECK(found.quota.quota_us == 150000);
    CHECK(found.dir == tmp.dir() + "/sys/fs/cgroup");
  }

  TEST_CASE("v2: the mount's root is not assumed to be /sys/fs/cgroup/<path>") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "0::/ns/app\n");
    put(tmp, "proc/self/mountinfo", mount_line("/ns", "/run/cg", "cgroup2", "rw"));
    put(tmp, "run/cg/app/cpu.max", "300000 100000\n");
    put(tmp, "sys/fs/cgroup/ns/app/cpu.max", "100000 100000\n");  // a decoy where a guess looks
    Found found = find_cpu_quota(tmp.dir());
    CHECK(found.quota.quota_us == 300000);
    CHECK(found.dir == tmp.dir() + "/run/cg/app");
  }

  TEST_CASE("a parent's tighter quota holds for rotor's cgroup too") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "0::/slice/service\n");
    put(tmp, "proc/self/mountinfo", kV2Mounts);
    put(tmp, "sys/fs/cgroup/slice/cpu.max", "100000 100000\n");
    put(tmp, "sys/fs/cgroup/slice/service/cpu.max", "max 100000\n");
    Found found = find_cpu_quota(tmp.dir());
    CHECK(found.quota.quota_us == 100000);
    CHECK(found.dir == tmp.dir() + "/sys/fs/cgroup/slice");
  }

  TEST_CASE("a parent's looser quota does not replace rotor's own") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "0::/slice/service\n");
    put(tmp, "proc/self/mountinfo", kV2Mounts);
    put(tmp, "sys/fs/cgroup/slice/cpu.max", "800000 100000\n");
    put(tmp, "sys/fs/cgroup/slice/service/cpu.max", "50000 50000\n");
    Found found = find_cpu_quota(tmp.dir());
    CHECK(found.quota.quota_us == 50000);
    CHECK(found.quota.period_us == 50000);
  }

  TEST_CASE("no quota anywhere: none found; no cgroup files at all: no version") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "0::/a\n");
    put(tmp, "proc/self/mountinfo", kV2Mounts);  // the root cgroup has no cpu.max
    put(tmp, "sys/fs/cgroup/a/cpu.max", "max 100000\n");
    CHECK_FALSE(find_cpu_quota(tmp.dir()).quota.limited());
    rotor::test::TempDir empty;
    CHECK(find_cpu_quota(empty.dir()).version == Version::kNone);
  }

  TEST_CASE("v1 membership without a visible cpu mount falls back to the unified hierarchy") {
    rotor::test::TempDir tmp;
    put(tmp, "proc/self/cgroup", "4:cpu,cpuacct:/x\n0::/\n");
    put(tmp, "proc/self/mountinfo", kV2Mounts);
    put(tmp, "sys/fs/cgroup/cpu.max", "200000 100000\n");
    Found found = find_cpu_quota(tmp.dir());
    CHECK(found.version == Version::kV2);
    CHECK(found.quota.quota_us == 200000);
  }
}
