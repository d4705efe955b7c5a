/* The leanest pre-fork HTTP server we could write: the machine's floor for max-requests rotation.
 *
 *   minifork PORT [LIMIT JITTER [fork|close]]
 *
 * A master binds 127.0.0.1:PORT and forks 2 workers; each answers every request on a
 * keep-alive connection with a fixed 200 "Hello, world!" from one epoll loop, with no library
 * beyond libc. With a LIMIT, a worker that has served LIMIT + uniform(0, JITTER) requests answers
 * the rest of what it has read with `Connection: close` and then:
 *   fork  (default) exits, and the master forks a successor: a rotation;
 *   close           starts counting again in the same process: the clients' reconnects alone.
 * Comparing the two separates what fork + exit cost from what reconnecting costs. rotor hands
 * its connections to the workers that stay instead, so it pays no reconnects.
 *
 * On SIGTERM the master prints `rotations=N child_cpu_ms=X` (mean CPU of a retired worker's life)
 * and exits; workers die with it (PR_SET_PDEATHSIG). Used by scripts/bench.py (scenario
 * rotation); a measuring tool, not part of rotor. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kWorkers = 2, kMaxFd = 65536 };

static const char kKeepAlive[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
static const char kClose[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
    "Connection: close\r\n\r\nHello, world!";

static int listen_fd;
static long limit, jitter;
static int close_only;
static volatile sig_atomic_t stopping;

static long draw_limit(void) { return limit + (jitter ? random() % (jitter + 1) : 0); }

/* How far each connection is into "\r\n\r\n", the end of a request head (requests from wrk
 * carry no body). */
static unsigned char matched[kMaxFd];

static int count_heads(int fd, const char* buf, ssize_t n) {
  static const char end[] = "\r\n\r\n";
  int heads = 0;
  for (ssize_t i = 0; i < n; ++i) {
    if (buf[i] == end[matched[fd]]) {
      if (++matched[fd] == 4) {
        matched[fd] = 0;
        ++heads;
      }
    } else {
      matched[fd] = buf[i] == '\r' ? 1 : 0;
    }
  }
  return heads;
}

static void watch_listener(int ep, int op) {
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};
  epoll_ctl(ep, op, listen_fd, &ev);
}

static void close_connection(int ep, int fd, int* open) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  --*open;
}

static void worker(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGTERM, SIG_DFL);
  srandom((unsigned)getpid());
  long my_limit = limit ? draw_limit() : 0, served = 0;
  int open = 0, draining = 0;
  int ep = epoll_create1(0);
  watch_listener(ep, EPOLL_CTL_ADD);
  struct epoll_event events[64];
  char buf[8192];
  for (;;) {
    if (draining && open == 0) {
      if (!close_only) _exit(0);
      draining = 0;
      served = 0;
      my_limit = draw_limit();
      watch_listener(ep, EPOLL_CTL_ADD);
    }
    int n = epoll_wait(ep, events, 64, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listen_fd) {
        if (draining) continue;  // reported in this batch before it was unwatched
        int c = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0 || c >= kMaxFd) {
          if (c >= 0) close(c);
          continue;
        }
        matched[c] = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
        ++open;
        continue;
      }
      ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        close_connection(ep, fd, &open);
        continue;
      }
      for (int heads = count_heads(fd, buf, got); heads > 0; --heads) {
        if (my_limit && ++served >= my_limit && !draining) {
          draining = 1;
          watch_listener(ep, EPOLL_CTL_DEL);
        }
        if (draining) {
          (void)!write(fd, kClose, sizeof kClose - 1);
          close_connection(ep, fd, &open);
          break;
        }
        (void)!write(fd, kKeepAlive, sizeof kKeepAlive - 1);
      }
    }
  }
}

static pid_t spawn(void) {
  pid_t pid = fork();
  if (pid == 0) worker();
  return pid;
}

static void on_term(int sig) {
  (void)sig;
  stopping = 1;
}

int main(int argc, char** argv) {
  if (argc != 2 && argc != 4 && argc != 5) {
    fprintf(stderr, "usage: minifork PORT [LIMIT JITTER [fork|close]]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  if (argc >= 4) {
    limit = atol(argv[2]);
    jitter = atol(argv[3]);
  }
  close_only = argc == 5 && strcmp(argv[4], "close") == 0;

  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(listen_fd, 2048) != 0) {
    perror("minifork: bind");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_term};  // no SA_RESTART: wait4 returns EINTR
  sigaction(SIGTERM, &sa, NULL);

  for (int i = 0; i < kWorkers; ++i) spawn();
  long rotations = 0;
  double child_ms = 0;
  while (!stopping) {
    int status;
    struct rusage ru;
    pid_t pid = wait4(-1, &status, 0, &ru);
    if (stopping) break;  // the TERM to our process group took the workers too
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    ++rotations;
    child_ms += (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    spawn();
  }
  printf("rotations=%ld child_cpu_ms=%.2f\n", rotations, rotations ? child_ms / rotations : 0.0);
  fflush(stdout);
  return 0;
}
