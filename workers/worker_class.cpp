#include "workers/worker_class.hpp"

#include "workers/asgi/asgi_worker.hpp"
#include "workers/hello/hello.hpp"

namespace rotor::worker {

std::unique_ptr<WorkerClass> make_worker_class(const conf::Config& config) {
  if (config.worker_class == "asgi") return asgi::make_asgi_worker(config);
  return hello::make_hello_worker();
}

bool preloads(const conf::Config& config) {
  return config.worker_class == "asgi";
}

}  // namespace rotor::worker
