// How a worker's Python ends. The worker leaves with _exit(); before that it does what a
// Python process does as it ends (waits for non-daemon threads and executor jobs, runs atexit
// handlers, flushes stdio), bounded by a deadline, and logs what it waited for.
#pragma once

#include <cstdint>

typedef struct _object PyObject;

namespace rotor::asgi {

// `bridge` is the _rotor_bridge module (its join_threads and run_exit_handlers); `deadline_ns`
// a monotonic time. Returns once done, or not at all: exit handlers still running at the
// deadline end the process (exit 0) with a warning line.
void end_python(PyObject* bridge, int64_t deadline_ns);

}  // namespace rotor::asgi
