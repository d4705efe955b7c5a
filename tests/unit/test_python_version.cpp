// conf/python_version and conf/app_python: which CPython an app's environment was made for, and
// the refusal of one rotor does not embed, before anything forks.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "conf/app_python.hpp"
#include "conf/load.hpp"
#include "conf/python_plugins.hpp"
#include "conf/python_version.hpp"
#include "temp_dir.hpp"

using rotor::conf::Action;
using rotor::conf::default_python_version;
using rotor::conf::find_plugin;
using rotor::conf::load;
using rotor::conf::parse_python_version;
using rotor::conf::plugin_dirs;
using rotor::conf::plugin_versions;
using rotor::conf::PythonVersion;
using rotor::conf::pyvenv_cfg_version;
using rotor::conf::version_refusal;
using rotor::test::TempDir;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The version string one minor above (or equal to) the one rotor embeds.
std::string embedded_plus(int minors) {
  PythonVersion v = default_python_version();
  return std::to_string(v.major) + "." + std::to_string(v.minor + minors) + ".1";
}

// A virtualenv directory with `cfg` as its pyvenv.cfg (none when empty).
std::string make_venv(const TempDir& dir, const std::string& cfg) {
  if (!cfg.empty()) dir.write("pyvenv.cfg", cfg);
  return dir.dir();
}

}  // namespace

TEST_SUITE("python version") {
  TEST_CASE("a version's major and minor are read from the forms Python writes") {
    auto v = parse_python_version("3.12.1");
    REQUIRE(v);
    CHECK(v->major == 3);
    CHECK(v->minor == 12);
    CHECK(v->text == "3.12.1");
    CHECK(parse_python_version("3.13.0.final.0")->minor == 13);
    CHECK(parse_python_version(" 3.9 \r")->minor == 9);
    CHECK(parse_python_version("3.13.0rc1\n")->text == "3.13.0rc1");
    CHECK(parse_python_version("2.7.18")->major == 2);
  }

  TEST_CASE("what is no version is refused") {
    for (const char* text : {"", "3", "3.", ".12", "three.twelve", "3.x", "3.12 beta", "99999.1",
                             "3.12;rm", "\x01\x02"})
      CHECK_MESSAGE(!parse_python_version(text), text);
  }

  TEST_CASE("pyvenv.cfg as python -m venv writes it") {
    auto v = pyvenv_cfg_version(
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n"
        "executable = /usr/bin/python3.12\ncommand = /usr/bin/python3.12 -m venv /v\n");
    REQUIRE(v);
    CHECK(v->text == "3.12.1");
  }

  TEST_CASE("pyvenv.cfg as virtualenv and uv write it: version_info") {
    CHECK(pyvenv_cfg_version("home = /x\nimplementation = CPython\n"
                             "version_info = 3.10.13.final.0\nvirtualenv = 20.25.0\n")
              ->minor == 10);
    CHECK(pyvenv_cfg_version("home = /x\r\nVersion_Info=3.13.0\r\n")->minor == 13);
  }

  TEST_CASE("version wins over version_info, whichever comes first") {
    CHECK(pyvenv_cfg_version("version_info = 3.10.1\nversion = 3.12.1\n")->minor == 12);
  }

  TEST_CASE("a pyvenv.cfg without a version, or with garbage, tells none") {
    CHECK(!pyvenv_cfg_version(""));
    CHECK(!pyvenv_cfg_version("home = /usr/bin\ninclude-system-site-packages = false\n"));
    CHECK(!pyvenv_cfg_version("version = banana\n"));
    CHECK(!pyvenv_cfg_version("version\n3.12.1\n"));
    CHECK(
        !pyvenv_cfg_version(std::string("\x7f"
                                        "ELF\0\0version",
                                        11)));
  }

  TEST_CASE("the refusal names the app's Python, its version, the plugins there and the build") {
    std::string line =
        version_refusal("/v/bin/python (VIRTUAL_ENV)", "per /v/pyvenv.cfg", {3, 12, "3.12.1"},
                        {{3, 10, "3.10"}, {3, 11, "3.11"}}, {"/a", "/b"}, "/usr/bin/python3;/p");
    CHECK(contains(line, "/v/bin/python (VIRTUAL_ENV) is CPython 3.12.1 (per /v/pyvenv.cfg)"));
    CHECK(contains(line, "no plugin for CPython 3.12 (it has 3.10, 3.11, looked in /a:/b)"));
    CHECK(contains(line, "cmake -DROTOR_PYTHONS=\"/usr/bin/python3;/p\""));
    CHECK(contains(line, "run the app in a CPython 3.10, 3.11 interpreter"));
    CHECK(line.find('\n') == std::string::npos);
    CHECK(contains(version_refusal("p", "s", {3, 12, "3.12"}, {}, {"/a"}, "p"), "(it has none,"));
  }
}

TEST_SUITE("python plugins") {
  TEST_CASE("searched in $ROTOR_PLUGIN_DIR, ../lib/rotor, beside the binary, the install prefix") {
    CHECK(
        plugin_dirs("/env", "/opt/r/bin/rotor", "/usr/local/lib/rotor") ==
        std::vector<std::string>{"/env", "/opt/r/lib/rotor", "/opt/r/bin", "/usr/local/lib/rotor"});
    CHECK(plugin_dirs("", "/usr/lib/rotor/../../bin/rotor", "/usr/lib/rotor").size() == 3);
    CHECK(plugin_dirs("", "/rotor", "/i") == std::vector<std::string>{"/lib/rotor", "/", "/i"});
    CHECK(plugin_dirs("", "", "/i") == std::vector<std::string>{"/i"});
  }

  TEST_CASE("the first directory that has the version's plugin wins; the others are listed") {
    TempDir a, b;
    a.write("rotor-python3.12.so", "");
    b.write("rotor-python3.12.so", "");
    b.write("rotor-python3.9.so", "");
    b.write("rotor-python3.so", "");
    b.write("rotor-python3.10.so.bak", "");
    b.write("rotor-python3.10.1.so", "");
    CHECK(find_plugin({a.dir(), b.dir()}, 3, 12) == a.dir() + "/rotor-python3.12.so");
    CHECK(find_plugin({a.dir(), b.dir()}, 3, 9) == b.dir() + "/rotor-python3.9.so");
    CHECK(find_plugin({a.dir(), b.dir()}, 3, 11) == "");
    auto found = plugin_versions({a.dir(), "/nonexistent", b.dir()});
    REQUIRE(found.size() == 2);
    CHECK(found[0].text == "3.9");
    CHECK(found[1].text == "3.12");
  }
}

TEST_SUITE("app python at load") {
  const std::vector<std::string> kApp = {"app:app"};

  // A plugin directory holding (an empty stand-in for) the default version's plugin only.
  struct Plugins {
    TempDir dir;
    Plugins() {
      PythonVersion v = default_python_version();
      dir.write(rotor::conf::plugin_file_name(v.major, v.minor), "");
    }
  };

  TEST_CASE("a virtualenv of another version is refused with exit 4, also by --check-config") {
    TempDir venv;
    make_venv(venv, "home = /x\nversion = " + embedded_plus(1) + "\n");
    for (auto args : {kApp, std::vector<std::string>{"--check-config", "app:app"}}) {
      auto r = load(args, {{"VIRTUAL_ENV", venv.dir()}});
      CHECK(r.action == Action::kError);
      CHECK(r.exit_code == 4);
      CHECK(contains(r.message, "rotor: error: the app's Python " + venv.dir() +
                                    "/bin/python (VIRTUAL_ENV) is CPython " + embedded_plus(1)));
    }
  }

  TEST_CASE("a virtualenv of a version with a plugin is served by that plugin") {
    TempDir venv;
    Plugins plugins;
    make_venv(venv, "version = " + embedded_plus(0) + "\n");
    auto r = load(kApp, {{"VIRTUAL_ENV", venv.dir()}, {"ROTOR_PLUGIN_DIR", plugins.dir.dir()}});
    CHECK(r.action == Action::kRun);
    PythonVersion v = default_python_version();
    CHECK(r.config.python_plugin ==
          plugins.dir.dir() + "/" + rotor::conf::plugin_file_name(v.major, v.minor));
  }

  TEST_CASE("the hello worker and --print-config do not look at the app's Python") {
    TempDir venv;
    make_venv(venv, "version = " + embedded_plus(1) + "\n");
    CHECK(load({"-k", "hello"}, {{"VIRTUAL_ENV", venv.dir()}}).action == Action::kRun);
    CHECK(load({"--print-config", "app:app"}, {{"VIRTUAL_ENV", venv.dir()}}).action ==
          Action::kPrintConfig);
  }

  TEST_CASE("a pyvenv.cfg without a version is refused with exit 4") {
    TempDir venv;
    make_venv(venv, "home = /usr/bin\n");
    auto r = load(kApp, {{"VIRTUAL_ENV", venv.dir()}});
    CHECK(r.exit_code == 4);
    CHECK(contains(r.message, venv.dir() + "/pyvenv.cfg records no Python version"));
  }

  TEST_CASE("a VIRTUAL_ENV that is no virtualenv is refused with exit 4") {
    TempDir venv;
    auto r = load(kApp, {{"VIRTUAL_ENV", make_venv(venv, "")}});
    CHECK(r.exit_code == 4);
    CHECK(r.message == "rotor: error: VIRTUAL_ENV=" + venv.dir() +
                           " is not a virtualenv: it has neither pyvenv.cfg nor bin/python");
  }

  TEST_CASE("an interpreter without a pyvenv.cfg is asked its version") {
    TempDir dir;
    std::string fake = dir.write("python", "#!/bin/sh\necho " + embedded_plus(1) + "\n");
    std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
    auto r = load({"--python", fake, "app:app"}, {});
    CHECK(r.exit_code == 4);
    CHECK(contains(r.message, fake + " (--python) is CPython " + embedded_plus(1) +
                                  " (asked in a subprocess)"));
    dir.write("python", "#!/bin/sh\necho " + embedded_plus(0) + "\n");
    Plugins plugins;
    CHECK(load({"--python", fake, "app:app"}, {{"ROTOR_PLUGIN_DIR", plugins.dir.dir()}}).action ==
          Action::kRun);
    dir.write("python", "#!/bin/sh\nexit 3\n");
    CHECK(contains(load({"--python", fake, "app:app"}, {}).message,
                   "it did not tell its version (exit 3)"));
  }
}
