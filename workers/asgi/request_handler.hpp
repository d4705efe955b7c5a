// The asgi worker's HTTP handler: each request a connection parses becomes an exchange the app
// runs with (an Exchange; for a WebSocket session a bridge.WebSocket), and what the app sends
// goes back to that connection. The bridge knows a request by its id (the connection's
// rid); a request may be over, and forgotten here, by the time the app speaks again.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "conf/config.hpp"
#include "workers/asgi/app_calls.hpp"
#include "workers/asgi/app_objects.hpp"
#include "workers/asgi/eager_start.hpp"
#include "workers/asgi/exchange.hpp"
#include "workers/asgi/leak_report.hpp"
#include "workers/asgi/loop_driver.hpp"
#include "workers/asgi/py_ref.hpp"
#include "workers/asgi/scope.hpp"
#include "workers/http/connection.hpp"
#include "workers/http/server.hpp"

namespace rotor::asgi {

class RequestHandler : public http::Handler, public Engine {
 public:
  // `stop_loop` stops the worker's loop (the end of a drain).
  RequestHandler(const conf::Config& cfg, AppObjects& py, std::function<void()> stop_loop)
      : cfg_(cfg), py_(py), calls_(std::move(stop_loop)), eager_(py, calls_) {}

  // At boot, once the loop exists. False with a Python error set.
  bool init_eager_start() { return eager_.init(); }
  bool init_scope() { return scope_.init(cfg_); }
  // From run(): what runs libuv inside the asyncio loop, kicked after libuv work from Python.
  void set_driver(LoopDriver* driver) { driver_ = driver; }
  // --leak-report: counts responses towards the tracer's warm-up.
  void set_leak_report(LeakReport* leak) { leak_ = leak; }
  AppCalls& calls() { return calls_; }

  // http::Handler
  // Bodies stream into receive(): reading pauses while the app leaves kBodyHighWater bytes
  // unconsumed.
  bool streams_body() const override { return true; }
  void on_body(http::Connection& conn, std::string_view data) override;
  void on_body_end(http::Connection& conn) override;
  void on_request(http::Connection& conn, const http::Request& req) override;
  void on_abort(http::Connection& conn) override;
  void on_peer_closed(http::Connection& conn) override;
  void on_peer_done(http::Connection& conn) override;
  void on_drained(http::Connection& conn) override;
  // WebSocket sessions (websocket_sessions.cpp): the app's half is bridge.WebSocket, driven by
  // the calls below.
  bool accepts_websockets() const override { return true; }
  void on_ws_message(http::Connection& conn, bool text, std::string_view data) override;
  void on_ws_closed(http::Connection& conn, uint16_t code, std::string_view reason) override;

  // Engine (the exchanges' calls)
  SendOutcome send_part(uint64_t rid, int status, PyObject* headers, std::string_view body,
                        bool more) override;
  void resume_body(uint64_t rid) override;

  // The _rotor module's functions (rotor_module.cpp), by request id.
  PyObject* py_send(PyObject* args);
  PyObject* py_resume_body(PyObject* args);
  PyObject* py_want_body(PyObject* args);
  PyObject* py_app_failed(PyObject* args);
  PyObject* py_client_left(PyObject* args);
  PyObject* py_call_ended(PyObject* unused);
  PyObject* py_ws_accept(PyObject* args);
  PyObject* py_ws_send(PyObject* args);
  PyObject* py_ws_close(PyObject* args);
  PyObject* py_ws_deny(PyObject* args);
  PyObject* py_ws_took(PyObject* args);

 private:
  struct Live {
    http::Connection* conn = nullptr;
    PyRef exchange;     // the Exchange, or the bridge.WebSocket of a session
    size_t unread = 0;  // body (message) bytes fed to it and not yet received by the app
    bool websocket = false;
  };
  Live* find(uint64_t rid) {
    auto it = live_.find(rid);
    return it == live_.end() ? nullptr : &it->second;
  }
  void forget(uint64_t rid);
  // After libuv work done from Python: the driver runs the loop soon (once run() started it).
  void kick() {
    if (driver_) driver_->kick();
  }
  // bridge.run(app, scope, ex, timeout): new reference, or null with a Python error set.
  PyRef run_coroutine(PyObject* scope, PyObject* ex);
  // loop.create_task(coro) in a fresh copy of the base context: null with a Python error set.
  PyRef spawn(PyObject* coro);
  void after_response();
  void start_websocket(http::Connection& conn, const http::Request& req);
  // Tells a session's bridge.WebSocket that it is over (on_ws_closed, on_abort).
  void websocket_gone(Live& l, uint16_t code, std::string_view reason);

  const conf::Config& cfg_;
  AppObjects& py_;
  AppCalls calls_;
  EagerStart eager_;
  ScopeBuilder scope_;
  std::unordered_map<uint64_t, Live> live_;
  uint64_t next_rid_ = 1;
  int64_t answered_ = 0;  // for --gc-collect-every
  LoopDriver* driver_ = nullptr;
  LeakReport* leak_ = nullptr;
};

// Reading stops while the app leaves this many body (message) bytes unreceived.
constexpr size_t kBodyHighWater = 256 * 1024;

// The app's headers ([bytes, bytes] pairs) as views, valid while `headers` lives. False with
// a TypeError set when they are not.
bool header_views(PyObject* headers, http::HeaderList* out);

}  // namespace rotor::asgi
