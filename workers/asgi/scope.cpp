#include "workers/asgi/scope.hpp"

#include "workers/asgi/py_ref.hpp"

#include <functional>
#include <iterator>
#include <string>

#include "workers/http/connection.hpp"
#include "workers/http/forwarded.hpp"
#include "workers/http/request.hpp"

namespace rotor::asgi {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

PyObject* endpoint_tuple(const http::Endpoint& e) {
  if (e.host.empty()) Py_RETURN_NONE;
  if (e.port < 0) return Py_BuildValue("(sO)", e.host.c_str(), Py_None);  // unix socket path
  return Py_BuildValue("(si)", e.host.c_str(), e.port);
}

}  // namespace

std::string percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += in[i];
  }
  return out;
}

PyObject* ScopeBuilder::key(const char* name) {
  return PyUnicode_InternFromString(name);
}

namespace {
constexpr std::string_view kMethods[] = {"GET",    "POST",  "HEAD",   "PUT",
                                         "DELETE", "PATCH", "OPTIONS"};
}  // namespace

bool ScopeBuilder::init(const conf::Config& config) {
  k_type_ = key("type");
  k_asgi_ = key("asgi");
  k_http_version_ = key("http_version");
  k_method_ = key("method");
  k_scheme_ = key("scheme");
  k_path_ = key("path");
  k_raw_path_ = key("raw_path");
  k_query_string_ = key("query_string");
  k_root_path_ = key("root_path");
  k_headers_ = key("headers");
  k_client_ = key("client");
  k_server_ = key("server");
  k_state_ = key("state");
  v_http_ = key("http");
  v_asgi_ = Py_BuildValue("{ssss}", "version", "3.0", "spec_version", "2.3");
  v_http10_ = key("1.0");
  v_http11_ = key("1.1");
  v_https_ = key("https");
  proxy_headers_ = config.proxy_headers &&
                   conf::AddressList::parse(config.forwarded_allow_ips, &trusted_proxies_, nullptr);
  v_root_path_ = PyUnicode_FromString(config.root_path.c_str());
  for (size_t i = 0; i < std::size(kMethods); ++i) {
    methods_[i] = PyUnicode_FromStringAndSize(kMethods[i].data(),
                                              static_cast<Py_ssize_t>(kMethods[i].size()));
    if (!methods_[i]) return false;
  }
  return v_asgi_ && v_root_path_ && v_https_;
}

ScopeBuilder::~ScopeBuilder() {
  if (!k_type_ || !Py_IsInitialized()) return;
  for (PyObject* o : {k_type_,   k_asgi_,     k_http_version_, k_method_,    k_scheme_,
                      k_path_,   k_raw_path_, k_query_string_, k_root_path_, k_headers_,
                      k_client_, k_server_,   k_state_,        v_http_,      v_asgi_,
                      v_http10_, v_http11_,   v_https_,        v_root_path_, template_}) {
    Py_XDECREF(o);
  }
  for (PyObject* o : methods_) Py_XDECREF(o);
  for (CachedEndpoint& c : endpoints_) Py_XDECREF(c.tuple);
}

PyObject* ScopeBuilder::endpoint(const http::Endpoint& e) {
  if (e.host.empty()) Py_RETURN_NONE;
  size_t h = std::hash<std::string_view>{}(e.host) ^ static_cast<size_t>(e.port) * 0x9e3779b9u;
  CachedEndpoint& c = endpoints_[h % std::size(endpoints_)];
  if (c.tuple && c.port == e.port && c.host == e.host) return Py_NewRef(c.tuple);
  PyObject* t = endpoint_tuple(e);
  if (!t) return nullptr;
  Py_XSETREF(c.tuple, Py_NewRef(t));
  c.host = e.host;
  c.port = e.port;
  return t;
}

PyObject* ScopeBuilder::build(http::Connection& conn, const http::Request& req, PyObject* state) {
  // An absolute-form target's empty path is "/" (RFC 9112 section 3.2.2), also before a query
  // ("http://host?q=1").
  std::string_view raw_path = req.path();
  if (raw_path.empty()) raw_path = "/";
  std::string_view query = req.query();
  std::string decoded = percent_decode(raw_path);

  if (!template_ || template_state_ != (state != nullptr)) {
    // Keys in the order the scope always had; None where each request puts its own value.
    Py_CLEAR(template_);
    template_ =
        Py_BuildValue("{OOOOOOOOOOOOOOOOOOOOOOOO}", k_type_, v_http_, k_asgi_, v_asgi_,
                      k_http_version_, v_http11_, k_method_, Py_None, k_scheme_, v_http_, k_path_,
                      Py_None, k_raw_path_, Py_None, k_query_string_, Py_None, k_root_path_,
                      v_root_path_, k_headers_, Py_None, k_client_, Py_None, k_server_, Py_None);
    if (!template_ || (state && PyDict_SetItem(template_, k_state_, Py_None) != 0)) return nullptr;
    template_state_ = state != nullptr;
  }

  PyRef headers = PyRef::steal(PyList_New(static_cast<Py_ssize_t>(req.fields.size())));
  if (!headers) return nullptr;
  std::string forwarded_for;  // every X-Forwarded-For value, joined by commas
  bool has_forwarded_for = false;
  std::string_view forwarded_proto;
  for (size_t i = 0; i < req.fields.size(); ++i) {
    const auto& f = req.fields[i];
    std::string_view name = req.name(f);
    std::string_view value = req.value(f);
    PyRef pair = PyRef::steal(PyTuple_New(2));
    PyRef n =
        PyRef::steal(PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(name.size())));
    PyRef v = PyRef::steal(
        PyBytes_FromStringAndSize(value.data(), static_cast<Py_ssize_t>(value.size())));
    if (!pair || !n || !v) return nullptr;
    char* lower = PyBytes_AS_STRING(n.get());
    for (size_t j = 0; j < name.size(); ++j) lower[j] = http::ascii_lower(name[j]);
    PyTuple_SET_ITEM(pair.get(), 0, n.release());
    PyTuple_SET_ITEM(pair.get(), 1, v.release());
    PyList_SET_ITEM(headers.get(), static_cast<Py_ssize_t>(i), pair.release());
    if (proxy_headers_) {
      std::string_view lowered(lower, name.size());
      if (lowered == "x-forwarded-for") {
        if (has_forwarded_for) forwarded_for += ',';
        forwarded_for += value;
        has_forwarded_for = true;
      } else if (lowered == "x-forwarded-proto") {
        forwarded_proto = value;
      }
    }
  }

  // A trusted proxy's word replaces the peer as the client, and the scheme.
  PyRef forwarded_client;
  std::string_view scheme;
  if ((has_forwarded_for || !forwarded_proto.empty()) &&
      trusted_proxies_.contains(conn.peer_endpoint().host)) {
    std::string host = http::forwarded_client(forwarded_for, trusted_proxies_);
    if (!host.empty()) {
      PyObject* h =
          PyUnicode_DecodeLatin1(host.data(), static_cast<Py_ssize_t>(host.size()), nullptr);
      forwarded_client = PyRef::steal(h ? Py_BuildValue("(Ni)", h, 0) : nullptr);
      if (!forwarded_client) return nullptr;
    }
    scheme = http::forwarded_scheme(forwarded_proto);
  }

  std::string_view method = req.method_name();
  PyRef method_obj;
  for (size_t i = 0; i < std::size(kMethods); ++i) {
    if (method == kMethods[i]) {
      method_obj = PyRef::borrow(methods_[i]);
      break;
    }
  }
  if (!method_obj) {
    method_obj = PyRef::steal(
        PyUnicode_FromStringAndSize(method.data(), static_cast<Py_ssize_t>(method.size())));
  }
  PyRef vals[] = {
      std::move(method_obj),
      PyRef::steal(
          PyUnicode_DecodeUTF8(decoded.data(), static_cast<Py_ssize_t>(decoded.size()), "replace")),
      PyRef::steal(
          PyBytes_FromStringAndSize(raw_path.data(), static_cast<Py_ssize_t>(raw_path.size()))),
      PyRef::steal(PyBytes_FromStringAndSize(query.data(), static_cast<Py_ssize_t>(query.size()))),
      forwarded_client ? std::move(forwarded_client) : PyRef::steal(endpoint(conn.peer_endpoint())),
      PyRef::steal(endpoint(conn.local_endpoint())),
      PyRef::steal(state ? PyDict_Copy(state) : nullptr),
  };
  bool ok = vals[0] && vals[1] && vals[2] && vals[3] && vals[4] && vals[5] && (!state || vals[6]);
  PyRef scope = ok ? PyRef::steal(PyDict_Copy(template_)) : PyRef();
  if (!scope) return nullptr;
  PyObject* d = scope.get();
  ok = (req.http_minor != 0 || PyDict_SetItem(d, k_http_version_, v_http10_) == 0) &&
       PyDict_SetItem(d, k_method_, vals[0].get()) == 0 &&
       PyDict_SetItem(d, k_path_, vals[1].get()) == 0 &&
       PyDict_SetItem(d, k_raw_path_, vals[2].get()) == 0 &&
       PyDict_SetItem(d, k_query_string_, vals[3].get()) == 0 &&
       PyDict_SetItem(d, k_headers_, headers.get()) == 0 &&
       PyDict_SetItem(d, k_client_, vals[4].get()) == 0 &&
       PyDict_SetItem(d, k_server_, vals[5].get()) == 0 &&
       (scheme != "https" || PyDict_SetItem(d, k_scheme_, v_https_) == 0) &&
       (!state || PyDict_SetItem(d, k_state_, vals[6].get()) == 0);
  return ok ? scope.release() : nullptr;
}

PyObject* ScopeBuilder::build_websocket(http::Connection& conn, const http::Request& req,
                                        PyObject* state) {
  PyRef scope = PyRef::steal(build(conn, req, state));
  if (!scope) return nullptr;
  PyObject* scheme = PyDict_GetItem(scope.get(), k_scheme_);  // borrowed
  bool secure = scheme && PyUnicode_CompareWithASCIIString(scheme, "https") == 0;
  PyRef protocols = PyRef::steal(PyList_New(0));
  for (const auto& f : req.fields) {
    if (!protocols || !http::iequals(req.name(f), "sec-websocket-protocol")) continue;
    std::string_view value = req.value(f);
    for (std::string_view item; http::next_list_item(&value, &item);) {
      PyRef s = PyRef::steal(
          PyUnicode_DecodeLatin1(item.data(), static_cast<Py_ssize_t>(item.size()), nullptr));
      if (!s || PyList_Append(protocols.get(), s.get()) != 0) protocols.reset();
      if (!protocols) break;
    }
  }
  PyRef type = PyRef::steal(PyUnicode_InternFromString("websocket"));
  PyRef ws_scheme = PyRef::steal(PyUnicode_InternFromString(secure ? "wss" : "ws"));
  bool ok = protocols && type && ws_scheme &&
            PyDict_SetItem(scope.get(), k_type_, type.get()) == 0 &&
            PyDict_SetItem(scope.get(), k_scheme_, ws_scheme.get()) == 0 &&
            PyDict_DelItem(scope.get(), k_method_) == 0 &&
            PyDict_SetItemString(scope.get(), "subprotocols", protocols.get()) == 0;
  return ok ? scope.release() : nullptr;
}

}  // namespace rotor::asgi
