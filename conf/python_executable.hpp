// Which Python rotor runs: the asgi worker's sys.executable, and the interpreter that evaluates
// a gunicorn.conf.py.
#pragma once

#include <string>

namespace rotor::conf {

// `python_option` (--python) when given, else $VIRTUAL_ENV/bin/python, else the python of the
// virtualenv rotor is installed in (a wheel put it in VENV/bin), else the python3 rotor was built
// against. Never a PATH lookup: the first python3 on PATH may be a different installation than
// the libpython rotor embeds.
std::string python_executable(const std::string& python_option, const char* virtual_env);

// What chose that Python, for messages: "--python", "VIRTUAL_ENV" or "the virtualenv rotor is in".
std::string python_source(const std::string& python_option, const char* virtual_env);

// `bin_dir`/python when `bin_dir` is the bin directory of a virtualenv (its parent holds
// pyvenv.cfg and the python is executable), else "".
std::string venv_python_in(const std::string& bin_dir);

}  // namespace rotor::conf
