// The plugin's one entry point (workers/python_plugin_abi.hpp): the binary finds it by name.
#include <Python.h>

#include "workers/asgi/asgi_worker.hpp"
#include "workers/python_plugin_abi.hpp"

namespace {

rotor::worker::WorkerClass* make_worker(const rotor::conf::Config& config) {
  return rotor::asgi::make_asgi_worker(config).release();
}

const rotor::worker::PythonPlugin kPlugin = {
    rotor::worker::kPythonPluginAbi,
    ROTOR_VERSION,
    sizeof(rotor::conf::Config),
    PY_MAJOR_VERSION,
    PY_MINOR_VERSION,
    PY_VERSION,
    make_worker,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const rotor::worker::PythonPlugin*
rotor_python_plugin() {
  return &kPlugin;
}
