// The messages between the master and a template process, one SOCK_SEQPACKET datagram each.
// The master asks for a worker; the template answers with the pid it forked (the master checks
// that pid is its own child before trusting it).
#pragma once

#include <cstdint>

namespace rotor::tmpl {

enum class MsgType : uint32_t {
  kSpawn = 1,        // master -> template: fork a worker for `id` into `slot`
  kReady = 2,        // template -> master: the app is imported; `value` = boot time in ns
  kSpawned = 3,      // template -> master: `id` runs as pid `value`
  kSpawnFailed = 4,  // template -> master: `id` could not be forked; `value` = errno
  kThreads = 5,      // template -> master: the app started threads (`value`); forking is unsafe
};

struct Msg {
  MsgType type{};
  uint32_t slot = 0;
  uint64_t id = 0;
  int64_t value = 0;
};

// Sends one message; false (errno set) when it could not.
bool send_msg(int fd, const Msg& msg);

// 1: a message was read; 0: the peer closed; -1: none available now, or an error (errno).
int recv_msg(int fd, Msg* msg);

}  // namespace rotor::tmpl
