// Loading the Python plugin chosen for the app's Python (conf::Config::python_plugin) into the
// template or a worker: never the master.
#pragma once

#include <memory>
#include <string>

#include "conf/config.hpp"
#include "workers/worker_class.hpp"

namespace rotor::worker {

// The asgi worker class from the plugin at `config.python_plugin`, loaded with RTLD_GLOBAL so
// that the app's C extension modules find libpython's symbols. When the file cannot be loaded
// or is no plugin of this rotor: event=boot-failed is logged and the class returned fails its
// preload and boot with kExitBootFailed.
std::unique_ptr<WorkerClass> load_python_worker(const conf::Config& config);

}  // namespace rotor::worker
