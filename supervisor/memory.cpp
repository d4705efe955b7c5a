#include "supervisor/memory.hpp"

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace rotor {

namespace {

// The kB value of a "Name:   123 kB" line, or nothing when the line is another field's.
std::optional<uint64_t> field_kib(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line.substr(0, name.size()) != name ||
      line[name.size()] != ':') {
    return std::nullopt;
  }
  std::string_view rest = line.substr(name.size() + 1);
  size_t start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(rest.data() + start, rest.data() + rest.size(), value);
  if (ec != std::errc{}) return std::nullopt;
  return value;
}

}  // namespace

std::optional<MemoryUsage> parse_smaps_rollup(std::string_view text) {
  std::optional<uint64_t> rss, pss, clean, dirty;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (!rss) rss = field_kib(line, "Rss");
    if (!pss) pss = field_kib(line, "Pss");
    if (!clean) clean = field_kib(line, "Private_Clean");
    if (!dirty) dirty = field_kib(line, "Private_Dirty");
  }
  if (!rss) return std::nullopt;
  return MemoryUsage{*rss, pss.value_or(0), clean.value_or(0) + dirty.value_or(0)};
}

void GrowthFit::add(uint64_t requests, uint64_t private_kib) {
  if (n_ == 0) {
    x0_ = static_cast<double>(requests);
    y0_ = static_cast<double>(private_kib);
  }
  double x = static_cast<double>(requests) - x0_;
  double y = static_cast<double>(private_kib) - y0_;
  n_ += 1;
  sx_ += x;
  sy_ += y;
  sxy_ += x * y;
  sxx_ += x * x;
}

std::optional<double> GrowthFit::kib_per_request() const {
  double spread = n_ * sxx_ - sx_ * sx_;
  if (n_ < 2 || spread <= 0) return std::nullopt;
  return (n_ * sxy_ - sx_ * sy_) / spread;
}

std::optional<MemoryUsage> read_memory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return parse_smaps_rollup(text.str());
}

}  // namespace rotor
