// Connection handoff between workers. A worker that drains for a rotation passes its idle
// keep-alive connections to the workers that stay, over a SOCK_SEQPACKET pair the master
// created before forking (every worker reads the same queue, like a second accept queue).
// Clients keep their connection: no Connection: close, no reconnect, no race with a request
// the client is sending at that moment (its bytes wait in the kernel for the new owner).
#pragma once

namespace rotor::http {

struct HandoffChannel {
  int recv_fd = -1;  // workers that accept read handed-off connections here
  int send_fd = -1;  // draining workers send them here
};

// Sends `fd` (a connected socket at a request boundary) with its kind. The caller still owns
// `fd`. False when the queue is full or gone: the caller keeps the connection then.
bool send_connection(int channel_fd, int fd, bool is_unix);

// Receives one connection; -1 when none is queued. The fd is non-blocking and close-on-exec.
int receive_connection(int channel_fd, bool* is_unix);

}  // namespace rotor::http
