#include "supervisor/template_protocol.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace rotor::tmpl {

bool send_msg(int fd, const Msg& msg) {
  ssize_t n;
  do {
    n = ::send(fd, &msg, sizeof msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof msg);
}

int recv_msg(int fd, Msg* msg) {
  ssize_t n;
  do {
    n = ::recv(fd, msg, sizeof *msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return 0;
  if (n != static_cast<ssize_t>(sizeof *msg)) {
    if (n >= 0) errno = EPROTO;
    return -1;
  }
  return 1;
}

}  // namespace rotor::tmpl
