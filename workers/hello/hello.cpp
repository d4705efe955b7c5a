#include "workers/hello/hello.hpp"

#include "workers/http/connection.hpp"

namespace rotor::hello {

namespace {

class HelloWorker : public worker::WorkerClass, public http::Handler {
 public:
  int boot(uv_loop_t*) override { return worker::kExitOk; }
  http::Handler& handler() override { return *this; }
  void run(uv_loop_t* loop) override {
    loop_ = loop;
    uv_run(loop, UV_RUN_DEFAULT);
  }
  void stop() override { uv_stop(loop_); }

  void on_request(http::Connection& conn, const http::Request&) override {
    conn.respond(200, "text/plain", "Hello, world!");
  }

 private:
  uv_loop_t* loop_ = nullptr;
};

}  // namespace

std::unique_ptr<worker::WorkerClass> make_hello_worker() {
  return std::make_unique<HelloWorker>();
}

}  // namespace rotor::hello
