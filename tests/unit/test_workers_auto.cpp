// --workers auto: the word in every source of the option, the decision from a quota or the
// affinity mask, and the master's resolution read from a fake /proc and cgroup tree.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "conf/load.hpp"
#include "supervisor/policy.hpp"
#include "supervisor/workers_auto.hpp"
#include "temp_dir.hpp"

using rotor::conf::Action;
using rotor::conf::kWorkersAuto;
using rotor::conf::load;
using rotor::conf::LoadResult;
using rotor::policy::auto_workers;
using rotor::test::TempDir;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void put(const TempDir& tmp, const std::string& name, const std::string& content) {
  std::filesystem::path path = tmp.path / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << content;
}

void check_refused(const std::vector<std::string>& args, const rotor::conf::Environment& env,
                   const std::string& needle) {
  LoadResult r = load(args, env);
  INFO("message: " << r.message);
  CHECK(r.action == Action::kError);
  CHECK(r.exit_code == 2);
  CHECK(r.message.find('\n') == std::string::npos);
  CHECK(contains(r.message, needle));
}

}  // namespace

TEST_SUITE("workers auto") {
  TEST_CASE("auto is a value of --workers, ROTOR_WORKERS, WEB_CONCURRENCY and the TOML key") {
    CHECK(load({"--workers", "auto"}, {}).config.workers == kWorkersAuto);
    CHECK(load({"-w", "AUTO"}, {}).config.workers == kWorkersAuto);
    CHECK(load({}, {{"ROTOR_WORKERS", "auto"}}).config.workers == kWorkersAuto);
    CHECK(load({}, {{"WEB_CONCURRENCY", "auto"}}).config.workers == kWorkersAuto);
    CHECK(load({"-w", "3"}, {{"WEB_CONCURRENCY", "auto"}}).config.workers == 3);
    TempDir d;
    LoadResult r = load({"-c", d.write("rotor.toml", "workers = \"auto\"\n")}, {});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == kWorkersAuto);
    CHECK(load({"-c", d.write("n.toml", "workers = 4\n")}, {}).config.workers == 4);
    CHECK(load({"-c", d.write("u.toml", "workers = \"Auto\"\n")}, {}).config.workers ==
          kWorkersAuto);
  }

  TEST_CASE("a gunicorn.conf.py's workers = \"auto\" is read by the same parser") {
    TempDir d;
    LoadResult r = load({"-c", d.write("gunicorn.conf.py", "workers = 'auto'\n")}, {});
    INFO(r.message);
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == kWorkersAuto);
  }

  TEST_CASE("a wrong word, 0 and negatives are still refused, naming auto") {
    for (const char* bad : {"autox", "0", "-1", "", "2.5", "auto "}) {
      INFO(bad);
      check_refused({"--workers", bad}, {}, "expected an integer in 1..512 or auto");
    }
    check_refused({}, {{"WEB_CONCURRENCY", "automatic"}}, "WEB_CONCURRENCY: expected");
    TempDir d;
    check_refused({"-c", d.write("a.toml", "workers = \"many\"\n")}, {},
                  "workers: expected an integer or \"auto\", got a string");
    check_refused({"-c", d.write("s.toml", "workers = \"4\"\n")}, {},
                  "workers: expected an integer or \"auto\", got a string");
    check_refused({"-c", d.write("b.toml", "workers = 1.5\n")}, {},
                  "workers: expected an integer or \"auto\", got a float");
  }

  TEST_CASE("other integer options take no word") {
    check_refused({"--backlog", "auto"}, {}, "expected an integer >= 1, got 'auto'");
    TempDir d;
    check_refused({"-c", d.write("c.toml", "backlog = \"auto\"\n")}, {},
                  "backlog: expected an integer, got a string");
  }

  TEST_CASE("--print-config shows auto as given, and loads back as auto") {
    LoadResult printed = load({"--print-config", "-w", "auto"}, {});
    REQUIRE(printed.action == Action::kPrintConfig);
    CHECK(contains(printed.message, "\nworkers = \"auto\"\n"));
    TempDir d;
    LoadResult again = load({"-c", d.write("p.toml", printed.message)}, {});
    REQUIRE(again.action == Action::kRun);
    CHECK(again.config.workers == kWorkersAuto);
    CHECK(contains(load({"--print-config", "-w", "7"}, {}).message, "\nworkers = 7\n"));
  }

  TEST_CASE("a quota is its CPUs rounded up") {
    CHECK(auto_workers(150000, 100000, 8, 512) == 2);
    CHECK(auto_workers(100000, 100000, 8, 512) == 1);
    CHECK(auto_workers(100001, 100000, 8, 512) == 2);
    CHECK(auto_workers(400000, 100000, 2, 512) == 4);  // the quota, not the affinity
    CHECK(auto_workers(50000, 100000, 8, 512) == 1);   // half a CPU is still one worker
    CHECK(auto_workers(1000, 100000, 8, 512) == 1);
  }

  TEST_CASE("no quota: the CPUs of the affinity mask") {
    CHECK(auto_workers(-1, 100000, 3, 512) == 3);
    CHECK(auto_workers(-1, 0, 1, 512) == 1);
    CHECK(auto_workers(0, 100000, 6, 512) == 6);
    CHECK(auto_workers(-1, 100000, 0, 512) == 1);
  }

  TEST_CASE("the count stays within 1..max workers") {
    CHECK(auto_workers(int64_t{1} << 60, 1000, 8, 512) == 512);
    CHECK(auto_workers(-1, 0, 4096, 512) == 512);
  }

  TEST_CASE("the affinity mask has at least one CPU and at most what the machine has") {
    int cpus = rotor::affinity_cpus();
    CHECK(cpus >= 1);
    CHECK(cpus <= 1 << 20);
  }

  TEST_CASE("the master resolves auto from its cgroup's quota, and leaves a number alone") {
    TempDir tmp;
    put(tmp, "proc/self/cgroup", "0::/pod\n");
    put(tmp, "proc/self/mountinfo", "40 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put(tmp, "sys/fs/cgroup/pod/cpu.max", "250000 100000\n");
    rotor::conf::Config config;
    config.workers = kWorkersAuto;
    rotor::resolve_auto_workers(config, tmp.dir());
    CHECK(config.workers == 3);
    config.workers = 5;
    rotor::resolve_auto_workers(config, tmp.dir());
    CHECK(config.workers == 5);
  }

  TEST_CASE("without a quota the master takes the affinity mask, never 0") {
    TempDir tmp;  // nothing in it: no cgroup in view
    rotor::conf::Config config;
    config.workers = kWorkersAuto;
    rotor::resolve_auto_workers(config, tmp.dir());
    CHECK(config.workers == std::min(rotor::affinity_cpus(), rotor::conf::kMaxWorkers));
  }
}
