// gunicorn's own ways of configuring, read as gunicorn reads them, so a deployment that moves
// from gunicorn keeps its settings: a Python config file (-c gunicorn.conf.py, -c
// python:module, or ./gunicorn.conf.py when no config file is named) and GUNICORN_CMD_ARGS.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "conf/given.hpp"
#include "conf/load.hpp"

namespace rotor::conf {

// The file gunicorn reads from its working directory when no config file is named.
inline constexpr std::string_view kGunicornDefaultConfig = "gunicorn.conf.py";

// "*.py" or "python:module.name": a gunicorn config, not a TOML file.
bool is_python_config(std::string_view spec);

struct PythonConfig {
  std::string spec;    // as given: a path (relative to `dir`) or python:module
  std::string where;   // names it in messages
  std::string python;  // the interpreter that runs it
  Environment env;     // its environment (os.environ in the file)
  std::string dir;     // its working directory, first on its sys.path; "" = the current one
};

// Runs the file in a Python subprocess (the master never starts an interpreter) and maps its
// module-level names that are gunicorn settings onto the option table (Option::gunicorn). A
// gunicorn setting rotor ignores, or a server hook, is a warning; any other name is the file's
// own helper (an import, a computed value) and is skipped, as gunicorn does. "" on success,
// else the error line.
std::string python_config_layer(const PythonConfig& config, Layer& layer,
                                std::vector<std::string>& warnings);

// Splits a command line held in one string (GUNICORN_CMD_ARGS) as a POSIX shell would: blanks
// separate words, quotes and backslashes escape, nothing is expanded. "" on success, else why
// not (an unterminated quote).
std::string split_command_line(std::string_view text, std::vector<std::string>& words);

}  // namespace rotor::conf
