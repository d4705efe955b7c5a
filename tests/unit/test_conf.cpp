// conf/: option table, layering (defaults < file < env < CLI), error lines, TOML round trip.
#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "conf/load.hpp"
#include "conf/options.hpp"
#include "conf/values.hpp"
#include "temp_dir.hpp"

using rotor::conf::Action;
using rotor::conf::Config;
using rotor::conf::Environment;
using rotor::conf::load;
using rotor::conf::LoadResult;

namespace {

const std::string kGunicornLogFormat =
    R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")";

using rotor::test::TempDir;

LoadResult run(const std::vector<std::string>& args, const Environment& env = {}) {
  return load(args, env);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

// An error is exit 2 and one line that starts with "rotor: error: " and contains `needle`.
#define CHECK_ERROR(result_expr, needle)               \
  do {                                                 \
    LoadResult r_ = (result_expr);                     \
    INFO("message: " << r_.message);                   \
    CHECK(r_.action == Action::kError);                \
    CHECK(r_.exit_code == 2);                          \
    CHECK(r_.message.starts_with("rotor: error: "));   \
    CHECK(r_.message.find('\n') == std::string::npos); \
    CHECK(contains(r_.message, needle));               \
  } while (0)

TEST_SUITE("conf") {
  TEST_CASE("defaults") {
    LoadResult r = run({});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.exit_code == 0);
    CHECK(r.warnings.empty());
    const Config& c = r.config;
    CHECK(c.bind == std::vector<std::string>{"127.0.0.1:8000"});
    CHECK(c.workers == 1);
    CHECK(c.worker_class == "hello");
    CHECK(c.app.empty());
    CHECK(c.config_file.empty());
    CHECK(c.timeout == 30);
    CHECK(c.graceful_timeout == 30);
    CHECK(c.keep_alive == 5);
    CHECK(c.backlog == 2048);
    CHECK(c.max_requests == 0);
    CHECK(c.max_requests_jitter == 0);
    CHECK(c.max_rss_mb == 0);
    CHECK(c.max_private_mb == 0);
    CHECK(c.max_lifetime == 0);
    CHECK(c.max_concurrent_rotations == 1);
    CHECK(c.limit_request_line == 4094);
    CHECK(c.limit_request_fields == 100);
    CHECK(c.limit_request_field_size == 8190);
    CHECK(c.umask == 0);
    CHECK(c.log_level == "info");
    CHECK(c.error_logfile == "-");
    CHECK(c.access_logfile.empty());
    CHECK(c.access_logformat == kGunicornLogFormat);
  }

  // Code that builds a Config by hand (tests) starts from the same values; bind starts empty.
  TEST_CASE("Config{} initializers agree with the table, except bind and access_logformat") {
    Config expected;
    expected.bind = {"127.0.0.1:8000"};
    expected.access_logformat = kGunicornLogFormat;
    CHECK(rotor::conf::to_toml(run({}).config) == rotor::conf::to_toml(expected));
  }

  TEST_CASE("the table: unique names, flags and environment names") {
    std::set<std::string> names, flags, envs;
    for (const auto& option : rotor::conf::options()) {
      CHECK(names.insert(std::string(option.name)).second);
      CHECK(envs.insert(rotor::conf::env_name(option)).second);
      for (const std::string& flag : rotor::conf::flag_names(option.flags))
        CHECK(flags.insert(flag).second);
      if (!option.negation.empty()) CHECK(flags.insert(std::string(option.negation)).second);
      CHECK(!option.help.empty());
    }
    for (const auto& action : rotor::conf::action_flags())
      for (const std::string& flag : rotor::conf::flag_names(action.flags))
        CHECK(flags.insert(flag).second);
  }

  TEST_CASE("layers: file < environment < command line") {
    TempDir dir;
    std::string file = dir.write("rotor.toml",
                                 "workers = 3\n"
                                 "max_requests = 50\n"
                                 "timeout = 10\n"
                                 "log_level = \"debug\"\n");
    Environment env{{"ROTOR_WORKERS", "4"}, {"ROTOR_TIMEOUT", "20.5"}};

    LoadResult r = run({"-c", file}, {});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == 3);
    CHECK(r.config.max_requests == 50);
    CHECK(r.config.timeout == 10);
    CHECK(r.config.config_file == file);

    r = run({"-c", file}, env);
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == 4);
    CHECK(r.config.timeout == 20.5);
    CHECK(r.config.max_requests == 50);
    CHECK(r.config.log_level == "debug");

    r = run({"-c", file, "-w", "5", "--log-level", "error"}, env);
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == 5);
    CHECK(r.config.timeout == 20.5);
    CHECK(r.config.max_requests == 50);
    CHECK(r.config.log_level == "error");
  }

  TEST_CASE("the file comes from ROTOR_CONFIG unless -c names one") {
    TempDir dir;
    std::string a = dir.write("a.toml", "workers = 2\n");
    std::string b = dir.write("b.toml", "workers = 7\n");
    CHECK(run({}, {{"ROTOR_CONFIG", a}}).config.workers == 2);
    LoadResult r = run({"--config", b}, {{"ROTOR_CONFIG", a}});
    CHECK(r.config.workers == 7);
    CHECK(r.config.config_file == b);
    CHECK_ERROR(run({}, {{"ROTOR_CONFIG", dir.path / "missing.toml"}}),
                "ROTOR_CONFIG: cannot read '");
    CHECK_ERROR(run({"-c", dir.path / "missing.toml"}), "--config: cannot read '");
    CHECK_ERROR(run({"-c", dir.path.string()}), "--config: cannot read '");
  }

  TEST_CASE("WEB_CONCURRENCY is a lower-precedence alias of ROTOR_WORKERS") {
    CHECK(run({}, {{"WEB_CONCURRENCY", "6"}}).config.workers == 6);
    CHECK(run({}, {{"WEB_CONCURRENCY", "6"}, {"ROTOR_WORKERS", "3"}}).config.workers == 3);
    CHECK(run({"-w", "2"}, {{"WEB_CONCURRENCY", "6"}}).config.workers == 2);
    CHECK(run({}, {{"WEB_CONCURRENCY", "abc"}, {"ROTOR_WORKERS", "3"}}).config.workers == 3);
    CHECK_ERROR(run({}, {{"WEB_CONCURRENCY", "0"}}),
                "WEB_CONCURRENCY: expected an integer in 1..512 or auto, got '0'");
  }

  TEST_CASE("unrelated ROTOR_ variables are ignored") {
    CHECK(run({}, {{"ROTOR_BIN", "/x"}, {"ROTOR_SOURCE_DIR", "/y"}}).action == Action::kRun);
  }

  TEST_CASE("bind: repeatable, replaces the default, validated") {
    CHECK(run({"-b", "0.0.0.0:9000"}).config.bind == std::vector<std::string>{"0.0.0.0:9000"});
    LoadResult r = run({"-b", "[::1]:8000", "--bind", "unix:/tmp/r.sock", "-b", "fd://3"});
    CHECK(r.config.bind == std::vector<std::string>{"[::1]:8000", "unix:/tmp/r.sock", "fd://3"});
    CHECK(run({"--bind=localhost:0", "app:main"}).config.app == "app:main");
    CHECK(run({}, {{"ROTOR_BIND", "a:1, b:2 c:3"}}).config.bind ==
          std::vector<std::string>{"a:1", "b:2", "c:3"});

    TempDir dir;
    std::string list = dir.write("list.toml", "bind = [\"a:1\", \"[fe80::1%eth0]:2\"]\n");
    CHECK(run({"-c", list}).config.bind == std::vector<std::string>{"a:1", "[fe80::1%eth0]:2"});
    std::string single = dir.write("single.toml", "bind = \"unix:/run/rotor.sock\"\n");
    CHECK(run({"-c", single}).config.bind == std::vector<std::string>{"unix:/run/rotor.sock"});
    CHECK(run({"-c", list, "-b", "z:9"}).config.bind == std::vector<std::string>{"z:9"});

    for (const char* bad : {"nohost", "host:", ":80", "host:port", "host:70000", "1.2.3.4:-1",
                            "[::1:80", "[zz]:80", "::1:80", "unix:", "fd://", "fd://x"}) {
      CAPTURE(bad);
      CHECK_ERROR(run({"-b", bad}), "--bind: expected");
    }
    CHECK_ERROR(run({"-b", "h:70000"}),
                "rotor: error: --bind: expected a port in 0..65535, got 'h:70000'");
    CHECK_ERROR(run({}, {{"ROTOR_BIND", " , "}}), "ROTOR_BIND: expected at least one value");
    CHECK_ERROR(run({"-c", dir.write("empty.toml", "bind = []\n")}),
                "bind: expected at least one value");
  }

  TEST_CASE("integers") {
    CHECK_ERROR(run({"--workers", "abc"}),
                "rotor: error: --workers: expected an integer in 1..512 or auto, got 'abc'");
    CHECK_ERROR(run({"-w", "0"}), "--workers: expected an integer in 1..512 or auto, got '0'");
    CHECK_ERROR(run({"-w", "1.5"}), "--workers: expected an integer in 1..512 or auto, got '1.5'");
    CHECK_ERROR(run({"-w", ""}), "--workers: expected an integer in 1..512 or auto, got ''");
    CHECK_ERROR(run({"-w", "99999999999999999999"}), "--workers: expected an integer");
    CHECK_ERROR(run({}, {{"ROTOR_MAX_REQUESTS", "-5"}}),
                "rotor: error: ROTOR_MAX_REQUESTS: expected an integer >= 0, got '-5'");
    CHECK_ERROR(run({"--limit-request-fields", "40000"}),
                "--limit-request-fields: expected an integer in 0..32768, got '40000'");
    CHECK_ERROR(run({"--max-requests=-5"}), "--max-requests: expected an integer >= 0, got '-5'");
    CHECK(run({"--limit-request-line", "0"}).config.limit_request_line == 0);
    CHECK(run({"--limit-request-field-size", "10"}).config.limit_request_field_size == 10);
    CHECK(run({"-w", "2", "-w", "3"}).config.workers == 3);  // last one wins, like argparse
  }

  TEST_CASE("durations") {
    CHECK(run({"-t", "1.5"}).config.timeout == 1.5);
    CHECK(run({"-t", "0"}).config.timeout == 0);
    // Shorter than a worker can beat: each would be killed and replaced, ten times a second.
    for (const char* short_one : {"0.5", "1e-9"}) {
      CAPTURE(short_one);
      CHECK_ERROR(run({"--timeout", short_one}),
                  "--timeout: expected 0 (never) or at least 1 second, got '");
    }
    CHECK(run({"--graceful-timeout", "2"}).config.graceful_timeout == 2);
    CHECK(run({"--keep-alive", "0"}).config.keep_alive == 0);
    CHECK(run({"--max-lifetime", "3600"}).config.max_lifetime == 3600);
    for (const char* bad : {"-1", "nan", "inf", "-inf", "1s", "", "0x10", "1e999"}) {
      CAPTURE(bad);
      CHECK_ERROR(run({"--timeout", bad}),
                  "--timeout: expected a number of seconds in 0..31536000, got '");
    }
    CHECK_ERROR(run({}, {{"ROTOR_KEEP_ALIVE", "soon"}}),
                "ROTOR_KEEP_ALIVE: expected a number of seconds in 0..31536000, got 'soon'");
  }

  TEST_CASE("every duration is at most a year, so that none overflows downstream") {
    // --graceful-timeout 1e10 once overflowed nanoseconds and killed requests at TERM at once.
    int durations = 0;
    for (const rotor::conf::Option& option : rotor::conf::options()) {
      if (option.kind != rotor::conf::Kind::kSeconds) continue;
      ++durations;
      std::string env = "ROTOR_" + std::string(option.name);
      for (char& c : env) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      CAPTURE(env);
      for (const char* bad : {"1e10", "1e17", "31536000.5", "9.3e18"}) {
        CAPTURE(bad);
        CHECK_ERROR(run({}, {{env, bad}}), env + ": expected a number of seconds in ");
      }
      CHECK(run({}, {{env, "31536000"}}).action == Action::kRun);
    }
    CHECK(durations >= 10);
    CHECK_ERROR(run({"--graceful-timeout", "1e10"}),
                "--graceful-timeout: expected a number of seconds in 0..31536000, got '1e10'");
    CHECK_ERROR(run({"--keep-alive", "1e17"}),
                "--keep-alive: expected a number of seconds in 0..31536000, got '1e17'");
  }

  TEST_CASE("choices") {
    CHECK(run({"--log-level", "DEBUG"}).config.log_level == "debug");
    CHECK(run({"-k", "hello"}).config.worker_class == "hello");
    CHECK_ERROR(run({"-k", "gevent"}),
                "--worker-class: expected one of auto, asgi, hello, got 'gevent'");
    // gunicorn's uvicorn worker classes mean asgi, whatever their case.
    CHECK(run({"-k", "uvicorn.workers.UvicornWorker", "m:app"}).config.worker_class == "asgi");
    CHECK(run({"-k", "uvicorn_worker.uvicornworker", "m:app"}).config.worker_class == "asgi");
    // auto: asgi with an APP, hello without.
    CHECK(run({"m:app"}).config.worker_class == "asgi");
    CHECK(run({}).config.worker_class == "hello");
    CHECK_ERROR(run({"-k", "asgi"}), "APP: the asgi worker class needs an application");
    CHECK_ERROR(run({"--log-level", "loud"}),
                "--log-level: expected one of debug, info, warning, error, critical, got 'loud'");
  }

  TEST_CASE("a negated boolean flag: --no-preload turns the default off, and beats the env") {
    CHECK(run({"m:app"}).config.preload);
    CHECK_FALSE(run({"--no-preload", "m:app"}).config.preload);
    CHECK(run({"--preload", "m:app"}).config.preload);
    CHECK_FALSE(run({"m:app"}, {{"ROTOR_PRELOAD", "false"}}).config.preload);
    CHECK_FALSE(run({"--no-preload", "m:app"}, {{"ROTOR_PRELOAD", "true"}}).config.preload);
    CHECK(run({"--preload", "--no-preload", "m:app"}).action == Action::kError);
    CHECK(contains(rotor::conf::options_markdown(), "`--no-preload`"));
  }

  TEST_CASE("booleans") {
    rotor::conf::Option flag{.name = "flag", .kind = rotor::conf::Kind::kBool};
    for (const char* yes : {"true", "TRUE", "1", "yes", "on"})
      CHECK(std::get<bool>(rotor::conf::parse_value(flag, yes).value));
    for (const char* no : {"false", "0", "no", "Off"})
      CHECK(!std::get<bool>(rotor::conf::parse_value(flag, no).value));
    for (const char* bad : {"", "maybe", "2"})
      CHECK(rotor::conf::parse_value(flag, bad).error == "expected true or false");
  }

  TEST_CASE("umask forms") {
    CHECK(run({"--umask", "0"}).config.umask == 0);
    CHECK(run({"--umask", "022"}).config.umask == 022);
    CHECK(run({"--umask", "0o22"}).config.umask == 022);
    CHECK(run({"--umask", "0O22"}).config.umask == 022);
    CHECK(run({"--umask", "0x12"}).config.umask == 022);
    CHECK(run({"--umask", "0b10010"}).config.umask == 022);
    CHECK(run({"-m", "0777"}).config.umask == 0777);
    CHECK(run({}, {{"ROTOR_UMASK", "007"}}).config.umask == 07);
    for (const char* bad : {"18", "22", "0o8", "08", "0o1000", "abc", "-0o22", "0o", "0x", ""}) {
      CAPTURE(bad);
      CHECK_ERROR(run({"--umask", bad}), "--umask: expected an octal mode like 022 or 0o22");
    }
    CHECK_ERROR(run({"--umask", "0o1000"}), "at most 0o777, got '0o1000'");

    TempDir dir;
    CHECK(run({"-c", dir.write("a.toml", "umask = 0o22\n")}).config.umask == 022);
    CHECK(run({"-c", dir.write("b.toml", "umask = \"022\"\n")}).config.umask == 022);
    CHECK(run({"-c", dir.write("c.toml", "umask = 0\n")}).config.umask == 0);
    CHECK_ERROR(run({"-c", dir.write("d.toml", "umask = 18\n")}), "umask: expected an octal mode");
  }

  TEST_CASE("command-line errors are one line, exit 2") {
    CHECK_ERROR(run({"--wokers", "3"}), "rotor: error: unknown option '--wokers'");
    CHECK_ERROR(run({"-x"}), "unknown option '-x'");
    CHECK_ERROR(run({"--workers"}), "--workers");
    CHECK_ERROR(run({"-b"}), "--bind");
    CHECK_ERROR(run({"a:app", "b:app"}), "rotor: error: unexpected argument 'b:app'");
    CHECK_ERROR(run({"--timeout"}), "--timeout");
  }

  TEST_CASE("TOML file errors name the file, line and column") {
    TempDir dir;
    std::string bad_syntax = dir.write("rotor.toml", "workers = 2\nbind = \n");
    CHECK_ERROR(run({"-c", bad_syntax}), bad_syntax + ":2:");
    CHECK_ERROR(run({"-c", bad_syntax}), "invalid TOML");

    std::string unknown = dir.write("unknown.toml", "workers = 2\n\nwokers = 3\n");
    CHECK_ERROR(run({"-c", unknown}), "rotor: error: " + unknown + ":3:1: unknown option 'wokers'");
    std::string dashed = dir.write("dashed.toml", "max-requests = 3\n");
    CHECK_ERROR(run({"-c", dashed}),
                "unknown option 'max-requests' (did you mean 'max_requests'?)");
    CHECK_ERROR(run({"-c", dir.write("config.toml", "config = \"x.toml\"\n")}),
                "unknown option 'config'");
    CHECK_ERROR(run({"-c", dir.write("table.toml", "[server]\nworkers = 2\n")}),
                "unknown option 'server'");

    std::string wrong = dir.write("wrong.toml", "workers = \"3\"\n");
    CHECK_ERROR(run({"-c", wrong}),
                wrong + ":1:11: workers: expected an integer or \"auto\", got a string");
    CHECK_ERROR(run({"-c", dir.write("f.toml", "backlog = 1.0\n")}),
                "backlog: expected an integer, got a float");
    CHECK_ERROR(run({"-c", dir.write("s.toml", "timeout = \"30\"\n")}),
                "timeout: expected a number, got a string");
    CHECK_ERROR(run({"-c", dir.write("l.toml", "log_level = 3\n")}),
                "log_level: expected a string, got an integer");
    CHECK_ERROR(run({"-c", dir.write("b.toml", "bind = [\"a:1\", 2]\n")}),
                ":1:16: bind: expected a string or an array of strings, got an integer");
    CHECK_ERROR(run({"-c", dir.write("r.toml", "workers = 0\n")}),
                ":1:11: workers: expected an integer in 1..512 or auto, got '0'");
    CHECK_ERROR(run({"-c", dir.write("n.toml", "timeout = nan\n")}),
                "timeout: expected a number of seconds in 0..31536000, got 'nan'");

    // Seconds accept TOML integers and floats.
    CHECK(run({"-c", dir.write("t.toml", "timeout = 10\nkeep_alive = 0.25\n")}).config.keep_alive ==
          0.25);
  }

  TEST_CASE("actions") {
    LoadResult r = run({"--check-config"});
    CHECK(r.action == Action::kCheckConfig);
    CHECK(r.exit_code == 0);
    CHECK(r.message == "rotor: config ok");
    CHECK_ERROR(run({"--check-config", "-w", "0"}), "--workers");

    r = run({"--version"});
    CHECK(r.action == Action::kVersion);
    CHECK(r.message == std::string("rotor ") + ROTOR_VERSION);

    r = run({"-h"});
    CHECK(r.action == Action::kHelp);
    CHECK(r.exit_code == 0);
    for (const auto& option : rotor::conf::options())
      for (const std::string& flag : rotor::conf::flag_names(option.flags))
        CHECK_MESSAGE(contains(r.message, flag), flag);
    CHECK(!contains(r.message, "--help-options-markdown"));
    CHECK(run({"--help", "-w", "abc"}).action == Action::kHelp);  // help wins over bad values

    r = run({"--help-options-markdown"});
    CHECK(r.action == Action::kHelp);
    CHECK(r.message == rotor::conf::options_markdown());
  }

  TEST_CASE("options_markdown lists every flag and environment name") {
    std::string md = rotor::conf::options_markdown();
    CHECK(md.starts_with("| Option | Flags | Env | Default | Description |\n"));
    for (const auto& option : rotor::conf::options()) {
      for (const std::string& flag : rotor::conf::flag_names(option.flags))
        CHECK_MESSAGE(contains(md, "`" + flag + "`"), flag);
      CHECK(contains(md, "`" + rotor::conf::env_name(option) + "`"));
    }
    CHECK(contains(md, "`WEB_CONCURRENCY`"));
    CHECK(contains(md, "`--print-config`"));
    CHECK(contains(md, "`--check-config`"));
  }

  TEST_CASE("the man page and the completion come from the option table") {
    CHECK(run({"--help-man"}).message == rotor::conf::options_man_page());
    CHECK(run({"--help-bash-completion"}).message == rotor::conf::options_bash_completion());
    CHECK(!contains(run({"-h"}).message, "--help-man"));
    std::string man = rotor::conf::options_man_page();
    std::string completion = rotor::conf::options_bash_completion();
    for (const auto& option : rotor::conf::options()) {
      CHECK(contains(man, rotor::conf::roff(rotor::conf::env_name(option))));
      if (!option.flags.starts_with('-')) continue;
      for (const std::string& flag : rotor::conf::flag_names(option.flags)) {
        CHECK_MESSAGE(contains(man, "\\fB" + rotor::conf::roff(flag) + "\\fR"), flag);
        bool listed =
            contains(completion, " " + flag + " ") || contains(completion, "'" + flag + " ");
        CHECK_MESSAGE(listed, flag);
      }
    }
  }

  TEST_CASE("roff escapes what roff would read as markup") {
    using rotor::conf::roff;
    CHECK(roff("--max-requests") == "\\-\\-max\\-requests");
    CHECK(roff("C:\\path") == "C:\\epath");
    CHECK(roff(".TH at the start\n'quote too, .not here") ==
          "\\&.TH at the start\n\\&'quote too, .not here");
    CHECK(roff("caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80") == "caf\\[u00E9] \\[u2014] \\[u1F600]");
  }

  TEST_CASE("print-config round trip") {
    LoadResult printed = run({"--print-config"});
    CHECK(printed.action == Action::kPrintConfig);
    CHECK(printed.exit_code == 0);
    CHECK(printed.message == rotor::conf::to_toml(run({}).config));

    std::vector<std::string> args = {"--print-config",
                                     "app:main",
                                     "-w",
                                     "3",
                                     "-b",
                                     "0.0.0.0:9000",
                                     "-b",
                                     "unix:/tmp/a b.sock",
                                     "-t",
                                     "1.25",
                                     "--graceful-timeout",
                                     "7",
                                     "--keep-alive",
                                     "2.5",
                                     "--max-requests",
                                     "100",
                                     "--max-requests-jitter",
                                     "10",
                                     "--max-rss",
                                     "512",
                                     "--max-lifetime",
                                     "3600.75",
                                     "--max-lifetime-jitter",
                                     "60",
                                     "--max-concurrent-rotations",
                                     "2",
                                     "--backlog",
                                     "64",
                                     "--limit-request-line",
                                     "0",
                                     "--limit-request-fields",
                                     "32768",
                                     "--limit-request-field_size",
                                     "100",
                                     "--chdir",
                                     "/srv/app",
                                     "--pid",
                                     "/run/rotor.pid",
                                     "--user",
                                     "www",
                                     "--group",
                                     "www",
                                     "--umask",
                                     "0o27",
                                     "--log-level",
                                     "warning",
                                     "--error-logfile",
                                     "/var/log/err.log",
                                     "--access-logfile",
                                     "-",
                                     "--access-logformat",
                                     "%(h)s \"quoted\" back\\slash 'single' ünïcode\ttab"};
    printed = run(args);
    REQUIRE(printed.action == Action::kPrintConfig);
    TempDir dir;
    std::string file = dir.write("printed.toml", printed.message);
    LoadResult reloaded = run({"-c", file});
    INFO(printed.message);
    REQUIRE(reloaded.action == Action::kRun);
    CHECK(rotor::conf::to_toml(reloaded.config) == printed.message);
    CHECK(reloaded.config.bind == printed.config.bind);
    CHECK(reloaded.config.timeout == 1.25);
    CHECK(reloaded.config.max_lifetime == 3600.75);
    CHECK(reloaded.config.umask == 027);
    CHECK(reloaded.config.access_logformat == printed.config.access_logformat);
    CHECK(!contains(printed.message, "config ="));
  }

  TEST_CASE("gunicorn's flags parse") {
    LoadResult r = run({"-w", "2", "--max-requests", "100", "--max-requests-jitter", "10", "-b",
                        "0.0.0.0:9000", "--limit-request-field_size", "100"});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == 2);
    CHECK(r.config.max_requests == 100);
    CHECK(r.config.max_requests_jitter == 10);
    CHECK(r.config.bind == std::vector<std::string>{"0.0.0.0:9000"});
    CHECK(r.config.limit_request_field_size == 100);
    CHECK(r.warnings.empty());

    r = run({"-w2", "--timeout=60", "-k", "hello", "--log-file", "-", "-p", "x.pid", "-u", "nobody",
             "-g", "nogroup", "-m", "007", "--access-logfile", "-"});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == 2);
    CHECK(r.config.timeout == 60);
    CHECK(r.config.pid_file == "x.pid");
    CHECK(r.config.umask == 07);
  }

  TEST_CASE("cross-field checks warn") {
    LoadResult r = run({"--max-requests-jitter", "10"});
    REQUIRE(r.action == Action::kRun);
    REQUIRE(r.warnings.size() == 1);
    CHECK(contains(r.warnings[0], "max_requests_jitter"));
    CHECK(run({"--max-lifetime-jitter", "5"}).warnings.size() == 1);
    CHECK(run({"-k", "hello", "app:main"}).warnings.size() == 1);  // hello ignores the APP
  }

  TEST_CASE("environment_from") {
    std::string a = "A=1", b = "B=x=y", c = "C=", d = "junk";
    char* envp[] = {a.data(), b.data(), c.data(), d.data(), nullptr};
    Environment env = rotor::conf::environment_from(envp);
    CHECK(env == Environment{{"A", "1"}, {"B", "x=y"}, {"C", ""}});
  }
}

TEST_SUITE("conf") {
  TEST_CASE("gunicorn flags that do not apply are accepted with a warning") {
    LoadResult r = run({"-w", "2", "--threads", "4", "--preload", "-n", "web", "m:app"});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == 2);
    CHECK(r.config.preload);  // gunicorn's --preload is rotor's template: accepted, no warning
    CHECK(r.warnings.size() == 2);
    bool threads = false;
    for (const auto& w : r.warnings) threads = threads || contains(w, "--threads is a gunicorn");
    CHECK(threads);
    CHECK(run({"--enable-stdio-inheritance", "m:app"}).warnings.size() == 1);
  }

  TEST_CASE("gunicorn's TLS flags are refused, saying to terminate TLS in a proxy") {
    // Ignoring them would serve plain HTTP to clients told to expect HTTPS.
    for (const char* flag : {"--certfile", "--keyfile", "--ca-certs", "--ciphers"}) {
      LoadResult r = run({flag, "x.pem", "m:app"});
      CHECK(r.action == Action::kError);
      CHECK(contains(r.message, std::string(flag) + ": TLS is not supported"));
      CHECK(contains(r.message, "proxy"));
    }
    CHECK(run({"--suppress-ragged-eofs", "m:app"}).action == Action::kError);
  }
}

TEST_SUITE("conf") {
  TEST_CASE("uvicorn's --host/--port/--uds/--fd become binds, with uvicorn's defaults") {
    using Binds = std::vector<std::string>;
    CHECK(run({"--host", "0.0.0.0", "--port", "8123"}).config.bind == Binds{"0.0.0.0:8123"});
    CHECK(run({"--port=9000"}).config.bind == Binds{"127.0.0.1:9000"});
    CHECK(run({"--host", "::1"}).config.bind == Binds{"[::1]:8000"});
    // One of them, as uvicorn: the socket path, else the descriptor, else host and port.
    CHECK(
        run({"--host=0.0.0.0", "--port", "81", "--uds", "/tmp/r.sock", "--fd", "3"}).config.bind ==
        Binds{"unix:/tmp/r.sock"});
    CHECK(run({"--port", "81", "--fd", "3"}).config.bind == Binds{"fd://3"});
    // A value of one of rotor's options is never taken for a uvicorn flag.
    LoadResult value = run({"--access-logformat", "--access-log", "--port", "82", "m:app"});
    REQUIRE(value.action == Action::kRun);
    CHECK(value.config.access_logformat == "--access-log");
    CHECK(value.config.access_logfile.empty());
    CHECK(value.config.bind == Binds{"127.0.0.1:82"});
    LoadResult both = run({"-b", "127.0.0.1:1", "--port", "2"});
    CHECK(both.action == Action::kError);
    CHECK(contains(both.message, "use one"));
    LoadResult port = run({"--port", "http"});
    CHECK(port.action == Action::kError);
    CHECK(contains(port.message, "--port: expected a port number, got 'http'"));
    CHECK(run({"--port", "70000"}).action == Action::kError);
    CHECK(contains(run({"--fd", "-1"}).message, "--fd"));
    CHECK(contains(run({"-w", "2", "--host"}).message, "--host: expected a value"));
  }

  TEST_CASE("uvicorn's names for rotor's options") {
    LoadResult r = run({"--limit-max-requests", "50", "--timeout-keep-alive", "7",
                        "--timeout-graceful-shutdown", "3", "--app-dir", "src", "--log-level",
                        "trace", "--access-log", "m:app"});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.max_requests == 50);
    CHECK(r.config.keep_alive == 7.0);
    CHECK(r.config.graceful_timeout == 3.0);
    CHECK(r.config.pythonpath == std::vector<std::string>{"src"});
    CHECK(r.config.log_level == "debug");
    CHECK(r.config.access_logfile == "-");
    CHECK(run({"--access-logfile", "a.log", "--no-access-log"}).config.access_logfile.empty());
  }

  TEST_CASE("uvicorn flags without meaning here warn; TLS and dotenv files are refused") {
    LoadResult r = run({"--http", "h11", "--ws", "auto", "--no-use-colors", "m:app"});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.warnings.size() == 3);
    bool named = false;
    for (const auto& w : r.warnings) named = named || contains(w, "--http is a uvicorn option");
    CHECK(named);
    CHECK(contains(run({"--ssl-certfile", "c.pem", "m:app"}).message, "TLS is not supported"));
    LoadResult env_file = run({"--env-file", ".env", "m:app"});
    CHECK(env_file.action == Action::kError);
    CHECK(contains(env_file.message, "-e KEY=VALUE"));
  }
}

TEST_SUITE("conf") {
  TEST_CASE("response header options: on by default, NAME:VALUE checked, errors on one line") {
    LoadResult d = run({});
    CHECK(d.config.server_header);
    CHECK(d.config.date_header);
    CHECK(d.config.header.empty());
    LoadResult r = run(
        {"--no-server-header", "--no-date-header", "--header", "X-A: b", "--header", "X-Empty:"});
    REQUIRE(r.action == Action::kRun);
    CHECK_FALSE(r.config.server_header);
    CHECK_FALSE(r.config.date_header);
    CHECK(r.config.header == std::vector<std::string>{"X-A: b", "X-Empty:"});
    CHECK(contains(run({"--header", ":x"}).message, "NAME:VALUE"));
    CHECK(contains(run({"--header", "X(A):x"}).message, "token"));
    LoadResult crlf = run({"--header", "X-A:b\r\nSet-Cookie: x"});
    CHECK(contains(crlf.message, "control characters"));
    CHECK(contains(crlf.message, "'X-A:b\\r\\nSet-Cookie: x'"));  // escaped: still one line
    CHECK(crlf.message.find('\n') == std::string::npos);
    // Framing belongs to each response: a default Content-Length would contradict it.
    for (const char* framing :
         {"Content-Length: 0", "transfer-encoding:chunked", "Connection:close"}) {
      CHECK(contains(run({"--header", framing}).message, "per response"));
    }
  }
}

TEST_SUITE("conf") {
  TEST_CASE("a list in the environment: separated by commas or spaces, or a TOML array") {
    LoadResult r =
        run({}, {{"ROTOR_HEADER", R"( ["Cache-Control: no-store, max-age=0", "X-A: b"])"},
                 {"ROTOR_BIND", "127.0.0.1:1, 127.0.0.1:2"}});
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.header ==
          std::vector<std::string>{"Cache-Control: no-store, max-age=0", "X-A: b"});
    CHECK(r.config.bind == std::vector<std::string>{"127.0.0.1:1", "127.0.0.1:2"});
    // '[' opens an array only before a quote or ']': these are IPv6 binds.
    CHECK(run({}, {{"ROTOR_BIND", "[::1]:8000"}}).config.bind ==
          std::vector<std::string>{"[::1]:8000"});
    CHECK(run({}, {{"ROTOR_BIND", " [::]:8000, 127.0.0.1:1"}}).config.bind ==
          std::vector<std::string>{"[::]:8000", "127.0.0.1:1"});
    CHECK(run({}, {{"ROTOR_BIND", "[ '127.0.0.1:3' ]"}}).config.bind ==
          std::vector<std::string>{"127.0.0.1:3"});
    CHECK(run({}, {{"ROTOR_HEADER", "[]"}}).config.header.empty());
    for (const char* bad : {"[\"x\", 1]", "[\"unterminated]"}) {
      LoadResult e = run({}, {{"ROTOR_ENV", bad}});
      CHECK(e.action == Action::kError);
      CHECK(contains(e.message, "ROTOR_ENV: expected a TOML array of strings"));
    }
    CHECK(contains(run({}, {{"ROTOR_ENV", "[1, 2]"}}).message, "ROTOR_ENV: expected KEY=VALUE"));
  }
}
