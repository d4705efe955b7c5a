// Which Python rotor runs: the asgi worker's sys.executable, and the interpreter that evaluates
// a gunicorn.conf.py.
#pragma once

#include <string>

namespace rotor::conf {

// `python_option` (--python) when given, else $VIRTUAL_ENV/bin/python, else the python3 rotor
// was built against. Never a PATH lookup: the first python3 on PATH may be a different
// installation than the libpython rotor embeds.
std::string python_executable(const std::string& python_option, const char* virtual_env);

}  // namespace rotor::conf
