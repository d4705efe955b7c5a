#include "workers/hello/hello.hpp"

#include "workers/http/connection.hpp"

namespace rotor::hello {

void HelloHandler::on_request(http::Connection& conn, const http::Request&) {
  conn.respond(200, "text/plain", "Hello, world!");
}

}  // namespace rotor::hello
