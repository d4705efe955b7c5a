// Worker class `asgi`: embedded CPython serving an ASGI 3 (or 2) application. The asyncio
// loop runs in the worker's main thread and drives the libuv HTTP engine (LoopDriver); each
// request becomes one asyncio Task running the app with a bridge Exchange's receive/send.
#pragma once

#include <memory>

#include "conf/config.hpp"
#include "workers/worker_class.hpp"

namespace rotor::asgi {

std::unique_ptr<worker::WorkerClass> make_asgi_worker(const conf::Config& config);

}  // namespace rotor::asgi
