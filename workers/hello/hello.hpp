// Worker class `hello`: no Python, every request gets 200 "Hello, world!". The reference for
// the engine's speed, and what the supervision tests run.
#pragma once

#include "workers/http/server.hpp"

namespace rotor::hello {

class HelloHandler : public http::Handler {
 public:
  void on_request(http::Connection& conn, const http::Request& req) override;
};

}  // namespace rotor::hello
