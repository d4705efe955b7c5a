// The exposition text: names, types, labels and histogram shapes as Prometheus' text format
// 0.0.4 has them (the integration tests parse it with prometheus_client and promtool).
#include <doctest/doctest.h>

#include <string>

#include "supervisor/metrics_text.hpp"

using namespace rotor::metrics;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

Snapshot sample() {
  Snapshot s;
  s.version = "1.2.3";
  s.requests = 7;
  s.responses_by_class[1] = 6;
  s.responses_by_class[4] = 1;
  s.request_duration = {{0.001, 0.01}, {3, 0, 4}, 12.5};
  s.spawn_duration = {{0.1}, {1, 1}, 2.25};
  s.workers_by_state = {{"ready", 2}, {"booting", 0}};
  s.exits_by_reason = {{"max-requests", 3}, {"crash", 0}};
  s.workers = {{0, 1, 5, 100, 1.5, 4096, 1024}, {3, 2, 2, 0, 0.25, 0, 0}};
  s.listeners = {{"http://127.0.0.1:8000", 2, 2048}};
  s.growth_bytes_per_request = {{2, 512.5}};
  s.ready = true;
  return s;
}

}  // namespace

TEST_SUITE("metrics text") {
  TEST_CASE("counters end in _total and every family has HELP and TYPE") {
    std::string t = render(sample());
    CHECK(has_line(t, "# TYPE rotor_requests_total counter"));
    CHECK(has_line(t, "rotor_requests_total 7"));
    CHECK(has_line(t, "rotor_responses_total{code=\"2xx\"} 6"));
    CHECK(has_line(t, "rotor_responses_total{code=\"5xx\"} 1"));
    CHECK(has_line(t, "rotor_responses_total{code=\"1xx\"} 0"));
    size_t types = 0, helps = 0;
    for (size_t p = 0; (p = t.find("# TYPE ", p)) != std::string::npos; ++p) ++types;
    for (size_t p = 0; (p = t.find("# HELP ", p)) != std::string::npos; ++p) ++helps;
    CHECK(types == helps);
    CHECK(t.ends_with("\n"));
  }

  TEST_CASE("a histogram's buckets are cumulative, end at +Inf and equal its count") {
    std::string t = render(sample());
    CHECK(has_line(t, "# TYPE rotor_request_duration_seconds histogram"));
    CHECK(has_line(t, "rotor_request_duration_seconds_bucket{le=\"0.001\"} 3"));
    CHECK(has_line(t, "rotor_request_duration_seconds_bucket{le=\"0.01\"} 3"));
    CHECK(has_line(t, "rotor_request_duration_seconds_bucket{le=\"+Inf\"} 7"));
    CHECK(has_line(t, "rotor_request_duration_seconds_sum 12.5"));
    CHECK(has_line(t, "rotor_request_duration_seconds_count 7"));
    CHECK(has_line(t, "rotor_worker_spawn_duration_seconds_bucket{le=\"0.1\"} 1"));
    CHECK(has_line(t, "rotor_worker_spawn_duration_seconds_count 2"));
  }

  TEST_CASE("workers are labelled by slot, exits by reason, states all shown") {
    std::string t = render(sample());
    CHECK(has_line(t, "rotor_workers{state=\"ready\"} 2"));
    CHECK(has_line(t, "rotor_workers{state=\"booting\"} 0"));
    CHECK(has_line(t, "rotor_worker_exits_total{reason=\"max-requests\"} 3"));
    CHECK(has_line(t, "rotor_worker_requests{slot=\"0\"} 5"));
    CHECK(has_line(t, "rotor_worker_request_limit{slot=\"3\"} 0"));
    CHECK(has_line(t, "rotor_worker_age_seconds{slot=\"0\"} 1.5"));
    CHECK(has_line(t, "rotor_worker_resident_memory_bytes{slot=\"0\"} 4096"));
    CHECK(has_line(t, "rotor_worker_private_memory_bytes{slot=\"0\"} 1024"));
    CHECK(t.find("pid=") == std::string::npos);
  }

  TEST_CASE("listeners, generations, build info and readiness") {
    std::string t = render(sample());
    CHECK(has_line(t, "rotor_listen_queue{listener=\"http://127.0.0.1:8000\"} 2"));
    CHECK(has_line(t, "rotor_listen_queue_max{listener=\"http://127.0.0.1:8000\"} 2048"));
    CHECK(has_line(t, "rotor_generation_private_growth_bytes_per_request{generation=\"2\"} 512.5"));
    CHECK(has_line(t, "rotor_reloads_total{result=\"failure\"} 0"));
    CHECK(has_line(t, "rotor_build_info{version=\"1.2.3\"} 1"));
    CHECK(has_line(t, "rotor_ready 1"));
    CHECK(has_line(t, "rotor_stopping 0"));
    CHECK(has_line(t, "# TYPE process_cpu_seconds_total counter"));
  }

  TEST_CASE("label values are escaped") {
    CHECK(escape_label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
    Snapshot s;
    s.listeners = {{"odd\"name", 0, 1}};
    CHECK(has_line(render(s), "rotor_listen_queue{listener=\"odd\\\"name\"} 0"));
  }
}
