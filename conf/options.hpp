// The option table: every setting is declared once, here. The CLI flags, TOML keys, environment
// names, --help, --print-config and the documented table are all derived from these declarations.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "conf/config.hpp"
#include "conf/load.hpp"

namespace rotor::conf {

enum class Kind {
  kInt,         // decimal integer within [min, max]
  kSeconds,     // finite non-negative double ("2", "0.5") within [min, max], <= kMaxSeconds
  kBool,        // true/false; a CLI flag without a value
  kString,      // free text (optionally checked by `check`)
  kStringList,  // repeatable flag; env splits on commas/whitespace; at least `min` items
  kChoice,      // one of `choices`
  kOctal,       // umask-style mode: "0", "022", "0o22", "0x12"; within [min, max]
};

// Where the parsed value lands. The alternative must match the kind (a unit test checks).
using Member = std::variant<int64_t Config::*, double Config::*, bool Config::*,
                            std::string Config::*, std::vector<std::string> Config::*>;

// An extra per-value check (e.g. bind address syntax): "" if fine, else "expected ...".
using Check = std::string (*)(std::string_view text);

inline constexpr double kUnbounded = std::numeric_limits<double>::infinity();

// Every duration (kSeconds) is at most a year, whatever its own `max`: durations become
// nanoseconds in int64_t (292 years) and milliseconds in uint64_t downstream, added to clock
// readings, and a value near those limits overflowed into "at once" (--graceful-timeout 1e10
// killed requests at TERM). Nothing an operator means is longer; 0 keeps meaning "none" where
// an option says so.
inline constexpr double kMaxSeconds = 365.0 * 24 * 3600;

struct Option {
  std::string_view name{};   // TOML key; the environment name is ROTOR_<NAME>
  std::string_view flags{};  // CLI11 names, "-w,--workers"; no dash = positional
  Kind kind = Kind::kString;
  std::string_view default_value{};  // as text, parsed like user input (lists: comma-separated)
  std::string_view metavar{};
  std::string_view help{};
  Member member{};
  double min = 0;  // numbers: lowest value; lists: fewest items
  double max = kUnbounded;
  std::vector<std::string_view> choices{};  // kChoice
  // kChoice: other spellings accepted for a choice (case-insensitive), {alias, choice}.
  std::vector<std::pair<std::string_view, std::string_view>> aliases{};
  // kInt: words that stand for a value outside [min, max] (case-insensitive), {word, value}.
  std::vector<std::pair<std::string_view, int64_t>> words{};
  Check check = nullptr;
  std::string_view env_alias{};  // a second, lower-precedence environment name
  std::string_view negation{};   // kBool: a CLI flag that sets it false ("--no-preload")
  bool in_file = true;           // false: not a TOML key (only --config itself)
  std::string_view gunicorn{};   // its setting's name in a gunicorn.conf.py, if gunicorn has it
};

// Table order is the order of --help, --print-config and the documented table.
const std::vector<Option>& options();
const Option* find_option(std::string_view name);

// Command-line-only flags that choose what to do instead of setting a value.
struct ActionFlag {
  std::string_view flags;
  Action action;
  std::string_view help;
  bool hidden = false;
};
const std::vector<ActionFlag>& action_flags();

// gunicorn and uvicorn flags that have no meaning for rotor: accepted on the command line with
// a warning, so that an existing gunicorn or uvicorn command line starts. Those whose silent
// absence would change what clients or the app get (TLS: plain HTTP where HTTPS was asked for)
// are refused, saying why.
struct IgnoredFlag {
  std::string_view flags;
  bool takes_value;
  std::string_view why;
  bool refused = false;
  std::string_view origin = "gunicorn";
  std::string_view setting{};  // gunicorn's name for it in a gunicorn.conf.py
};
const std::vector<IgnoredFlag>& ignored_flags();

std::string env_name(const Option& option);                   // "ROTOR_MAX_REQUESTS"
std::vector<std::string> flag_names(std::string_view flags);  // {"-w", "--workers"}
std::string cli_label(const Option& option);  // first long flag, or the positional's name
std::string help_text(const Option& option);  // help plus the choices, if any

}  // namespace rotor::conf
