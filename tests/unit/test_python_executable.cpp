// conf/python_executable: which Python rotor runs when nothing names one.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "conf/python_executable.hpp"
#include "temp_dir.hpp"

using rotor::conf::python_executable;
using rotor::conf::python_source;
using rotor::conf::venv_python_in;
using rotor::test::TempDir;

namespace fs = std::filesystem;

namespace {

// VENV/bin/python (executable or not) and, when `cfg`, VENV/pyvenv.cfg; returns VENV/bin.
std::string make_bin(const TempDir& venv, bool cfg, fs::perms mode = fs::perms::owner_all) {
  fs::create_directories(venv.path / "bin");
  std::string python = venv.write("bin/python", "#!/bin/sh\n");
  fs::permissions(python, mode);
  if (cfg) venv.write("pyvenv.cfg", "version = 3.11.2\n");
  return (venv.path / "bin").string();
}

}  // namespace

TEST_SUITE("python executable") {
  TEST_CASE("the bin directory of a virtualenv gives its python") {
    TempDir venv;
    std::string bin = make_bin(venv, true);
    CHECK(venv_python_in(bin) == bin + "/python");
  }

  TEST_CASE("a bin directory without pyvenv.cfg above it is no virtualenv") {
    TempDir venv;
    CHECK(venv_python_in(make_bin(venv, false)) == "");
    CHECK(venv_python_in("/usr/bin") == "");
  }

  TEST_CASE("a virtualenv whose python cannot be run gives none") {
    TempDir venv;
    CHECK(venv_python_in(make_bin(venv, true, fs::perms::owner_read)) == "");
  }

  TEST_CASE("--python and VIRTUAL_ENV win, and say so") {
    CHECK(python_executable("/opt/py/bin/python3", "/srv/venv") == "/opt/py/bin/python3");
    CHECK(python_source("/opt/py/bin/python3", "/srv/venv") == "--python");
    CHECK(python_executable("", "/srv/venv") == "/srv/venv/bin/python");
    CHECK(python_source("", "/srv/venv") == "VIRTUAL_ENV");
    CHECK(python_source("", nullptr) == "the virtualenv rotor is in");
  }

  TEST_CASE("outside a virtualenv rotor runs a python of no virtualenv") {
    // build/rotor_unit is in no virtualenv, so the python rotor was built against.
    std::string python = python_executable("", nullptr);
    CHECK(python == python_executable("", ""));
    CHECK(venv_python_in(fs::path(python).parent_path().string()) == "");
  }
}
