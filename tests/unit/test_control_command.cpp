#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "supervisor/control_command.hpp"
#include "supervisor/ctl_render.hpp"
#include "supervisor/json.hpp"

using rotor::control::Decision;
using rotor::control::Request;
using rotor::control::State;
using rotor::control::Verb;

namespace {

Request words(std::vector<std::string> w) {
  std::string error;
  auto r = rotor::control::from_words(w, &error);
  REQUIRE_MESSAGE(r, error);
  return *r;
}

std::string word_error(std::vector<std::string> w) {
  std::string error;
  CHECK_FALSE(rotor::control::from_words(w, &error));
  return error;
}

State three_workers() {
  State s;
  s.desired = 3;
  s.max_workers = 512;
  s.serving = {101, 102};
  s.leaving = {103};
  s.booting = {104};
  return s;
}

Decision decide(std::vector<std::string> w, const State& s = three_workers()) {
  return rotor::control::decide(words(std::move(w)), s);
}

}  // namespace

TEST_CASE("control: every command's words survive the JSON line to the master") {
  for (auto w : std::vector<std::vector<std::string>>{{"status"},
                                                      {"workers"},
                                                      {"reload"},
                                                      {"scale", "7"},
                                                      {"add"},
                                                      {"add", "2"},
                                                      {"remove", "3"},
                                                      {"rotate", "4242"},
                                                      {"rotate", "all"},
                                                      {"reopen"},
                                                      {"stop"},
                                                      {"stop", "--fast"}}) {
    Request r = words(w);
    std::string error;
    auto back = rotor::control::from_line(rotor::control::to_line(r), &error);
    REQUIRE_MESSAGE(back, error);
    CHECK(back->verb == r.verb);
    CHECK(back->n == r.n);
    CHECK(back->pid == r.pid);
    CHECK(back->all == r.all);
    CHECK(back->fast == r.fast);
  }
  CHECK(rotor::control::to_line(words({"scale", "3"})) == R"({"v":1,"cmd":"scale","n":3})");
}

TEST_CASE("control: bad words are refused before anything is sent") {
  CHECK(word_error({}) == "no command");
  CHECK(word_error({"frobnicate"}) == "unknown command: frobnicate");
  CHECK(word_error({"scale"}) == "scale takes one number");
  CHECK(word_error({"scale", "three"}) == "scale: not a whole number: three");
  CHECK(word_error({"add", "1", "2"}) == "add takes at most one number");
  CHECK(word_error({"rotate"}) == "rotate takes a worker's pid or 'all'");
  CHECK(word_error({"rotate", "-3"}) == "rotate: not a pid: -3");
  CHECK(word_error({"status", "now"}) == "status takes no argument");
  CHECK(word_error({"stop", "--slow"}) == "stop takes no argument but --fast");
}

TEST_CASE("control: a request line that is not a v1 request is refused with the reason") {
  std::string error;
  CHECK_FALSE(rotor::control::from_line("garbage", &error));
  CHECK_FALSE(error.empty());
  CHECK_FALSE(rotor::control::from_line(R"({"v":2,"cmd":"status"})", &error));
  CHECK(error.find("protocol version") != std::string::npos);
  CHECK_FALSE(rotor::control::from_line(R"({"v":1,"cmd":"explode"})", &error));
  CHECK(error == "unknown command");
  CHECK_FALSE(rotor::control::from_line(R"({"v":1,"cmd":"scale"})", &error));
  CHECK_FALSE(rotor::control::from_line(R"({"v":1,"cmd":"scale","n":1.5})", &error));
  CHECK_FALSE(rotor::control::from_line(R"({"v":1,"cmd":"rotate","pid":"some"})", &error));
  CHECK_FALSE(rotor::control::from_line(R"([1,2])", &error));
}

TEST_CASE("control: scale is carried out within 1 and the worker limit, refused outside") {
  CHECK(decide({"scale", "5"}).refusal.empty());
  CHECK(decide({"scale", "5"}).desired == 5);
  CHECK(decide({"scale", "512"}).refusal.empty());
  CHECK(decide({"scale", "0"}).refusal == "scale: at least 1 worker (got 0)");
  CHECK(decide({"scale", "-4"}).refusal == "scale: at least 1 worker (got -4)");
  CHECK(decide({"scale", "513"}).refusal == "scale: at most 512 workers (asked for 513)");
}

TEST_CASE("control: add and remove move the wanted count by N, never below 1 or past the limit") {
  CHECK(decide({"add"}).desired == 4);
  CHECK(decide({"add", "10"}).desired == 13);
  CHECK(decide({"remove"}).desired == 2);
  CHECK(decide({"remove", "2"}).desired == 1);
  CHECK(decide({"remove", "3"}).refusal == "remove: rotor keeps at least 1 worker (it has 3)");
  CHECK(decide({"add", "0"}).refusal == "add: at least 1 (got 0)");
  CHECK(decide({"remove", "-1"}).refusal == "remove: at least 1 (got -1)");
  CHECK(decide({"add", "510"}).refusal == "add: at most 512 workers (asked for 513)");
}

TEST_CASE("control: rotate takes a serving worker, and names why it will not take another pid") {
  Decision d = decide({"rotate", "102"});
  CHECK(d.refusal.empty());
  CHECK(d.rotate == std::vector<pid_t>{102});
  CHECK(decide({"rotate", "1"}).refusal == "rotate: pid 1 is not a worker of this rotor");
  CHECK(decide({"rotate", "103"}).refusal == "rotate: pid 103 is already leaving");
  CHECK(decide({"rotate", "104"}).refusal == "rotate: pid 104 is still booting");
  CHECK(decide({"rotate", "all"}).rotate == std::vector<pid_t>{101, 102});
}

TEST_CASE("control: once rotor is stopping, only reads and another stop are carried out") {
  State s = three_workers();
  s.stopping = true;
  CHECK(decide({"status"}, s).refusal.empty());
  CHECK(decide({"workers"}, s).refusal.empty());
  CHECK(decide({"stop", "--fast"}, s).refusal.empty());
  for (auto w : std::vector<std::vector<std::string>>{
           {"reload"}, {"scale", "2"}, {"add"}, {"rotate", "all"}, {"reopen"}}) {
    CHECK(decide(w, s).refusal == "rotor is stopping");
  }
}

TEST_CASE("json: parse and dump agree, and hostile texts are refused, not crashed on") {
  std::string error;
  auto v = rotor::json::parse(R"( {"a":[1,2.5,-3e2,true,false,null],"b":"x\"\u00e9\n"} )", &error);
  REQUIRE_MESSAGE(v, error);
  CHECK(rotor::json::dump(*v) ==
        "{\"a\":[1,2.5,-300,true,false,null],\"b\":\"x\\\"\xc3\xa9\\u000a\"}");
  CHECK(v->get("b")->string());
  CHECK(v->get("missing") == nullptr);
  for (const char* bad : {"", "{", "[1,", "{\"a\" 1}", "\"open", "tru", "1 2", "{\"a\":1,}",
                          "\"\\q\"", "\"\\u12\"", "nan", "-"}) {
    CHECK_FALSE_MESSAGE(rotor::json::parse(bad, &error), bad);
  }
  std::string deep(100, '[');
  CHECK_FALSE(rotor::json::parse(deep + std::string(100, ']'), &error));
  CHECK(error.find("nested too deeply") != std::string::npos);
}

TEST_CASE("ctl render: the workers table shows each worker's figures under its header") {
  std::string error;
  auto workers = rotor::json::parse(
      R"([{"pid":4242,"slot":0,"generation":2,"state":"ready","requests":150,"limit":1000,)"
      R"("req_per_s":12.5,"rss_mib":30.2,"private_mib":1.5,"age_s":75},)"
      R"({"pid":4243,"slot":1,"generation":2,"state":"booting","requests":0,"limit":0,)"
      R"("req_per_s":0,"rss_mib":0,"private_mib":0,"age_s":7300}])",
      &error);
  REQUIRE_MESSAGE(workers, error);
  std::string table = rotor::ctl::render_workers(*workers);
  CHECK(table.find("PID SLOT  GEN STATE") != std::string::npos);
  CHECK(table.find("4242    0    2 ready") != std::string::npos);
  CHECK(table.find("150/1000     12.5     30.2      1.5    75s") != std::string::npos);
  CHECK(table.find("0/-") != std::string::npos);   // no request limit
  CHECK(table.find("2.0h") != std::string::npos);  // ages in the largest fitting unit
}

TEST_CASE("ctl render: top's rate is over the last interval when it saw the worker before") {
  std::string error;
  auto workers = rotor::json::parse(
      R"([{"pid":7,"requests":300,"req_per_s":1},{"pid":8,"requests":50,"req_per_s":2.5}])",
      &error);
  REQUIRE(workers);
  rotor::ctl::Counts before{{7, 100}};
  std::string table = rotor::ctl::render_workers(*workers, &before, 2.0);
  CHECK(table.find("   100.0 ") != std::string::npos);  // (300 - 100) / 2 s
  CHECK(table.find("     2.5 ") != std::string::npos);  // new worker: its own average
  CHECK(rotor::ctl::request_counts(*workers) == rotor::ctl::Counts{{7, 300}, {8, 50}});
}

TEST_CASE("control: a member that belongs to another command is ignored, not carried along") {
  std::string error;
  auto r = rotor::control::from_line(R"({"v":1,"cmd":"rotate","pid":7,"fast":true,"n":9})",
                                     &error);
  REQUIRE_MESSAGE(r, error);
  CHECK_FALSE(r->fast);
  CHECK(r->n == 1);
  CHECK(r->pid == 7);
}
