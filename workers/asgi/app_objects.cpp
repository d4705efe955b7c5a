#include "workers/asgi/app_objects.hpp"

namespace rotor::asgi {

extern const char* const kBridgeSource;  // workers/asgi/bridge.py, compiled in

bool load_bridge(AppObjects& py) {
  PyRef code = PyRef::steal(Py_CompileString(kBridgeSource, "rotor/bridge.py", Py_file_input));
  if (!code) return false;
  py.bridge = PyRef::steal(PyImport_ExecCodeModule("_rotor_bridge", code.get()));
  code.reset();
  if (!py.bridge) return false;
  PyObject* bridge = py.bridge.get();
  py.run = PyRef::steal(PyObject_GetAttrString(bridge, "run"));
  py.failed = PyRef::steal(PyObject_GetAttrString(bridge, "failed"));
  py.returned = PyRef::steal(PyObject_GetAttrString(bridge, "returned"));
  py.carry = PyRef::steal(PyObject_GetAttrString(bridge, "_carry"));
  py.websocket = PyRef::steal(PyObject_GetAttrString(bridge, "WebSocket"));
  py.run_websocket = PyRef::steal(PyObject_GetAttrString(bridge, "run_websocket"));
  return py.run && py.failed && py.returned && py.carry && py.websocket && py.run_websocket;
}

}  // namespace rotor::asgi
