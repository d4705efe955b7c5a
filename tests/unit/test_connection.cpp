// The connection's state machine in process: a Server and its Connection on one end of a
// socketpair, a real libuv loop, and the test as the client on the other end (as
// fuzz/fuzz_connection.cpp drives it). No master, no worker process.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "workers/http/connection.hpp"
#include "workers/http/server.hpp"

namespace {

using namespace rotor;

// Records what reaches the handler; answers as the test says (by default 200 "ok" at once).
class Recorder : public http::Handler {
 public:
  std::function<void(http::Connection&, const http::Request&)> answer =
      [](http::Connection& conn, const http::Request&) { conn.respond(200, "text/plain", "ok"); };
  bool websockets = false;
  std::vector<std::string> targets;
  std::vector<std::string> messages;
  http::Connection* held = nullptr;  // the connection of the last request
  int closed_code = 0;

  void on_request(http::Connection& conn, const http::Request& req) override {
    targets.emplace_back(req.target());
    held = &conn;
    answer(conn, req);
  }
  bool accepts_websockets() const override { return websockets; }
  void on_ws_message(http::Connection& conn, bool text, std::string_view data) override {
    messages.emplace_back(data);
    conn.send_websocket(text, data);  // an echo
  }
  void on_ws_closed(http::Connection&, uint16_t code, std::string_view) override {
    closed_code = code;
  }
};

class Quiet : public http::Observer {
 public:
  void on_connections(size_t) override {}
  void on_in_flight(size_t) override {}
  void on_response_complete(int, int64_t, bool) override {}
  bool may_accept(size_t) override { return true; }
};

http::Limits small_limits() {
  http::Limits lim;
  lim.server_header = false;
  lim.date_header = false;
  lim.linger_ms = 300;
  return lim;
}

// One server with one connection; `client` is the test's end of the socketpair. The loop and
// the server live as long as the test binary: like a worker's, the server has no teardown.
struct Bench {
  uv_loop_t* loop = new uv_loop_t;
  Recorder handler;
  Quiet observer;
  http::Server* server;
  int client = -1;

  explicit Bench(const http::Limits& lim = small_limits()) {
    std::signal(SIGPIPE, SIG_IGN);  // as in a worker: a write to a closed peer is an error
    uv_loop_init(loop);
    server = new http::Server(loop, lim, handler, observer);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    server->adopt(sv[0], true);
    client = sv[1];
  }
  ~Bench() {
    if (client >= 0) close(client);
    server->close_all();
    spin(20);
  }

  void spin(int passes = 5) {
    for (int i = 0; i < passes; ++i) uv_run(loop, UV_RUN_NOWAIT);
  }
  void send(std::string_view bytes) {
    REQUIRE(::send(client, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
    spin();
  }
  // What the client can read now; `eof` says whether the server half-closed.
  std::string read_all(bool* eof = nullptr) {
    spin();
    std::string out;
    char buf[65536];
    while (true) {
      ssize_t n = read(client, buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (eof) *eof = n == 0;
      return out;
    }
  }
  // Runs the loop (its deadline sweep included) until `done` or `ms` pass.
  bool run_until(const std::function<bool()>& done, int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      uv_run(loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }
};

size_t count(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

constexpr std::string_view kGet = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
constexpr std::string_view kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

// A client's WebSocket frame: FIN, the opcode, a mask (clients must mask), a short payload.
std::string client_frame(uint8_t opcode, std::string_view payload) {
  const unsigned char mask[4] = {1, 2, 3, 4};
  std::string f;
  f += static_cast<char>(0x80 | opcode);
  f += static_cast<char>(0x80 | payload.size());
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

}  // namespace

TEST_SUITE("connection") {
  TEST_CASE("a keep-alive connection answers one request after another and stays open") {
    Bench b;
    b.send(kGet);
    bool eof = false;
    CHECK(b.read_all(&eof) == kOk);
    CHECK_FALSE(eof);
    CHECK(b.server->connections() == 1);
    b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(b.read_all(&eof) == kOk);
    CHECK_FALSE(eof);
    CHECK(b.handler.targets == std::vector<std::string>{"/a", "/b"});
  }

  TEST_CASE("pipelined requests wait for the answer before them and are answered in order") {
    Bench b;
    std::vector<http::Connection*> waiting;
    b.handler.answer = [&](http::Connection& conn, const http::Request&) {
      waiting.push_back(&conn);  // answered later, as an app's task would
    };
    b.send(std::string(kGet) + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(b.handler.targets == std::vector<std::string>{"/a"});  // /b waits its turn
    CHECK(b.read_all().empty());
    REQUIRE(waiting.size() == 1);
    waiting.back()->respond(200, "text/plain", "ok");
    b.spin();
    CHECK(b.handler.targets == std::vector<std::string>{"/a", "/b"});
    REQUIRE(waiting.size() == 2);
    waiting.back()->respond(201, "text/plain", "ok");
    std::string out = b.read_all();
    CHECK(out.find("HTTP/1.1 200 OK") == 0);
    CHECK(out.find("HTTP/1.1 201 Created") > out.find("HTTP/1.1 200 OK"));
  }

  TEST_CASE("a client that expects 100-continue gets it before it sends the body") {
    Bench b;
    b.send("POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    CHECK(b.read_all() == "HTTP/1.1 100 Continue\r\n\r\n");
    CHECK(b.handler.targets.empty());
    b.send("abc");
    CHECK(b.read_all() == kOk);
    CHECK(b.handler.targets == std::vector<std::string>{"/up"});
  }

  TEST_CASE("after Connection: close the server half-closes, discards input, then closes") {
    Bench b;
    b.send(
        "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        "GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    bool eof = false;
    std::string out = b.read_all(&eof);
    CHECK(out.find("HTTP/1.1 200 OK\r\n") == 0);
    CHECK(out.find("Connection: close\r\n") != std::string::npos);
    CHECK(count(out, "HTTP/1.1") == 1);
    CHECK(eof);                           // our side is shut for writing...
    CHECK(b.server->connections() == 1);  // ...but still reads (lingers)
    b.send("more input the client had in flight");
    CHECK(b.server->connections() == 1);
    shutdown(b.client, SHUT_WR);
    CHECK(b.run_until([&] { return b.server->connections() == 0; }, 1000));
    CHECK(b.handler.targets == std::vector<std::string>{"/a"});
  }

  TEST_CASE("a lingering connection whose client never closes is closed after the linger time") {
    Bench b;
    b.send("GET /a HTTP/1.0\r\n\r\n");
    bool eof = false;
    b.read_all(&eof);
    CHECK(eof);
    CHECK(b.server->connections() == 1);
    CHECK(b.run_until([&] { return b.server->connections() == 0; }, 2000));
  }

  TEST_CASE("an answer the client does not read is closed after the write timeout") {
    http::Limits lim = small_limits();
    lim.write_timeout_ms = 200;
    Bench b(lim);
    std::string big(8 * 1024 * 1024, 'x');
    b.handler.answer = [&](http::Connection& conn, const http::Request&) {
      conn.respond(200, "text/plain", big);
    };
    b.send(kGet);
    CHECK(b.server->connections() == 1);  // the write waits for the client
    auto start = std::chrono::steady_clock::now();
    CHECK(b.run_until([&] { return b.server->connections() == 0; }, 3000));
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(150));
  }

  TEST_CASE("a streamed answer without a length is chunked and keeps the connection") {
    Bench b;
    std::string error;
    b.handler.answer = [&](http::Connection& conn, const http::Request&) {
      CHECK(conn.send_response(200, nullptr, "ab", true, &error) == http::SendResult::kOk);
      CHECK(conn.send_response(200, nullptr, "cde", false, &error) == http::SendResult::kOk);
    };
    b.send(kGet);
    bool eof = false;
    std::string out = b.read_all(&eof);
    CHECK(out.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
    CHECK(out.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"));
    CHECK_FALSE(eof);
    b.send(kGet);
    CHECK(count(b.read_all(), "HTTP/1.1 200 OK") == 1);
  }

  TEST_CASE("a streamed body that ends short of its Content-Length closes the connection") {
    Bench b;
    std::string error;
    http::HeaderList headers{{"content-length", "10"}};
    b.handler.answer = [&](http::Connection& conn, const http::Request&) {
      CHECK(conn.send_response(200, &headers, "abc", true, &error) == http::SendResult::kOk);
      CHECK(conn.send_response(200, nullptr, "", true, &error) == http::SendResult::kOk);
      // Past the declared end: refused, nothing written.
      CHECK(conn.send_response(200, nullptr, "12345678", true, &error) ==
            http::SendResult::kInvalid);
      CHECK(conn.send_response(200, nullptr, "de", false, &error) == http::SendResult::kOk);
    };
    b.send(kGet);
    bool eof = false;
    std::string out = b.read_all(&eof);
    CHECK(out.ends_with("content-length: 10\r\n\r\nabcde"));
    CHECK(eof);  // the client would read the next answer as the rest of this one
  }

  TEST_CASE("a WebSocket upgrade hands the socket to a session until the closing handshake") {
    Bench b;
    b.handler.websockets = true;
    b.handler.answer = [](http::Connection& conn, const http::Request&) {
      CHECK(conn.websocket_requested());  // accepted later, as an app's task does
    };
    b.send(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
        client_frame(0x1, "early"));
    REQUIRE(b.handler.held);
    std::string error;
    CHECK(b.handler.held->accept_websocket("", nullptr, &error) == http::SendResult::kOk);
    std::string out = b.read_all();
    CHECK(out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    CHECK(out.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
    CHECK(out.ends_with(std::string("\x81\x05") + "early"));  // sent with the handshake: first
    b.send(client_frame(0x1, "hi"));
    CHECK(b.read_all() == std::string("\x81\x02") + "hi");
    CHECK(b.handler.messages == std::vector<std::string>{"early", "hi"});
    b.send(client_frame(0x8, std::string("\x03\xe8", 2)));  // close, 1000
    CHECK(b.read_all() == std::string("\x88\x02\x03\xe8", 4));
    CHECK(b.handler.closed_code == 1000);
    shutdown(b.client, SHUT_WR);
    CHECK(b.run_until([&] { return b.server->connections() == 0; }, 1000));
  }
}
