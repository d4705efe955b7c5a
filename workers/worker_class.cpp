#include "workers/worker_class.hpp"

#include "workers/hello/hello.hpp"
#include "workers/python_plugin.hpp"

namespace rotor::worker {

std::unique_ptr<WorkerClass> make_worker_class(const conf::Config& config) {
  if (config.worker_class == "asgi") return load_python_worker(config);
  return hello::make_hello_worker();
}

bool preloads(const conf::Config& config) {
  return config.worker_class == "asgi";
}

}  // namespace rotor::worker
