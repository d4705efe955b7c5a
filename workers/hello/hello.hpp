// Worker class `hello`: no Python, every request gets 200 "Hello, world!". The reference for
// the engine's speed, and what the supervision tests run.
#pragma once

#include <memory>

#include "workers/worker_class.hpp"

namespace rotor::hello {

std::unique_ptr<worker::WorkerClass> make_hello_worker();

}  // namespace rotor::hello
