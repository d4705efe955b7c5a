#include "supervisor/statsd.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace rotor::statsd {

namespace {

constexpr const char* kClasses[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

std::string trim(std::string s) {
  size_t a = s.find_first_not_of(" \t");
  size_t b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// What a bucket stands for, in ms: the middle of its bounds; +Inf stands at its lower bound.
double bucket_ms(const metrics::Histogram& h, size_t i) {
  double lower = i == 0 ? 0 : h.bounds[i - 1];
  if (i >= h.bounds.size()) return lower * 1000;
  return (lower + h.bounds[i]) / 2 * 1000;
}

}  // namespace

std::string normalize_prefix(const std::string& prefix) {
  size_t end = prefix.find_last_not_of('.');
  if (end == std::string::npos) return "";
  return prefix.substr(0, end + 1) + ".";
}

std::string dogstatsd_suffix(const std::string& tags) {
  std::string out;
  size_t start = 0;
  while (start <= tags.size()) {
    size_t comma = tags.find(',', start);
    if (comma == std::string::npos) comma = tags.size();
    std::string item = trim(tags.substr(start, comma - start));
    if (!item.empty()) out += (out.empty() ? "" : ",") + item;
    start = comma + 1;
  }
  return out.empty() ? "" : "|#" + out;
}

std::vector<std::string> lines(const metrics::Snapshot& before, const metrics::Snapshot& now,
                               size_t workers, const Format& f) {
  std::vector<std::string> out;
  auto counter = [&](const std::string& name, uint64_t was, uint64_t is) {
    if (is > was) out.push_back(fmt::format("{}{}:{}|c{}", f.prefix, name, is - was, f.tags));
  };
  counter("gunicorn.requests", before.requests, now.requests);
  for (size_t c = 0; c < 5; ++c) {
    counter(std::string("gunicorn.request.status.") + kClasses[c], before.responses_by_class[c],
            now.responses_by_class[c]);
  }
  const metrics::Histogram& h = now.request_duration;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    uint64_t was =
        i < before.request_duration.counts.size() ? before.request_duration.counts[i] : 0;
    if (h.counts[i] <= was) continue;
    uint64_t delta = h.counts[i] - was;
    std::string rate = delta == 1 ? "" : fmt::format("|@{:.6g}", 1.0 / static_cast<double>(delta));
    out.push_back(fmt::format("{}gunicorn.request.duration:{:.3f}|ms{}{}", f.prefix,
                              bucket_ms(h, i), rate, f.tags));
  }
  for (const auto& [reason, n] : now.exits_by_reason) {
    auto was = before.exits_by_reason.find(reason);
    counter("rotor.worker.exits." + reason, was == before.exits_by_reason.end() ? 0 : was->second,
            n);
  }
  out.push_back(fmt::format("{}gunicorn.workers:{}|g{}", f.prefix, workers, f.tags));
  out.push_back(fmt::format("{}rotor.requests.in_flight:{}|g{}", f.prefix, now.in_flight, f.tags));
  out.push_back(fmt::format("{}rotor.connections:{}|g{}", f.prefix, now.connections, f.tags));
  return out;
}

std::vector<std::string> pack(const std::vector<std::string>& lines, size_t max_bytes) {
  std::vector<std::string> out;
  std::string cur;
  for (const std::string& line : lines) {
    if (!cur.empty() && cur.size() + 1 + line.size() > max_bytes) {
      out.push_back(std::move(cur));
      cur.clear();
    }
    cur += (cur.empty() ? "" : "\n") + line;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace rotor::statsd
