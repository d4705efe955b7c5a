// PyRef: the owner of one strong reference to a Python object (or of none), as the RAII
// handles for file descriptors own an fd. Move-only; it compiles to the Py_INCREF/Py_DECREF
// calls it replaces. Destroy or reset it only with the GIL held.
#pragma once

#include "workers/asgi/py_compat.hpp"

namespace rotor::asgi {

class PyRef {
 public:
  PyRef() = default;
  ~PyRef() { Py_XDECREF(obj_); }
  PyRef(PyRef&& other) noexcept : obj_(other.obj_) { other.obj_ = nullptr; }
  PyRef& operator=(PyRef&& other) noexcept {
    reset(other.release());
    return *this;
  }
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;

  // Takes over a new reference (what most of the C API returns); null stays null.
  static PyRef steal(PyObject* obj) { return PyRef(obj); }
  // Takes a reference of its own to a borrowed object.
  static PyRef borrow(PyObject* obj) {
    Py_XINCREF(obj);
    return PyRef(obj);
  }

  PyObject* get() const { return obj_; }
  explicit operator bool() const { return obj_ != nullptr; }
  // Hands the reference over (to a function that steals it, or to the caller).
  [[nodiscard]] PyObject* release() {
    PyObject* obj = obj_;
    obj_ = nullptr;
    return obj;
  }
  // Takes over `obj` (a new reference, or null) and drops the one held, in that order, as
  // Py_XSETREF does: what the old object's finalizer sees is already the new state.
  void reset(PyObject* obj = nullptr) {
    PyObject* old = obj_;
    obj_ = obj;
    Py_XDECREF(old);
  }

 private:
  explicit PyRef(PyObject* obj) : obj_(obj) {}
  PyObject* obj_ = nullptr;
};

// Drops the result of a call made for its effect; whether the call succeeded.
inline bool call_ok(PyObject* result) {
  Py_XDECREF(result);
  return result != nullptr;
}

// The pending exception, taken out of the error indicator (PyErr_Fetch) and owned: dropped at
// the end of the scope unless restore() makes it pending again.
struct FetchedError {
  FetchedError() { PyErr_Fetch(&type, &value, &traceback); }
  ~FetchedError() {
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
  }
  FetchedError(const FetchedError&) = delete;
  FetchedError& operator=(const FetchedError&) = delete;
  void normalize() { PyErr_NormalizeException(&type, &value, &traceback); }
  void restore() {
    PyErr_Restore(type, value, traceback);
    type = value = traceback = nullptr;
  }

  PyObject *type, *value, *traceback;
};

// Keeps the pending exception (if any) aside for a scope: what runs in it neither sees nor
// clears it, and it is pending again at the scope's end.
class ErrorAside {
 public:
  ErrorAside() { PyErr_Fetch(&type_, &value_, &traceback_); }
  ~ErrorAside() { PyErr_Restore(type_, value_, traceback_); }
  ErrorAside(const ErrorAside&) = delete;
  ErrorAside& operator=(const ErrorAside&) = delete;

 private:
  PyObject *type_, *value_, *traceback_;
};

}  // namespace rotor::asgi
