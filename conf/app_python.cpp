#include "conf/app_python.hpp"

#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>

#include "conf/capture.hpp"
#include "conf/python_executable.hpp"
#include "conf/python_plugins.hpp"

namespace rotor::conf {

namespace {

constexpr int kAskTimeoutMs = 10000;
// -E -s -S: no PYTHON* variables, no site; Python 2 understands it too, so it gets the line.
constexpr const char* kAskVersion = "import sys; print('%d.%d.%d' % tuple(sys.version_info[:3]))";

std::string parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Where CPython itself looks for it: beside the executable, then one directory up.
std::optional<std::string> find_pyvenv_cfg(const std::string& executable) {
  std::string bin = parent(executable);
  for (const std::string& dir : {bin, parent(bin)}) {
    std::string cfg = (dir == "/" ? "" : dir) + "/pyvenv.cfg";
    if (access(cfg.c_str(), F_OK) == 0) return cfg;
  }
  return std::nullopt;
}

// The version a pyvenv.cfg records into `out`; "" or the problem.
std::string read_pyvenv_cfg(const std::string& path, std::optional<PythonVersion>& out) {
  std::ifstream in(path);
  if (!in.is_open()) return path + " cannot be read";
  std::stringstream text;
  text << in.rdbuf();
  out = pyvenv_cfg_version(text.str());
  if (!out) return path + " records no Python version (no line like version = 3.11.2)";
  return "";
}

// Asks the interpreter in a subprocess; "" or the problem.
std::string ask_version(const std::string& executable,
                        const std::map<std::string, std::string>& env,
                        std::optional<PythonVersion>& out) {
  Captured run = capture({executable, "-E", "-s", "-S", "-c", kAskVersion}, env, "", kAskTimeoutMs);
  if (!run.error.empty()) return "cannot run it to ask its version: " + run.error;
  if (run.exit_code == 0) out = parse_python_version(run.out);
  if (!out) return "it did not tell its version (exit " + std::to_string(run.exit_code) + ")";
  return "";
}

}  // namespace

PythonVersion default_python_version() {
  return {ROTOR_PYTHON_VERSION_MAJOR, ROTOR_PYTHON_VERSION_MINOR,
          std::to_string(ROTOR_PYTHON_VERSION_MAJOR) + "." +
              std::to_string(ROTOR_PYTHON_VERSION_MINOR)};
}

AppPython app_python(const std::string& python_option,
                     const std::map<std::string, std::string>& env) {
  auto venv = env.find("VIRTUAL_ENV");
  const char* venv_dir = venv == env.end() ? nullptr : venv->second.c_str();
  std::string executable = python_executable(python_option, venv_dir);
  std::string who = executable + " (" +
                    (executable == ROTOR_PYTHON_EXECUTABLE ? std::string("the build's default")
                                                           : python_source(python_option, venv_dir)) +
                    ")";
  std::optional<PythonVersion> version;
  std::string source, problem;
  if (executable == ROTOR_PYTHON_EXECUTABLE) {
    source = "known at build time";
    version = default_python_version();
  } else if (std::optional<std::string> cfg = find_pyvenv_cfg(executable)) {
    source = "per " + *cfg;
    problem = read_pyvenv_cfg(*cfg, version);
  } else if (access(executable.c_str(), X_OK) != 0) {
    if (!venv_dir || !python_option.empty()) {
      return {"the app's Python " + who + " cannot be run", ""};
    }
    return {"VIRTUAL_ENV=" + venv->second + " is not a virtualenv: it has neither pyvenv.cfg " +
                "nor bin/python",
            ""};
  } else {
    source = "asked in a subprocess";
    problem = ask_version(executable, env, version);
  }
  if (!problem.empty()) return {"the app's Python " + who + ": " + problem, ""};
  std::vector<std::string> dirs = plugin_dirs(env);
  std::string plugin = find_plugin(dirs, version->major, version->minor);
  if (!plugin.empty()) return {"", plugin};
  std::string build = executable == ROTOR_PYTHON_EXECUTABLE
                          ? executable
                          : std::string(ROTOR_PYTHON_EXECUTABLE) + ";" + executable;
  return {version_refusal(who, source, *version, plugin_versions(dirs), dirs, build), ""};
}

}  // namespace rotor::conf
