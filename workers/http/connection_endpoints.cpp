// Where a connection goes: the peer's and our own address, asked of the socket once (for the
// scope and the access log), and the access log line of an answer.
#include <arpa/inet.h>
#include <sys/socket.h>

#include "workers/http/access_log.hpp"
#include "workers/http/connection.hpp"
#include "workers/http/server.hpp"

namespace rotor::http {

const Endpoint& Connection::peer_endpoint() {
  if (!endpoints_known_) {
    endpoints_known_ = true;
    auto fill = [this](bool peer, Endpoint& e) {
      sockaddr_storage ss{};
      int len = sizeof ss;
      if (h_.handle.type == UV_NAMED_PIPE) {
        char path[256];
        size_t n = sizeof path;
        if (!peer && uv_pipe_getsockname(&h_.pipe, path, &n) == 0) e.host.assign(path, n);
        return;
      }
      int rc = peer ? uv_tcp_getpeername(&h_.tcp, reinterpret_cast<sockaddr*>(&ss), &len)
                    : uv_tcp_getsockname(&h_.tcp, reinterpret_cast<sockaddr*>(&ss), &len);
      if (rc != 0) return;
      char host[INET6_ADDRSTRLEN] = "";
      if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        e.port = ntohs(a->sin_port);
      } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        e.port = ntohs(a->sin6_port);
      }
      e.host = host;
    };
    fill(true, peer_);
    fill(false, local_);
  }
  return peer_;
}

const Endpoint& Connection::local_endpoint() {
  peer_endpoint();
  return local_;
}

void Connection::log_access(int status, uint64_t body_bytes) {
  AccessEntry e;
  e.request = &parser_.request();
  e.remote = peer_endpoint().host;  // empty (unix socket) renders as "-"
  e.status = status;
  e.body_bytes = body_bytes;
  e.duration_ns = static_cast<int64_t>(uv_hrtime() - started_hr_);
  e.wall_start_s = started_wall_;
  server_.access_log()->write(e);
}

}  // namespace rotor::http
