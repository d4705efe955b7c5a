// Builds the ASGI HTTP scope of a request (spec 2.x): the dict an app receives first.
#pragma once

#include <string>

#include "conf/address_list.hpp"
#include "conf/config.hpp"

typedef struct _object PyObject;

namespace rotor::http {
class Connection;
struct Endpoint;
struct Request;
}  // namespace rotor::http

namespace rotor::asgi {

class ScopeBuilder {
 public:
  ~ScopeBuilder();
  bool init(const conf::Config& config);  // false with a Python error set
  // New reference, or nullptr with a Python error set. `state` (may be null) is copied in.
  PyObject* build(http::Connection& conn, const http::Request& req, PyObject* state);
  // The scope of a WebSocket opening handshake: type "websocket", scheme ws or wss, no method,
  // and the subprotocols the client offers.
  PyObject* build_websocket(http::Connection& conn, const http::Request& req, PyObject* state);

 private:
  PyObject* key(const char* name);

  // Interned keys and the values every request shares.
  PyObject *k_type_ = nullptr, *k_asgi_, *k_http_version_, *k_method_, *k_scheme_, *k_path_,
           *k_raw_path_, *k_query_string_, *k_root_path_, *k_headers_, *k_client_, *k_server_,
           *k_state_;
  PyObject *v_http_ = nullptr, *v_asgi_, *v_http10_, *v_http11_, *v_https_,
           *v_root_path_;  // v_http_: type and scheme
  // --proxy-headers: X-Forwarded-For/-Proto count when the peer is in --forwarded-allow-ips.
  bool proxy_headers_ = false;
  conf::AddressList trusted_proxies_;
  // Every key in its final order with the shared values: a request's scope starts as a copy
  // (a dict copy is a memcpy of the key table, and the per-request values then replace values
  // of existing keys, with no resizing).
  PyObject* template_ = nullptr;
  bool template_state_ = false;  // whether template_ has the "state" key
  PyObject* methods_[8] = {};    // the common methods' names, made once
  // client and server tuples are the same for every request of a connection: a small cache
  // keyed by the endpoint's value (so a reused slot or Connection address is never wrong).
  struct CachedEndpoint {
    std::string host;
    int port = -1;
    PyObject* tuple = nullptr;
  };
  CachedEndpoint endpoints_[64];
  PyObject* endpoint(const http::Endpoint& e);
};

// "%41/b%2Fc" -> "A/b/c" bytes (not UTF-8 decoded). Exposed for tests.
std::string percent_decode(std::string_view in);

}  // namespace rotor::asgi
