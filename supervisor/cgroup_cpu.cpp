// Formats: Documentation/admin-guide/cgroup-v2.rst (cpu.max, /proc/PID/cgroup),
// Documentation/scheduler/sched-bwc.rst (cfs_quota_us), proc(5) (mountinfo).
#include "supervisor/cgroup_cpu.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

namespace rotor::cgroup {
namespace {

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  return text;
}

std::optional<int64_t> parse_int(std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t at; (at = text.find(sep, start)) != std::string_view::npos; start = at + 1)
    parts.push_back(text.substr(start, at - start));
  parts.push_back(text.substr(start));
  return parts;
}

bool has_item(std::string_view list, std::string_view item) {
  for (std::string_view part : split(list, ','))
    if (part == item) return true;
  return false;
}

// mountinfo escapes space, tab, newline and backslash as \ and three octal digits.
std::string unescaped(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    bool octal = text[i] == '\\' && i + 3 < text.size();
    if (octal) {
      int v = 0;
      for (size_t k = 1; k <= 3 && octal; ++k) {
        char c = text[i + k];
        octal = c >= '0' && c <= '7';
        v = v * 8 + (c - '0');
      }
      if (octal) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

bool has_parent_step(const std::string& path) {
  for (std::string_view part : split(path, '/'))
    if (part == "..") return true;
  return false;
}

CpuQuota read_quota(Version version, const std::string& dir) {
  if (version == Version::kV2) {
    std::optional<std::string> text = read_text(dir + "/cpu.max");
    return text ? parse_cpu_max(*text).value_or(CpuQuota{}) : CpuQuota{};
  }
  std::optional<std::string> quota = read_text(dir + "/cpu.cfs_quota_us");
  std::optional<std::string> period = read_text(dir + "/cpu.cfs_period_us");
  CpuQuota found;
  if (quota) found.quota_us = parse_cfs_value(*quota).value_or(-1);
  if (period) found.period_us = parse_cfs_value(*period).value_or(0);
  return found;
}

// Fewer CPUs than `than`: a limit is tighter than none.
bool tighter(const CpuQuota& a, const CpuQuota& than) {
  if (!a.limited()) return false;
  if (!than.limited()) return true;
  return static_cast<long double>(a.quota_us) / a.period_us <
         static_cast<long double>(than.quota_us) / than.period_us;
}

// A parent's limit holds for its children too: the tightest from `dir` up to `top`.
Found tightest_up_to(Version version, std::string dir, const std::string& top) {
  Found found{version, read_quota(version, dir), dir};
  while (dir.size() > top.size()) {
    size_t slash = dir.rfind('/');
    dir.erase(slash == std::string::npos ? top.size() : std::max(slash, top.size()));  // top: "/"
    CpuQuota quota = read_quota(version, dir);
    if (tighter(quota, found.quota)) found = {version, quota, dir};
  }
  return found;
}

}  // namespace

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const Mount* mount_for(const std::vector<Mount>& mounts, bool v2, const std::string& path) {
  const Mount* best = nullptr;
  size_t best_root = 0;
  for (const Mount& m : mounts) {
    if (m.v2 != v2) continue;
    bool holds = m.root == "/" || path == m.root || path.starts_with(m.root + "/");
    if (!best || (holds && m.root.size() >= best_root)) {
      if (holds) best_root = m.root.size();
      best = &m;
    }
  }
  return best;
}

std::optional<CpuQuota> parse_cpu_max(std::string_view text) {
  std::vector<std::string_view> fields = split(trimmed(text), ' ');
  if (fields.size() != 2) return std::nullopt;
  std::optional<int64_t> period = parse_int(fields[1]);
  if (!period || *period <= 0) return std::nullopt;
  if (fields[0] == "max") return CpuQuota{-1, *period};
  std::optional<int64_t> quota = parse_int(fields[0]);
  if (!quota || *quota <= 0) return std::nullopt;
  return CpuQuota{*quota, *period};
}

std::optional<int64_t> parse_cfs_value(std::string_view text) {
  std::optional<int64_t> v = parse_int(trimmed(text));
  if (!v || *v == 0 || *v < -1) return std::nullopt;
  return v;
}

Membership parse_proc_cgroup(std::string_view text, std::string_view controller) {
  Membership in;
  for (std::string_view line : split(text, '\n')) {
    size_t first = line.find(':');
    size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    std::string_view id = line.substr(0, first);
    std::string_view controllers = line.substr(first + 1, second - first - 1);
    std::string path(line.substr(second + 1));  // a path may hold ':' itself
    if (id == "0" && controllers.empty()) {
      in.v2 = path;
    } else if (has_item(controllers, controller)) {
      in.v1 = path;
    }
  }
  return in;
}

std::vector<Mount> parse_mountinfo(std::string_view text, std::string_view controller) {
  std::vector<Mount> mounts;
  for (std::string_view line : split(text, '\n')) {
    // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    std::vector<std::string_view> fields = split(line.substr(0, dash), ' ');
    std::vector<std::string_view> fs = split(line.substr(dash + 3), ' ');
    if (fields.size() < 6 || fs.size() < 3) continue;
    bool v2 = fs[0] == "cgroup2";
    if (!v2 && !(fs[0] == "cgroup" && has_item(fs[2], controller))) continue;
    mounts.push_back({unescaped(fields[3]), unescaped(fields[4]), v2});
  }
  return mounts;
}

std::string cgroup_dir(const Mount& mount, const std::string& path) {
  std::string point = mount.mount_point == "/" ? "" : mount.mount_point;
  if (has_parent_step(path) || !path.starts_with('/')) return mount.mount_point;
  if (mount.root == "/") return path == "/" ? mount.mount_point : point + path;
  if (path == mount.root) return mount.mount_point;
  if (path.starts_with(mount.root + "/")) return point + path.substr(mount.root.size());
  return mount.mount_point;
}

Found find_cpu_quota(const std::string& root) {
  std::optional<std::string> cgroup = read_text(root + "/proc/self/cgroup");
  std::optional<std::string> mountinfo = read_text(root + "/proc/self/mountinfo");
  if (!cgroup || !mountinfo) return {};
  Membership in = parse_proc_cgroup(*cgroup);
  std::vector<Mount> mounts = parse_mountinfo(*mountinfo);
  const Mount* v1 = in.v1 ? mount_for(mounts, false, *in.v1) : nullptr;
  const Mount* v2 = in.v2 ? mount_for(mounts, true, *in.v2) : nullptr;
  if (v1) {
    return tightest_up_to(Version::kV1, root + cgroup_dir(*v1, *in.v1), root + v1->mount_point);
  }
  if (v2)
    return tightest_up_to(Version::kV2, root + cgroup_dir(*v2, *in.v2), root + v2->mount_point);
  return {};
}

}  // namespace rotor::cgroup
