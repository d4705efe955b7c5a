// Refusing, before anything forks, an app whose Python is not one this rotor embeds: the
// interpreter is found as the asgi worker finds it, and its version is read from its
// virtualenv's pyvenv.cfg or asked of it in a subprocess; the master never loads Python.
#pragma once

#include <map>
#include <string>

#include "conf/python_version.hpp"

namespace rotor::conf {

// The CPython versions this build embeds (its build's python3 today).
std::vector<PythonVersion> embedded_pythons();

// "" when the app's Python (as python_executable() chooses it) is one rotor embeds; else one line
// saying which it is and why rotor will not run it: another version, a VIRTUAL_ENV that is no
// virtualenv, a pyvenv.cfg without a version, an interpreter that cannot tell its version.
std::string app_python_refusal(const std::string& python_option,
                               const std::map<std::string, std::string>& env);

}  // namespace rotor::conf
