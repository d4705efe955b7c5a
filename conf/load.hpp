// Loading the configuration: defaults < config file (-c: TOML, or a gunicorn.conf.py) <
// GUNICORN_CMD_ARGS < environment (ROTOR_*, WEB_CONCURRENCY) < command line. Arguments and
// environment come in as values, so it is unit-tested and the master can run it again on HUP;
// it reads the config file (and runs a Python one in a subprocess).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.hpp"

namespace rotor::conf {

using Environment = std::map<std::string, std::string>;

// The exit code when the app's Python is not one rotor embeds: as a worker's app-load failure
// (gunicorn's APP_LOAD_ERROR), since it is the app's environment that cannot be served.
constexpr int kExitAppPython = 4;

enum class Action {
  kRun,          // start serving
  kPrintConfig,  // --print-config: print effective config as TOML, exit 0
  kCheckConfig,  // --check-config: validate, print "config ok", exit 0
  kVersion,      // --version
  kHelp,         // -h/--help
  kError,        // bad input: `message` is one line naming the option and the problem; exit 2
                 // (4 when the app's Python is not one rotor embeds)
};

struct LoadResult {
  Action action = Action::kRun;
  Config config;
  std::string message;                // help text, version, printed config, or the error line
  int exit_code = 0;                  // what main returns when action != kRun (2 for kError)
  std::vector<std::string> warnings;  // one line each, logged at startup
};

// args excludes argv[0]. env is the process environment (see environment_from()). base_dir is
// the directory rotor started in (relative config paths, ./gunicorn.conf.py), "" = the current.
LoadResult load(const std::vector<std::string>& args, const Environment& env,
                const std::string& base_dir = "");

Environment environment_from(char** envp);

// The effective configuration as TOML, every option present (what --print-config prints).
std::string to_toml(const Config& config);

// The documented option table (docs/configuration.md), derived from the option table (markdown).
std::string options_markdown();

// The man page rotor(1) (roff) and the bash completion script, derived from the option table.
std::string options_man_page();
std::string options_bash_completion();
std::string roff(std::string_view text);  // text as roff input, escaped

}  // namespace rotor::conf
