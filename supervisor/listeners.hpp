// The listening sockets, bound by the master before any worker exists so that every worker
// shares one accept queue and nothing queued is lost when a worker exits.
#pragma once

#include <sys/types.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace rotor {

struct Listener {
  std::string spec;     // as configured ("127.0.0.1:8000", "unix:/run/x.sock", "fd://3")
  std::string address;  // as bound, for logs ("http://127.0.0.1:43211", "unix:/run/x.sock")
  int fd = -1;
  bool is_unix = false;
  std::string unix_path;   // removed at exit when we created it
  bool inherited = false;  // fd:// or systemd's: the socket outlives us, for the next start
  bool activated = false;  // systemd's (LISTEN_FDS): used whatever --bind says
};

struct BindError : std::runtime_error {
  explicit BindError(const std::string& what, int err = 0) : std::runtime_error(what), error(err) {}
  int error;               // errno of the failed bind, 0 when it was not one
  bool port_held = false;  // EADDRINUSE on a TCP port one of our own listeners holds
};

// Binds every spec, or uses the sockets systemd passed (LISTEN_FDS/LISTEN_PID) when `env`
// says so; a unix socket's file is created under `socket_umask`; `reuse_port` sets
// SO_REUSEPORT on the TCP sockets it binds. Throws BindError with one line naming the address
// and the reason.
std::vector<Listener> open_listeners(const std::vector<std::string>& specs, int backlog,
                                     const std::map<std::string, std::string>& env,
                                     mode_t socket_umask, bool reuse_port = false);

// One spec, as open_listeners does. Throws BindError.
Listener open_listener(const std::string& spec, int backlog, mode_t socket_umask,
                       bool reuse_port = false);

// Whether `l` is one of the sockets a config with this --bind listens on.
bool serves(const Listener& l, const std::vector<std::string>& bind);

// A HUP's --bind: opens the specs `listeners` does not have yet and adds them (those it has
// are kept: the same socket, no gap). Returns their addresses; throws BindError, having
// opened nothing (with `port_held` when an address is in use by one of `listeners` itself:
// 0.0.0.0:P narrowed to 127.0.0.1:P cannot be bound while the old socket listens). Under socket
// activation, nothing changes. Whether one of `listeners` is a TCP socket bound to the port `spec`
// names.
bool holds_port(const std::vector<Listener>& listeners, const std::string& spec);

std::vector<std::string> open_missing(std::vector<Listener>& listeners,
                                      const std::vector<std::string>& bind, int backlog,
                                      mode_t socket_umask, bool reuse_port = false);

// Closes (and stops, see stop_accepting) the listeners that none of `binds` names; returns
// their addresses.
std::vector<std::string> close_unused(std::vector<Listener>& listeners,
                                      const std::vector<const std::vector<std::string>*>& binds);

// A stop: new connections are refused at once (clients and balancers fail over) while the
// workers finish what they accepted. shutdown(SHUT_RD) acts on the socket itself, so it holds
// in every process that shares it. Inherited sockets are left alone: their owner (systemd)
// hands them to the next start.
void stop_accepting(const std::vector<Listener>& listeners);

void close_listeners(std::vector<Listener>& listeners);

}  // namespace rotor
