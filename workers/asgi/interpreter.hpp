// Starting CPython inside a worker (or, later, the template) and loading the ASGI app.
// One step, so that it can run before fork in a template process as well as after it.
#pragma once

#include <string>
#include <vector>

typedef struct _object PyObject;

namespace rotor::asgi {

struct PythonSettings {
  std::string executable;          // sys.executable: a venv's python or the build's python3
  std::vector<std::string> paths;  // put first on sys.path (the working directory, --pythonpath)
};

// Initializes CPython in this process: isolated config, no Python signal handlers.
bool start_interpreter(const PythonSettings& settings, std::string* error);

// Imports `module:attr.path` (calls it when `factory`). New reference, or nullptr with the
// Python traceback already printed to stderr and a one-line summary in `error`.
PyObject* load_app(const std::string& spec, bool factory, std::string* error);

// Logs the pending Python exception under `event` (its traceback to the error log) and clears
// it. Never PyErr_Print: given a SystemExit it would finalize the interpreter and exit.
void log_python_error(const char* event);

}  // namespace rotor::asgi
