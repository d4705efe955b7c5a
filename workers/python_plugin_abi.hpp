// What crosses between the rotor binary and a Python plugin (rotor-python3.X.so): the one entry
// the binary looks up, and what it checks before it trusts the plugin's objects. The plugin is
// C++ built from the same sources and calls back into the binary's exported symbols, so both
// must come from the same rotor version and agree on the ABI number.
#pragma once

#include <cstddef>
#include <cstdint>

#include "conf/config.hpp"
#include "workers/worker_class.hpp"

namespace rotor::worker {

// Bumped whenever WorkerClass, this table, or what the plugin uses of the binary changes shape.
constexpr uint32_t kPythonPluginAbi = 1;
constexpr const char* kPythonPluginEntry = "rotor_python_plugin";

struct PythonPlugin {
  uint32_t abi;
  const char* rotor_version;  // ROTOR_VERSION it was built with
  size_t config_size;         // sizeof(conf::Config) on its side: a cheap guard on the layout
  int python_major;           // of the headers and libpython it was built against
  int python_minor;
  const char* python_version;  // PY_VERSION, "3.12.1"
  // The asgi worker class for `config` (owned by the caller; the plugin is never unloaded).
  WorkerClass* (*make_worker)(const conf::Config& config);
};

using PythonPluginEntry = const PythonPlugin* (*)();

}  // namespace rotor::worker
