// The PROXY protocol on a connection (--proxy-protocol): before its first request, an allowed
// peer (the load balancer) sends a header naming the client and the address it connected to,
// which become the connection's endpoints; a header from any other peer is refused, since it
// would let a client choose the address the app and the access log see.
#include <spdlog/spdlog.h>

#include <utility>

#include "workers/http/connection.hpp"
#include "workers/http/server.hpp"

namespace rotor::http {

namespace {

// Refusals are logged at most once a second by each worker, with the count of those that were
// not: a hostile client cannot flood the log.
constexpr uint64_t kRefusalLogEveryMs = 1000;
struct RefusalLog {
  bool logged = false;
  uint64_t last_ms = 0;
  uint64_t suppressed = 0;
} g_refusals;

}  // namespace

bool Connection::can_hand_off() const {
  // The worker that took the socket would wait for a header the balancer sent to us.
  return server_.handoff_fd() >= 0 && proxy_ == Proxy::kNone && !proxied_;
}

void Connection::start_proxy() {
  // A unix-socket peer is a local process, trusted as gunicorn and uvicorn trust one.
  bool allowed = h_.handle.type == UV_NAMED_PIPE ||
                 server_.limits().proxy_allow.contains(peer_endpoint().host);
  if (allowed) {
    proxy_ = Proxy::kExpected;
    proxy_parser_ = std::make_unique<ProxyHeaderParser>();
  } else {
    proxy_ = Proxy::kWatching;  // plain HTTP is served; a header is refused
  }
}

bool Connection::take_proxy_header(std::string_view* in, std::string* joined) {
  if (proxy_ == Proxy::kWatching) {
    std::string start = proxy_held_;
    start.append(in->substr(0, kProxySniffBytes));
    switch (sniff_proxy_header(start)) {
      case ProxySniff::kHeader:
        refuse_proxy("not allowed to send a PROXY header");
        return false;
      case ProxySniff::kUndecided:  // `start` holds all of `in`
        proxy_held_ = std::move(start);
        return false;
      case ProxySniff::kNotHeader:
        break;
    }
    proxy_ = Proxy::kNone;
    if (!proxy_held_.empty()) {
      *joined = std::exchange(proxy_held_, std::string());
      joined->append(*in);
      *in = *joined;
    }
    return true;
  }
  size_t used = 0;
  switch (proxy_parser_->feed(*in, &used)) {
    case ProxyHeaderParser::Result::kNeedMore:
      return false;
    case ProxyHeaderParser::Result::kError:
      refuse_proxy(proxy_parser_->error());
      return false;
    case ProxyHeaderParser::Result::kDone:
      break;
  }
  const ProxyAddresses& a = proxy_parser_->addresses();
  if (a.relayed) {
    peer_ = {a.src_host, a.src_port};
    local_ = {a.dst_host, a.dst_port};
  }
  proxied_ = true;
  proxy_ = Proxy::kNone;
  proxy_parser_.reset();
  in->remove_prefix(used);
  return !in->empty();  // the first request's bytes, maybe several pipelined requests
}

void Connection::refuse_proxy(std::string_view reason) {
  // No HTTP answer: the peer speaks the PROXY protocol (or should), not HTTP, and an answer
  // could reach whoever is behind it as if it were the app's.
  uint64_t now = now_ms();
  RefusalLog& g = g_refusals;
  if (g.logged && now - g.last_ms < kRefusalLogEveryMs) {
    ++g.suppressed;
  } else {
    // The reasons are ours (no quotes in them); an address has no spaces.
    bool unix_peer = h_.handle.type == UV_NAMED_PIPE;
    spdlog::warn("event=proxy-refused peer={} reason=\"{}\" suppressed={}",
                 unix_peer ? std::string_view("unix") : std::string_view(peer_endpoint().host),
                 reason, g.suppressed);
    g = {true, now, 0};
  }
  close_now();
}

}  // namespace rotor::http
