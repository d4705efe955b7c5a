// conf/gunicorn_config: a gunicorn.conf.py run in Python and mapped onto the option table, the
// default ./gunicorn.conf.py, and GUNICORN_CMD_ARGS, with their places in the precedence.
#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "conf/gunicorn_config.hpp"
#include "conf/load.hpp"
#include "temp_dir.hpp"

using rotor::conf::Action;
using rotor::conf::Environment;
using rotor::conf::load;
using rotor::conf::LoadResult;
using rotor::conf::split_command_line;
using rotor::test::TempDir;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool any_contains(const std::vector<std::string>& lines, const std::string& needle) {
  for (const std::string& line : lines)
    if (contains(line, needle)) return true;
  return false;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::string problem = split_command_line(text, words);
  REQUIRE(problem.empty());
  return words;
}

}  // namespace

TEST_SUITE("gunicorn config") {
  TEST_CASE("a gunicorn.conf.py's settings map onto rotor's options") {
    TempDir d;
    std::string file = d.write("gunicorn.conf.py", R"PY(
import multiprocessing, os
cores = multiprocessing.cpu_count()       # the file's own helpers are skipped
workers = int(os.environ.get("WORKERS", "3"))
bind = "127.0.0.1:9001"
worker_class = "uvicorn.workers.UvicornWorker"
wsgi_app = "main:app"
max_requests = 100
max_requests_jitter = 10
keepalive = 2
timeout = 60.5
umask = 0o27
preload_app = False
raw_env = ["A=1 2", "B=x"]
forwarded_allow_ips = "10.0.0.1,10.0.0.2"
pythonpath = "src,lib"
accesslog = "-"
errorlog = None                            # gunicorn's default: not set
loglevel = "warning"
access_log_format = '%(h)s "%(r)s" %(s)s'
)PY");
    LoadResult r = load({"-c", file}, {{"WORKERS", "4"}});
    INFO(r.message);
    REQUIRE(r.action == Action::kRun);
    CHECK(r.config.workers == 4);
    CHECK(r.config.bind == std::vector<std::string>{"127.0.0.1:9001"});
    CHECK(r.config.worker_class == "asgi");
    CHECK(r.config.app == "main:app");
    CHECK(r.config.max_requests == 100);
    CHECK(r.config.max_requests_jitter == 10);
    CHECK(r.config.keep_alive == 2.0);
    CHECK(r.config.timeout == 60.5);
    CHECK(r.config.umask == 027);
    CHECK_FALSE(r.config.preload);
    CHECK(r.config.env == std::vector<std::string>{"A=1 2", "B=x"});
    CHECK(r.config.forwarded_allow_ips == "10.0.0.1,10.0.0.2");
    CHECK(r.config.pythonpath == std::vector<std::string>{"src", "lib"});
    CHECK(r.config.access_logfile == "-");
    CHECK(r.config.log_level == "warning");
    CHECK(r.config.access_logformat == R"(%(h)s "%(r)s" %(s)s)");
    CHECK(r.warnings.empty());
  }

  TEST_CASE("hooks and settings rotor ignores are warnings; off or default ones are not") {
    TempDir d;
    std::string file = d.write("g.py", R"PY(
def post_fork(server, worker):
    pass
def on_starting(server):
    pass
def helper():                              # not a hook: nothing said
    pass
threads = 4
daemon = False
reload = False
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
keyfile = None
ssl_version = 2
)PY");
    LoadResult r = load({"-c", file}, {});
    INFO(r.message);
    REQUIRE(r.action == Action::kRun);
    CHECK(r.warnings.size() == 4);
    CHECK(any_contains(r.warnings, "g.py: post_fork is a gunicorn server hook"));
    CHECK(any_contains(r.warnings, "g.py: on_starting is a gunicorn server hook"));
    CHECK(any_contains(r.warnings, "g.py: threads is a gunicorn setting rotor ignores"));
    CHECK(any_contains(r.warnings, "g.py: secure_scheme_headers is a gunicorn setting"));
  }

  TEST_CASE("whether a setting is set is Python's truth, whatever its size") {
    TempDir d;
    LoadResult r = load({"-c", d.write("g.py", "threads = 10**400\nstatsd_host = ''\n")}, {});
    INFO(r.message);
    REQUIRE(r.action == Action::kRun);
    CHECK(r.warnings.size() == 1);  // threads only: an empty statsd_host is gunicorn's default
    CHECK(any_contains(r.warnings, "g.py: threads is a gunicorn setting rotor ignores"));
  }

  TEST_CASE("a broken gunicorn.conf.py is one error line naming the file and the problem") {
    TempDir d;
    auto error_of = [&](const std::string& body) {
      LoadResult r = load({"-c", d.write("bad.py", body)}, {});
      CHECK(r.action == Action::kError);
      CHECK(r.exit_code == 2);
      CHECK(r.message.find('\n') == std::string::npos);
      return r.message;
    };
    CHECK(contains(error_of("workers = 2\nx = 1 / 0\n"),
                   "bad.py: line 2: ZeroDivisionError: division by zero"));
    CHECK(contains(error_of("workers = (\n"), "bad.py: line 1: SyntaxError: '(' was never closed"));
    CHECK(contains(error_of("raise SystemExit(3)\n"), "bad.py: line 1: SystemExit: 3"));
    CHECK(contains(error_of("workers = 'three'\n"),
                   "bad.py: workers: expected an integer in 1..512 or auto, got 'three'"));
    CHECK(contains(error_of("workers = [2]\n"),
                   "bad.py: workers: expected a single value, got a list"));
    CHECK(contains(error_of("bind = {'a': 1}\n"),
                   "bad.py: bind: expected a string or a list of strings, got a dict"));
    CHECK(contains(error_of("certfile = '/etc/cert.pem'\n"),
                   "bad.py: certfile: TLS is not supported"));
    LoadResult missing = load({"-c", d.dir() + "/missing.py"}, {});
    CHECK(contains(missing.message, "--config: cannot read"));
    LoadResult module = load({"-c", "python:no_such_module_here"}, {});
    CHECK(contains(module.message, "ModuleNotFoundError: No module named 'no_such_module_here'"));
  }

  TEST_CASE("python:module names a config module on the path of the starting directory") {
    TempDir d;
    d.write("myconf.py", "workers = 6\n");
    LoadResult r = load({"-c", "python:myconf"}, {}, d.dir());
    INFO(r.message);
    CHECK(r.config.workers == 6);
  }

  TEST_CASE("./gunicorn.conf.py is read when no config file is named, as gunicorn does") {
    TempDir d;
    d.write("gunicorn.conf.py", "workers = 5\n");
    LoadResult r = load({}, {}, d.dir());
    INFO(r.message);
    CHECK(r.config.workers == 5);
    CHECK(any_contains(r.warnings, "read ./gunicorn.conf.py"));
    // A config named elsewhere, or an empty one, replaces it.
    std::string toml = d.write("rotor.toml", "workers = 2\n");
    CHECK(load({"-c", toml}, {}, d.dir()).config.workers == 2);
    CHECK(load({"-c", ""}, {}, d.dir()).config.workers == 1);
    CHECK(load({}, {{"ROTOR_CONFIG", toml}}, d.dir()).config.workers == 2);
  }

  TEST_CASE("a relative config path is read from the starting directory (a HUP after --chdir)") {
    TempDir d;
    d.write("rotor.toml", "workers = 3\n");
    d.write("g.py", "workers = 4\n");
    CHECK(load({"-c", "rotor.toml"}, {}, d.dir()).config.workers == 3);
    CHECK(load({"-c", "g.py"}, {}, d.dir()).config.workers == 4);
  }

  TEST_CASE("GUNICORN_CMD_ARGS: above the config file, below ROTOR_* and the command line") {
    TempDir d;
    std::string file = d.write("g.py", "workers = 2\nmax_requests = 50\ntimeout = 7\n");
    Environment env = {{"GUNICORN_CMD_ARGS", "--workers=3 --max-requests 60 -c " + file}};
    LoadResult r = load({}, env);
    INFO(r.message);
    CHECK(r.config.workers == 3);  // over the file it names
    CHECK(r.config.max_requests == 60);
    CHECK(r.config.timeout == 7.0);  // from the file
    env["ROTOR_MAX_REQUESTS"] = "70";
    CHECK(load({}, env).config.max_requests == 70);
    CHECK(load({"-w", "9"}, env).config.workers == 9);
    LoadResult bad = load({}, {{"GUNICORN_CMD_ARGS", "--workers nine"}});
    CHECK(bad.action == Action::kError);
    CHECK(contains(bad.message, "GUNICORN_CMD_ARGS: --workers: expected an integer"));
    CHECK(contains(load({}, {{"GUNICORN_CMD_ARGS", "--threads 4"}}).warnings.at(0),
                   "GUNICORN_CMD_ARGS: --threads is a gunicorn option rotor ignores"));
  }

  TEST_CASE("GUNICORN_CMD_ARGS is split as a shell would, without expansion") {
    CHECK(words_of("") == std::vector<std::string>{});
    CHECK(words_of("  -w 2\t--bind=0.0.0.0:80 ") ==
          std::vector<std::string>{"-w", "2", "--bind=0.0.0.0:80"});
    CHECK(words_of(R"(-e 'A=x y' -e "B=\"q\" $HOME" -e C=a\ b)") ==
          std::vector<std::string>{"-e", "A=x y", "-e", "B=\"q\" $HOME", "-e", "C=a b"});
    CHECK(words_of(R"('' x"y"'z')") == std::vector<std::string>{"", "xyz"});
    std::vector<std::string> words;
    CHECK(split_command_line("-e 'A=1", words) == "unterminated ' quote");
    CHECK(split_command_line("-e \"A=1", words) == "unterminated \" quote");
  }
}
