// Formats: Documentation/admin-guide/cgroup-v2.rst (memory.max, memory.current),
// Documentation/admin-guide/cgroup-v1/memory.rst (limit_in_bytes, usage_in_bytes).
#include "supervisor/cgroup_memory.hpp"

#include <algorithm>
#include <charconv>

namespace rotor::cgroup {
namespace {

// v1 reports "unlimited" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712 with 4 KiB
// pages); no real limit comes near 2^62 bytes.
constexpr uint64_t kV1Unlimited = uint64_t{1} << 62;

std::optional<uint64_t> parse_bytes(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

const char* limit_file(Version version) {
  return version == Version::kV2 ? "/memory.max" : "/memory.limit_in_bytes";
}

std::optional<uint64_t> read_limit(Version version, const std::string& dir) {
  std::optional<std::string> text = read_text(dir + limit_file(version));
  return text ? parse_memory_limit(*text) : std::nullopt;
}

// A parent's limit holds for its children too: the tightest from `dir` up to `top`.
MemoryLimit tightest_up_to(Version version, std::string dir, const std::string& top) {
  MemoryLimit found{version, read_limit(version, dir), dir};
  while (dir.size() > top.size()) {
    size_t slash = dir.rfind('/');
    dir.erase(slash == std::string::npos ? top.size() : std::max(slash, top.size()));
    std::optional<uint64_t> bytes = read_limit(version, dir);
    if (bytes && (!found.bytes || *bytes < *found.bytes)) found = {version, bytes, dir};
  }
  return found;
}

}  // namespace

std::optional<uint64_t> parse_memory_limit(std::string_view text) {
  std::string_view trimmed = text.substr(0, text.find_last_not_of("\n ") + 1);
  if (trimmed == "max") return std::nullopt;
  std::optional<uint64_t> bytes = parse_bytes(trimmed);
  if (!bytes || *bytes == 0 || *bytes >= kV1Unlimited) return std::nullopt;
  return bytes;
}

std::optional<uint64_t> parse_memory_usage(std::string_view text) {
  return parse_bytes(text);
}

MemoryLimit find_memory_limit(const std::string& root) {
  std::optional<std::string> cgroup = read_text(root + "/proc/self/cgroup");
  std::optional<std::string> mountinfo = read_text(root + "/proc/self/mountinfo");
  if (!cgroup || !mountinfo) return {};
  Membership in = parse_proc_cgroup(*cgroup, "memory");
  std::vector<Mount> mounts = parse_mountinfo(*mountinfo, "memory");
  if (const Mount* v1 = in.v1 ? mount_for(mounts, false, *in.v1) : nullptr) {
    return tightest_up_to(Version::kV1, root + cgroup_dir(*v1, *in.v1), root + v1->mount_point);
  }
  if (const Mount* v2 = in.v2 ? mount_for(mounts, true, *in.v2) : nullptr) {
    return tightest_up_to(Version::kV2, root + cgroup_dir(*v2, *in.v2), root + v2->mount_point);
  }
  return {};
}

std::optional<uint64_t> read_memory_usage(const MemoryLimit& limit) {
  if (limit.version == Version::kNone) return std::nullopt;
  const char* name = limit.version == Version::kV2 ? "/memory.current" : "/memory.usage_in_bytes";
  std::optional<std::string> text = read_text(limit.dir + name);
  return text ? parse_memory_usage(*text) : std::nullopt;
}

}  // namespace rotor::cgroup
