// The app's Python and the plugin that serves it, chosen before anything forks: the interpreter
// is found as the asgi worker finds it, and its version is read from its virtualenv's pyvenv.cfg
// or asked of it in a subprocess; the master never loads Python.
#pragma once

#include <map>
#include <string>

#include "conf/python_version.hpp"

namespace rotor::conf {

// The version of the Python this build chose as the default (the first of ROTOR_PYTHONS).
PythonVersion default_python_version();

struct AppPython {
  std::string refusal;  // "" when rotor can serve it
  std::string plugin;   // then: the path of the plugin for its version
};

// The app's Python (`python_option`, else $VIRTUAL_ENV/bin/python, else the build's default)
// and its plugin, searched as plugin_dirs(env); else one line saying which Python it is and why
// rotor will not run it: no plugin for its version, a VIRTUAL_ENV that is no virtualenv, a
// pyvenv.cfg without a version, an interpreter that cannot tell its version.
AppPython app_python(const std::string& python_option,
                     const std::map<std::string, std::string>& env);

}  // namespace rotor::conf
