#include "workers/python_plugin.hpp"

#include <dlfcn.h>

#include <cstdlib>

#include <spdlog/spdlog.h>

#include "conf/python_plugins.hpp"
#include "log/log.hpp"
#include "workers/python_plugin_abi.hpp"

namespace rotor::worker {

namespace {

// Stands in for a plugin that could not be loaded: the process exits as a failed boot.
class Unloaded : public WorkerClass {
 public:
  int preload() override { return kExitBootFailed; }
  int boot(uv_loop_t*) override { return kExitBootFailed; }
  http::Handler& handler() override { std::abort(); }  // never: boot failed
  void run(uv_loop_t*) override {}
  void stop() override {}
};

std::string base_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "" when `p`, loaded from `path`, is a plugin this binary can use; else what is wrong with it.
std::string mismatch(const PythonPlugin& p, const std::string& path) {
  if (p.abi != kPythonPluginAbi)
    return "plugin ABI " + std::to_string(p.abi) + ", this rotor's is " +
           std::to_string(kPythonPluginAbi);
  if (std::string(p.rotor_version) != ROTOR_VERSION)
    return std::string("built for rotor ") + p.rotor_version + ", this is rotor " ROTOR_VERSION;
  // Same version, other sources (a plugin left from an older build): rebuild it with the binary.
  if (p.config_size != sizeof(conf::Config))
    return "built from other sources than this rotor (its configuration is " +
           std::to_string(p.config_size) + " bytes, this rotor's " +
           std::to_string(sizeof(conf::Config)) + "); rebuild the plugins with the binary";
  if (base_name(path) != conf::plugin_file_name(p.python_major, p.python_minor))
    return std::string("it embeds CPython ") + p.python_version + ", not the version its name says";
  return "";
}

// The plugin's worker class, or nullptr with `error` set.
std::unique_ptr<WorkerClass> load(const conf::Config& config, std::string* error) {
  const std::string& path = config.python_plugin;
  if (path.empty()) {
    *error = "no Python plugin was chosen for the app's Python";
    return nullptr;
  }
  // Global: the app's C extensions resolve libpython's symbols against the process.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) {
    const char* why = dlerror();
    *error = "cannot load the Python plugin " + path + ": " + (why ? why : "?");
    return nullptr;
  }
  auto entry = reinterpret_cast<PythonPluginEntry>(dlsym(handle, kPythonPluginEntry));
  const PythonPlugin* plugin = entry ? entry() : nullptr;
  std::string wrong =
      plugin ? mismatch(*plugin, path) : "it has no entry " + std::string(kPythonPluginEntry);
  if (!wrong.empty()) {
    *error = path + " is not a Python plugin of this rotor: " + wrong;
    return nullptr;
  }
  spdlog::info("event=python-plugin path={} python={}", log::quote(path), plugin->python_version);
  return std::unique_ptr<WorkerClass>(plugin->make_worker(config));
}

}  // namespace

std::unique_ptr<WorkerClass> load_python_worker(const conf::Config& config) {
  std::string error;
  std::unique_ptr<WorkerClass> worker = load(config, &error);
  if (worker) return worker;
  spdlog::error("event=boot-failed error={}", log::quote(error));
  return std::make_unique<Unloaded>();
}

}  // namespace rotor::worker
