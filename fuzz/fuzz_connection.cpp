// libFuzzer target: a whole Connection (parser, dispatch, pipelining, output, EOF, linger)
// over a socketpair, driven by a real libuv loop with a handler that answers 200. Besides
// ASan/UBSan/LSan it checks that the client receives exactly what the RequestParser's verdict
// on the same bytes says (one 200 per request, in order, then the error status if any) and
// that no connection is left open once the client has sent everything and half-closed.
// Byte 0 picks the write pattern, and with its high bit a server that expects a PROXY protocol
// header first (the verdict is then the header parser's, and the parser's on what follows it);
// the rest is the byte stream. Built by scripts/fuzz.sh.
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/verdict.hpp"
#include "workers/http/connection.hpp"
#include "workers/http/server.hpp"

namespace {

using namespace rotor;

class Ok : public http::Handler {
 public:
  void on_request(http::Connection& conn, const http::Request&) override {
    conn.respond(200, "text/plain", "ok");
  }
};

class Quiet : public http::Observer {
 public:
  void on_connections(size_t) override {}
  void on_in_flight(size_t) override {}
  void on_response_complete(int, int64_t, bool) override {}
  bool may_accept(size_t) override { return true; }
};

struct World {
  uv_loop_t loop;
  Ok handler;
  Quiet observer;
  http::Limits limits;
  http::Server* server;
  http::Server* proxy_server;  // --proxy-protocol (a unix-socket peer must send the header)
  World() {
    std::signal(SIGPIPE, SIG_IGN);  // as in a worker: a write to a closed peer is an error
    uv_loop_init(&loop);
    limits.parse = fuzz::limits_from(1);  // small limits: all of them reachable
    server = new http::Server(&loop, limits, handler, observer);
    http::Limits proxied = limits;
    proxied.proxy_protocol = true;
    proxy_server = new http::Server(&loop, proxied, handler, observer);
  }
};

World& world() {
  static World* w = new World();
  return *w;
}

void drain(int fd, std::string& out) {
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Status codes of the responses in `out` (interim 100s left out); `to_head[i]` says whether
// the i-th answer is to a HEAD (a Content-Length but no body).
std::vector<int> statuses(std::string_view out, const std::vector<bool>& to_head) {
  std::vector<int> s;
  while (!out.empty()) {
    size_t end = out.find("\r\n\r\n");
    if (end == std::string_view::npos || !out.starts_with("HTTP/1.1 ") || out.size() < 12) {
      std::fprintf(stderr, "after %zu answers: %.*s\n", s.size(), static_cast<int>(out.size()),
                   out.data());
      fuzz::fail("malformed response stream");
    }
    int status = (out[9] - '0') * 100 + (out[10] - '0') * 10 + (out[11] - '0');
    std::string_view head = out.substr(0, end);
    size_t length = 0;
    size_t cl = head.find("\r\nContent-Length: ");
    if (cl != std::string_view::npos) {
      for (size_t i = cl + 18; i < head.size() && head[i] >= '0' && head[i] <= '9'; ++i) {
        length = length * 10 + static_cast<size_t>(head[i] - '0');
      }
    } else if (status != 100) {
      fuzz::fail("response without Content-Length");
    }
    if (status != 100 && s.size() < to_head.size() && to_head[s.size()]) length = 0;
    if (out.size() < end + 4 + length) fuzz::fail("truncated response");
    if (status != 100) s.push_back(status);
    out.remove_prefix(end + 4 + length);
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  World& w = world();
  uint32_t seed = data[0];
  ++data;
  --size;

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  bool proxy = seed & 0x80;
  http::Server* server = proxy ? w.proxy_server : w.server;
  server->adopt(sv[0], true);
  std::string out;
  std::vector<size_t> pieces = fuzz::pieces_from_seed(seed, size);
  size_t off = 0;
  for (size_t i = 0; off < size; ++i) {
    size_t n = i < pieces.size() ? std::min(pieces[i], size - off) : size - off;
    ssize_t put = send(sv[1], data + off, n, MSG_NOSIGNAL);
    if (put > 0) off += static_cast<size_t>(put);
    if (put < 0 && errno != EAGAIN) break;  // the server closed: it rejected the bytes
    for (int k = 0; k < 3; ++k) uv_run(&w.loop, UV_RUN_NOWAIT);
    drain(sv[1], out);
  }
  shutdown(sv[1], SHUT_WR);
  for (int k = 0; k < 10000 && server->connections() > 0; ++k) {
    uv_run(&w.loop, UV_RUN_NOWAIT);
    drain(sv[1], out);
  }
  if (server->connections() > 0) fuzz::fail("a connection stayed open after the client's EOF");
  uv_run(&w.loop, UV_RUN_NOWAIT);  // close callbacks
  drain(sv[1], out);
  close(sv[1]);

  // Behind a header the requests are what follows it; without a complete, valid one nothing
  // is answered.
  size_t header = 0;
  if (proxy) {
    http::ProxyHeaderParser p;
    std::string_view sent(reinterpret_cast<const char*>(data), off);
    if (p.feed(sent, &header) != http::ProxyHeaderParser::Result::kDone) {
      if (!out.empty()) fuzz::fail("an answer without a valid PROXY header");
      return 0;
    }
  }
  fuzz::Verdict v = fuzz::judge(data + header, off - header, {}, w.limits.parse);
  std::vector<int> expected(v.messages.size(), 200);
  std::vector<bool> head;
  for (const auto& m : v.messages) head.push_back(m.starts_with("HEAD "));
  if (v.error) {
    expected.push_back(v.error);
    head.push_back(v.error_head);
  }
  if (statuses(out, head) != expected) {
    std::fprintf(stderr, "sent %zu bytes; expected %zu answers (error %d), got:\n%s\n", off,
                 v.messages.size(), v.error, out.c_str());
    fuzz::fail("the client got something else than the parser's verdict");
  }
  return 0;
}
