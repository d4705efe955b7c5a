// The C API calls rotor uses that not every CPython from 3.9 to 3.13 has under one name: the
// newer spelling, provided for the older versions (and the renamed private ones for the newer).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030A0000
// 3.10 added these.
typedef enum { PYGEN_RETURN = 0, PYGEN_ERROR = -1, PYGEN_NEXT = 1 } PySendResult;

inline PyObject* Py_NewRef(PyObject* obj) {
  Py_INCREF(obj);
  return obj;
}

inline int PyModule_AddObjectRef(PyObject* module, const char* name, PyObject* value) {
  Py_XINCREF(value);
  int rc = PyModule_AddObject(module, name, value);
  if (rc < 0) Py_XDECREF(value);
  return rc;
}

// One step of a generator or coroutine (or any object with send()); its return value arrives
// as StopIteration's, which is what PyIter_Send spares its callers.
inline PySendResult PyIter_Send(PyObject* iter, PyObject* arg, PyObject** result) {
  PyObject* yielded = PyGen_CheckExact(iter) || PyCoro_CheckExact(iter)
                          ? _PyGen_Send(reinterpret_cast<PyGenObject*>(iter), arg)
                          : PyObject_CallMethod(iter, "send", "O", arg);
  if (yielded) {
    *result = yielded;
    return PYGEN_NEXT;
  }
  if (_PyGen_FetchStopIterationValue(result) == 0) return PYGEN_RETURN;
  *result = nullptr;
  return PYGEN_ERROR;
}
#endif

#if PY_VERSION_HEX < 0x030D0000
// 3.13 made PyLong_AsInt public and took _PyLong_AsInt away.
inline int rotor_long_as_int(PyObject* obj) {
  return _PyLong_AsInt(obj);
}
#else
inline int rotor_long_as_int(PyObject* obj) {
  return PyLong_AsInt(obj);
}
#endif
