#include "workers/worker_class.hpp"

#include "workers/hello/hello.hpp"

namespace rotor::worker {

std::unique_ptr<WorkerClass> make_worker_class(const conf::Config&) {
  return hello::make_hello_worker();
}

}  // namespace rotor::worker
