/* The machine's floor for a worker rotation: CPU for fork + _exit + wait of an empty child, and
 * for each page of inherited memory the child reads or writes (copy-on-write). Under shadow or
 * paravirtual paging these are many times their bare-metal cost. Built and run by
 * scripts/bench.py (scenario rotation); prints key=value lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kForks = 300, kPages = 100, kPage = 4096 };

static double cpu_us(const struct rusage* r) {
  return (r->ru_utime.tv_sec + r->ru_stime.tv_sec) * 1e6 + r->ru_utime.tv_usec +
         r->ru_stime.tv_usec;
}

/* Mean CPU per fork (child and parent side) when each child touches `pages` pages of `mem`. */
static void run(volatile char* mem, int pages, int write, double* child, double* parent) {
  struct rusage c0, c1, s0, s1;
  getrusage(RUSAGE_CHILDREN, &c0);
  getrusage(RUSAGE_SELF, &s0);
  for (int i = 0; i < kForks; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      exit(1);
    }
    if (pid == 0) {
      long sum = 0;
      for (int p = 0; p < pages; ++p) {
        if (write) {
          mem[(size_t)p * kPage] = 2;
        } else {
          sum += mem[(size_t)p * kPage];
        }
      }
      _exit(sum == -1);
    }
    int status;
    waitpid(pid, &status, 0);
  }
  getrusage(RUSAGE_CHILDREN, &c1);
  getrusage(RUSAGE_SELF, &s1);
  *child = (cpu_us(&c1) - cpu_us(&c0)) / kForks;
  *parent = (cpu_us(&s1) - cpu_us(&s0)) / kForks;
}

int main(void) {
  char* mem = aligned_alloc(kPage, (size_t)kPages * kPage);
  if (!mem) return 1;
  memset(mem, 1, (size_t)kPages * kPage);
  double empty_child, empty_parent, read_child, read_parent, write_child, write_parent;
  run(mem, 0, 0, &empty_child, &empty_parent);
  run(mem, kPages, 0, &read_child, &read_parent);
  run(mem, kPages, 1, &write_child, &write_parent);
  printf("fork_exit_us=%.0f\n", empty_child + empty_parent);
  printf("page_read_us=%.1f\n", (read_child - empty_child) / kPages);
  printf("page_write_us=%.1f\n", (write_child - empty_child) / kPages);
  return 0;
}
