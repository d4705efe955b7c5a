#include "workers/asgi/leak_report.hpp"

#include <string>

#include <spdlog/spdlog.h>

#include "log/log.hpp"

namespace rotor::asgi {

extern const char* const kLeakReportSource;  // workers/asgi/leak_report.py, compiled in

namespace {

// The pending exception as "Type: message", cleared.
std::string take_error() {
  FetchedError error;
  error.normalize();
  if (!error.type) return "unknown error";
  PyRef name = PyRef::steal(PyObject_GetAttrString(error.type, "__name__"));
  PyRef text = PyRef::steal(error.value ? PyObject_Str(error.value) : nullptr);
  const char* n = name ? PyUnicode_AsUTF8(name.get()) : nullptr;
  const char* t = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
  PyErr_Clear();
  return std::string(n ? n : "Exception") + (t && *t ? std::string(": ") + t : "");
}

// One line of the reporter's: [(key, value)] as key=value fields, quoted where needed.
bool format_fields(PyObject* fields, std::string* out) {
  PyRef seq = PyRef::steal(PySequence_Fast(fields, "expected a list of fields"));
  if (!seq) return false;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    const char *key, *value;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq.get(), i), "ss", &key, &value)) {
      return false;
    }
    if (!out->empty()) *out += ' ';
    *out += std::string(key) + '=' + log::quote(value);
  }
  return true;
}

// The reporter's lines, [(level, fields)], to the log.
bool log_lines(PyObject* lines) {
  PyRef seq = PyRef::steal(PySequence_Fast(lines, "expected a list of lines"));
  if (!seq) return false;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    const char* level;
    PyObject* fields;  // borrowed
    std::string line;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq.get(), i), "sO", &level, &fields) ||
        !format_fields(fields, &line)) {
      return false;
    }
    spdlog::log(std::string(level) == "warning" ? spdlog::level::warn : spdlog::level::info, "{}",
                line);
  }
  return true;
}

}  // namespace

void LeakReport::start(const conf::Config& cfg, uint64_t generation) {
  cfg_ = &cfg;
  PyRef code =
      PyRef::steal(Py_CompileString(kLeakReportSource, "rotor/leak_report.py", Py_file_input));
  PyRef module = code ? PyRef::steal(PyImport_ExecCodeModule("_rotor_leak", code.get())) : PyRef();
  code.reset();
  if (!module || !call_ok(PyObject_CallMethod(module.get(), "start", "lK", cfg.leak_report_depth,
                                              static_cast<unsigned long long>(generation)))) {
    fail("start");
    return;
  }
  module_ = std::move(module);
  spdlog::info("event=leak-trace-start generation={} depth={} warmup={}", generation,
               cfg.leak_report_depth, cfg.leak_report_warmup);
}

void LeakReport::on_response(PyObject* loop) {
  if (!module_ || ++responses_ != static_cast<uint64_t>(cfg_->leak_report_warmup)) return;
  PyRef baseline = PyRef::steal(PyObject_GetAttrString(module_.get(), "baseline"));
  PyRef count = PyRef::steal(PyLong_FromUnsignedLongLong(responses_));
  if (!baseline || !count ||
      !call_ok(PyObject_CallMethod(loop, "call_soon", "OO", baseline.get(), count.get()))) {
    fail("baseline");
  }
}

void LeakReport::report() {
  if (!module_) return;
  PyRef module = std::move(module_);  // once
  PyRef lines = PyRef::steal(PyObject_CallMethod(module.get(), "report", "Ks",
                                                 static_cast<unsigned long long>(responses_),
                                                 cfg_->leak_report_dir.c_str()));
  if (!lines || !log_lines(lines.get())) fail("report");
}

void LeakReport::fail(const char* step) {
  std::string error = take_error();
  spdlog::warn("event=leak-report-failed step={} error={}", step, log::quote(error));
  module_.reset();
}

}  // namespace rotor::asgi
