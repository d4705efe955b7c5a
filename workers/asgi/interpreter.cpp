#include "workers/asgi/interpreter.hpp"

#include "workers/asgi/py_ref.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace rotor::asgi {

namespace {

bool set_wide(PyConfig* config, wchar_t** field, const std::string& value, std::string* error) {
  PyStatus st = PyConfig_SetBytesString(config, field, value.c_str());
  if (PyStatus_Exception(st)) {
    *error = st.err_msg ? st.err_msg : "cannot decode a path";
    return false;
  }
  return true;
}

// The exception's type and message on one line (the full traceback goes to stderr).
std::string describe_error() {
  FetchedError error;
  error.normalize();
  std::string out = "unknown error";
  if (error.type) {
    PyRef name = PyRef::steal(PyObject_GetAttrString(error.type, "__name__"));
    PyRef text = PyRef::steal(error.value ? PyObject_Str(error.value) : nullptr);
    const char* n = name ? PyUnicode_AsUTF8(name.get()) : nullptr;
    const char* t = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
    out = std::string(n ? n : "Exception") + (t && *t ? std::string(": ") + t : "");
  }
  error.restore();
  PyErr_Print();  // the traceback, to stderr (the error log)
  return out;
}

}  // namespace

bool start_interpreter(const PythonSettings& settings, std::string* error) {
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  // rotor owns the signals; Python must not install its own (see also run()).
  config.install_signal_handlers = 0;
  config.parse_argv = 0;
  config.user_site_directory = 0;
  bool ok = set_wide(&config, &config.executable, settings.executable, error) &&
            set_wide(&config, &config.program_name, settings.executable, error);
  if (ok) {
    PyStatus st = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(st)) {
      *error = std::string("cannot start Python: ") + (st.err_msg ? st.err_msg : "?");
      ok = false;
    }
  }
  PyConfig_Clear(&config);
  if (!ok) return false;

  // An isolated interpreter leaves the working directory off sys.path; gunicorn and uvicorn
  // put it first, and so do we, after --pythonpath entries.
  PyObject* path = PySys_GetObject("path");  // borrowed
  for (auto it = settings.paths.rbegin(); it != settings.paths.rend(); ++it) {
    PyRef entry = PyRef::steal(PyUnicode_DecodeFSDefault(it->c_str()));
    if (!entry || PyList_Insert(path, 0, entry.get()) != 0) {
      entry.reset();
      *error = "cannot extend sys.path: " + describe_error();
      return false;
    }
  }
  return true;
}

PyObject* load_app(const std::string& spec, bool factory, std::string* error) {
  auto colon = spec.find(':');
  std::string module_name = spec.substr(0, colon);
  std::string attr = colon == std::string::npos ? "app" : spec.substr(colon + 1);
  if (module_name.empty() || attr.empty()) {
    *error = "APP must look like module:attribute, got '" + spec + "'";
    return nullptr;
  }
  PyRef obj = PyRef::steal(PyImport_ImportModule(module_name.c_str()));
  if (!obj) {
    *error = "cannot import module '" + module_name + "': " + describe_error();
    return nullptr;
  }
  size_t start = 0;
  while (start <= attr.size()) {
    size_t dot = attr.find('.', start);
    std::string part =
        attr.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    obj = PyRef::steal(PyObject_GetAttrString(obj.get(), part.c_str()));
    if (!obj) {
      *error = "module '" + module_name + "' has no attribute '" + attr + "': " + describe_error();
      return nullptr;
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (factory) {
    obj = PyRef::steal(PyObject_CallNoArgs(obj.get()));
    if (!obj) {
      *error = "the factory '" + spec + "' raised: " + describe_error();
      return nullptr;
    }
  }
  if (!PyCallable_Check(obj.get())) {
    obj.reset();
    *error = "'" + spec + "' is not callable";
    return nullptr;
  }
  return obj.release();
}

// Logs the pending Python exception (traceback to the error log) under `event`. Never
// PyErr_Print: given a SystemExit it would finalize the interpreter and exit the worker.
void log_python_error(const char* event) {
  spdlog::error("event={}", event);
  FetchedError error;
  if (!error.type) return;
  error.normalize();
  PyErr_Display(error.type, error.value, error.traceback);
}

}  // namespace rotor::asgi
