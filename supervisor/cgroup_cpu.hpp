// The CPU quota of rotor's own cgroup, found the way the kernel exposes it: which cgroup rotor is
// in (/proc/self/cgroup), where that hierarchy is mounted (/proc/self/mountinfo), and the quota
// files there (v2 cpu.max; v1 cpu.cfs_quota_us and cpu.cfs_period_us). The parsers are pure; the
// reader takes a root directory, so tests hand it a fake /proc and cgroup tree. The memory
// limit's reader (cgroup_memory) finds its hierarchy with the same parsers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rotor::cgroup {

struct CpuQuota {
  int64_t quota_us = -1;  // -1: none ("max" in v2, -1 in v1)
  int64_t period_us = 0;  // 0: unknown
  bool limited() const { return quota_us > 0 && period_us > 0; }
};

// v2 cpu.max: "max 100000" or "150000 100000", with or without the trailing newline.
std::optional<CpuQuota> parse_cpu_max(std::string_view text);

// v1 cpu.cfs_quota_us or cpu.cfs_period_us: one integer; the quota is -1 when there is none.
std::optional<int64_t> parse_cfs_value(std::string_view text);

// rotor's path in the hierarchies that can limit it, from /proc/self/cgroup: the v1 one with
// `controller` ("4:cpu,cpuacct:/path") and the unified one ("0::/path").
struct Membership {
  std::optional<std::string> v1;
  std::optional<std::string> v2;
};
Membership parse_proc_cgroup(std::string_view text, std::string_view controller = "cpu");

// A cgroup file system mounted where rotor can see it (/proc/self/mountinfo).
struct Mount {
  std::string root;         // the hierarchy's directory mounted there: "/", or "/docker/ID"
  std::string mount_point;  // with the kernel's octal escapes (\040) undone
  bool v2 = false;          // cgroup2; else a v1 hierarchy with the controller asked for
};
// Only the mounts that matter here: cgroup2 and v1 hierarchies with `controller`.
std::vector<Mount> parse_mountinfo(std::string_view text, std::string_view controller = "cpu");

// The mount of that kind whose root holds `path` (the longest such root), else the first one.
const Mount* mount_for(const std::vector<Mount>& mounts, bool v2, const std::string& path);

// A whole file's text; nothing when it cannot be read.
std::optional<std::string> read_text(const std::string& path);

// The directory of the cgroup at `path` (as /proc/self/cgroup names it) under `mount`. A path
// outside the mount's root (rotor's cgroup namespace differs from the mount's, "/../x") has
// none of its own in view: the mount point is the closest.
std::string cgroup_dir(const Mount& mount, const std::string& path);

enum class Version { kNone, kV1, kV2 };

struct Found {
  Version version = Version::kNone;  // kNone: no hierarchy that can hold a CPU quota in view
  CpuQuota quota;                    // the tightest from rotor's cgroup up to the mount point
  std::string dir;                   // the directory that sets it, else rotor's own
};

// `root`: "" for this process, else a directory holding proc/self/{cgroup,mountinfo} and the
// mount points under it. The v1 cpu controller wins when rotor is in one (on a hybrid system
// the unified hierarchy has no cpu controller).
Found find_cpu_quota(const std::string& root);

}  // namespace rotor::cgroup
