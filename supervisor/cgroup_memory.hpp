// The memory limit of rotor's cgroup and what the cgroup uses now: v2 memory.max and
// memory.current, v1 memory.limit_in_bytes and memory.usage_in_bytes, in the hierarchy found as
// for the CPU quota (cgroup_cpu). Parsers are pure; the reader takes a root directory, so tests
// hand it a fake /proc and cgroup tree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "supervisor/cgroup_cpu.hpp"

namespace rotor::cgroup {

// v2 memory.max ("max" or bytes) or v1 memory.limit_in_bytes (bytes; v1 writes "no limit" as
// the largest page-aligned 64-bit count). Nothing for no limit or unreadable text.
std::optional<uint64_t> parse_memory_limit(std::string_view text);

// memory.current or memory.usage_in_bytes: bytes.
std::optional<uint64_t> parse_memory_usage(std::string_view text);

struct MemoryLimit {
  Version version = Version::kNone;  // kNone: no hierarchy with the memory controller in view
  std::optional<uint64_t> bytes;     // the tightest from rotor's cgroup up to the mount point
  std::string dir;                   // the directory that sets it, else rotor's own
};

// `root`: "" for this process, else a directory holding proc/self/{cgroup,mountinfo} and the
// mount points under it. The v1 memory controller wins when rotor is in one.
MemoryLimit find_memory_limit(const std::string& root);

// What the cgroup that sets `limit` uses now (its children included).
std::optional<uint64_t> read_memory_usage(const MemoryLimit& limit);

}  // namespace rotor::cgroup
