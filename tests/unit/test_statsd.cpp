// statsd lines from two snapshots: gunicorn's names, deltas for counters, a sampled timing per
// histogram bucket so that statsd counts every request, gauges as they are.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "supervisor/statsd.hpp"

using namespace rotor;

namespace {

bool has(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

metrics::Snapshot counts(uint64_t requests, uint64_t ok, uint64_t errors,
                         std::vector<uint64_t> buckets) {
  metrics::Snapshot s;
  s.requests = requests;
  s.responses_by_class[1] = ok;
  s.responses_by_class[4] = errors;
  s.request_duration = {{0.001, 0.01}, std::move(buckets), 0};
  s.exits_by_reason = {{"max-requests", 0}, {"crash", 0}};
  return s;
}

}  // namespace

TEST_CASE("statsd: counters are the deltas since the last datagrams, under gunicorn's names") {
  auto before = counts(10, 9, 1, {4, 6, 0});
  auto now = counts(15, 13, 2, {4, 9, 2});
  now.exits_by_reason["max-requests"] = 2;
  now.in_flight = 3;
  auto lines = statsd::lines(before, now, 4, {});
  CHECK(has(lines, "gunicorn.requests:5|c"));
  CHECK(has(lines, "gunicorn.request.status.2xx:4|c"));
  CHECK(has(lines, "gunicorn.request.status.5xx:1|c"));
  CHECK(has(lines, "rotor.worker.exits.max-requests:2|c"));
  CHECK(has(lines, "gunicorn.workers:4|g"));
  CHECK(has(lines, "rotor.requests.in_flight:3|g"));
  // Nothing changed: no line (statsd would read a 0 as a sample).
  CHECK_FALSE(has(lines, "gunicorn.request.status.4xx:0|c"));
  CHECK(std::none_of(lines.begin(), lines.end(), [](const std::string& l) {
    return l.starts_with("rotor.worker.exits.crash");
  }));
}

TEST_CASE("statsd: durations are one sampled timing per bucket that grew, in ms") {
  auto lines = statsd::lines(counts(0, 0, 0, {0, 0, 0}), counts(6, 6, 0, {1, 3, 2}), 1, {});
  CHECK(has(lines, "gunicorn.request.duration:0.500|ms"));            // (0 + 1 ms) / 2, once
  CHECK(has(lines, "gunicorn.request.duration:5.500|ms|@0.333333"));  // (1 + 10) / 2, 3 times
  CHECK(has(lines, "gunicorn.request.duration:10.000|ms|@0.5"));      // +Inf: its lower bound
}

TEST_CASE("statsd: a counter that went back sends nothing") {
  auto lines = statsd::lines(counts(10, 10, 0, {0, 10, 0}), counts(4, 4, 0, {0, 4, 0}), 1, {});
  CHECK(std::none_of(lines.begin(), lines.end(),
                     [](const std::string& l) { return l.find("|c") != std::string::npos; }));
  CHECK(std::none_of(lines.begin(), lines.end(),
                     [](const std::string& l) { return l.find("|ms") != std::string::npos; }));
}

TEST_CASE("statsd: the prefix and the dogstatsd tags as gunicorn writes them") {
  CHECK(statsd::normalize_prefix("") == "");
  CHECK(statsd::normalize_prefix("app") == "app.");
  CHECK(statsd::normalize_prefix("app..") == "app.");
  CHECK(statsd::normalize_prefix("...") == "");
  CHECK(statsd::dogstatsd_suffix("") == "");
  CHECK(statsd::dogstatsd_suffix(" env:prod , team:web,") == "|#env:prod,team:web");
  statsd::Format f{statsd::normalize_prefix("app"), statsd::dogstatsd_suffix("env:prod")};
  auto lines = statsd::lines(counts(0, 0, 0, {0, 0, 0}), counts(1, 1, 0, {1, 0, 0}), 2, f);
  CHECK(has(lines, "app.gunicorn.requests:1|c|#env:prod"));
  CHECK(has(lines, "app.gunicorn.request.duration:0.500|ms|#env:prod"));
  CHECK(has(lines, "app.gunicorn.workers:2|g|#env:prod"));
}

TEST_CASE("statsd: lines are packed into datagrams of at most the size given") {
  std::vector<std::string> lines = {"a:1|c", "bb:2|c", "ccc:3|c", std::string(50, 'x')};
  auto packed = statsd::pack(lines, 14);
  REQUIRE(packed.size() == 3);
  CHECK(packed[0] == "a:1|c\nbb:2|c");
  CHECK(packed[1] == "ccc:3|c");
  CHECK(packed[2] == std::string(50, 'x'));  // too long for any datagram: alone
  CHECK(statsd::pack({}, 100).empty());
}
