// Layering: every source (defaults, TOML file, environment, command line) is first turned into
// raw text per option, then applied in precedence order through the one parser per kind
// (conf/values.cpp). Sources never parse values themselves, so they cannot disagree.
#include "conf/load.hpp"

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/app_python.hpp"
#include "conf/given.hpp"
#include "conf/gunicorn_config.hpp"
#include "conf/options.hpp"
#include "conf/python_executable.hpp"
#include "conf/uvicorn_flags.hpp"
#include "conf/values.hpp"

namespace rotor::conf {
namespace {

const std::string kErrorPrefix = "rotor: error: ";

// Quoted for an error line: control characters (a CR LF in a --header value) are escaped, so
// the message stays one line.
std::string in_quotes(std::string_view text) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      out += c;
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out + "'";
}

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

LoadResult failure(std::string message, int exit_code = 2) {
  LoadResult result;
  result.action = Action::kError;
  result.exit_code = exit_code;
  result.message = kErrorPrefix + one_line(std::move(message));
  return result;
}

// "" on success, else the error message (without the prefix).
std::string apply(const Given& given, Config& config) {
  const Option& option = *given.option;
  if (option.kind == Kind::kStringList && given.texts.size() < option.min) {
    std::string joined;
    for (const std::string& text : given.texts) joined += (joined.empty() ? "" : ",") + text;
    return given.where + ": expected at least one value, got " + in_quotes(joined);
  }
  std::vector<Value> values;
  for (const std::string& text : given.texts) {
    Parsed parsed = parse_value(option, text);
    if (!parsed.error.empty())
      return given.where + ": " + parsed.error + ", got " + in_quotes(text);
    values.push_back(std::move(parsed.value));
  }
  assign(option, values, config);
  return "";
}

Layer defaults_layer() {
  Layer layer;
  for (const Option& option : options()) {
    std::vector<std::string> texts{std::string(option.default_value)};
    if (option.kind == Kind::kStringList) texts = split_list(option.default_value);
    layer.push_back({&option, "default of " + std::string(option.name), texts});
  }
  return layer;
}

// A list variable is separated by commas or spaces, or is a TOML array when its items hold
// them: ROTOR_HEADER='["Cache-Control: no-store, max-age=0"]'. An array is a '[' followed by a
// quote or ']': ROTOR_BIND='[::1]:8000' stays an IPv6 bind.
std::string list_texts(const std::string& text, std::vector<std::string>& out) {
  size_t open = text.find_first_not_of(" \t");
  size_t next = open == std::string::npos ? open : text.find_first_not_of(" \t", open + 1);
  bool is_array = open != std::string::npos && text[open] == '[' && next != std::string::npos &&
                  (text[next] == '"' || text[next] == '\'' || text[next] == ']');
  if (!is_array) {
    out = split_list(text);
    return "";
  }
  constexpr std::string_view kExpected = "expected a TOML array of strings, like [\"a b\", \"c\"]";
  try {
    toml::table table = toml::parse("v = " + text);
    const toml::array* array = table["v"].as_array();
    if (!array) return std::string(kExpected);
    for (const toml::node& item : *array) {
      std::optional<std::string> s = item.value<std::string>();
      if (!s) return std::string(kExpected);
      out.push_back(std::move(*s));
    }
  } catch (const toml::parse_error&) {
    return std::string(kExpected);
  }
  return "";
}

Layer environment_layer(const Environment& env, std::string& problem) {
  Layer layer;
  for (const Option& option : options()) {
    std::string name = env_name(option);
    auto it = env.find(name);
    if (it == env.end() && !option.env_alias.empty()) {
      name = option.env_alias;
      it = env.find(name);
    }
    if (it == env.end()) continue;
    std::vector<std::string> texts{it->second};
    if (option.kind == Kind::kStringList) {
      texts.clear();
      if (std::string p = list_texts(it->second, texts); !p.empty()) {
        problem = name + ": " + p + ", got " + in_quotes(it->second);
        return {};
      }
    }
    layer.push_back({&option, name, texts});
  }
  return layer;
}

// --- TOML file ---

std::string position(const std::string& path, const toml::source_region& source) {
  return path + ":" + std::to_string(source.begin.line) + ":" + std::to_string(source.begin.column);
}

std::string a_toml_type(toml::node_type type) {
  switch (type) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

std::string expected_toml_type(const Option& option) {
  switch (option.kind) {
    case Kind::kInt:
      return option.words.empty() ? "an integer"
                                  : "an integer or \"" + std::string(option.words[0].first) + "\"";
    case Kind::kSeconds:
      return "a number";
    case Kind::kBool:
      return "a boolean";
    case Kind::kOctal:
      return "an integer like 0o22 or a string like \"022\"";
    case Kind::kStringList:
      return "a string or an array of strings";
    case Kind::kString:
    case Kind::kChoice:
      break;
  }
  return "a string";
}

// Keeps the integer's TOML spelling (0o22, 0x12) so the umask parser sees what was written.
std::string integer_text(const toml::value<int64_t>& node) {
  int base = 10;
  std::string prefix;
  if (!!(node.flags() & toml::value_flags::format_as_octal)) base = 8, prefix = "0o";
  if (!!(node.flags() & toml::value_flags::format_as_hexadecimal)) base = 16, prefix = "0x";
  if (!!(node.flags() & toml::value_flags::format_as_binary)) base = 2, prefix = "0b";
  char buf[72];
  auto end = std::to_chars(buf, buf + sizeof buf, node.get(), base).ptr;
  return prefix + std::string(buf, end);
}

bool is_word(const Option& option, std::string_view text) {
  auto same = [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; };
  for (auto [word, value] : option.words)
    if (std::equal(text.begin(), text.end(), word.begin(), word.end(), same)) return true;
  return false;
}

// The node as text for parse_value, after checking its TOML type; false if the type is wrong.
bool toml_text(const Option& option, const toml::node& node, std::string& text) {
  const auto* string = node.as_string();
  const auto* integer = node.as_integer();
  const auto* floating = node.as_floating_point();
  const auto* boolean = node.as_boolean();
  char buf[32];
  switch (option.kind) {
    case Kind::kInt:  // workers = 4 or workers = "auto"; "4" is a string, refused
      if (integer) text = std::to_string(integer->get());
      if (string && is_word(option, string->get())) text = string->get();
      return integer || (string && is_word(option, string->get()));
    case Kind::kSeconds:  // 30 and 30.0 are both fine
      if (integer) text = std::to_string(integer->get());
      if (floating) text.assign(buf, std::to_chars(buf, buf + sizeof buf, floating->get()).ptr);
      return integer || floating;
    case Kind::kBool:
      if (boolean) text = boolean->get() ? "true" : "false";
      return boolean;
    case Kind::kOctal:  // umask = 0o22 or umask = "022"
      if (integer) text = integer_text(*integer);
      if (string) text = string->get();
      return integer || string;
    case Kind::kString:
    case Kind::kStringList:
    case Kind::kChoice:
      break;
  }
  if (string) text = string->get();
  return string;
}

std::string toml_given(const std::string& path, const Option& option, const toml::node& node,
                       Given& given) {
  given = {&option, position(path, node.source()) + ": " + std::string(option.name), {}};
  auto wrong_type = [&](const toml::node& n) {
    return position(path, n.source()) + ": " + std::string(option.name) + ": expected " +
           expected_toml_type(option) + ", got " + a_toml_type(n.type());
  };
  const toml::array* array = node.as_array();
  if (option.kind == Kind::kStringList && array) {
    for (const toml::node& item : *array) {
      if (!item.is_string()) return wrong_type(item);
      given.texts.push_back(item.as_string()->get());
    }
    return "";
  }
  std::string text;
  if (!toml_text(option, node, text)) return wrong_type(node);
  given.texts.push_back(text);
  return "";
}

// A config file is small: a larger one, or one that is not a regular file (/dev/zero, a FIFO
// that blocks, a directory), is a mistake, refused before it is read.
constexpr size_t kMaxConfigBytes = 1 << 20;

// Opens `path` as a config file; -1 with `problem` set when it is not one.
int open_config_file(const std::string& path, std::string& problem) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    problem = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    problem = "not a regular file";
  } else if (static_cast<uint64_t>(st.st_size) > kMaxConfigBytes) {
    problem = "larger than 1 MiB";
  } else {
    return fd;
  }
  if (fd >= 0) ::close(fd);
  return -1;
}

std::string read_file(const std::string& path, std::string& content) {
  std::string problem;
  int fd = open_config_file(path, problem);
  if (fd < 0) return problem;
  char buf[4096];
  ssize_t n = 0;
  // Bounded also while it is read: the file may grow meanwhile.
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && content.size() <= kMaxConfigBytes) {
    content.append(buf, static_cast<size_t>(n));
  }
  if (n < 0) problem = std::strerror(errno);
  if (content.size() > kMaxConfigBytes) problem = "larger than 1 MiB";
  ::close(fd);
  return problem;
}

// Reads the TOML file named by `from` (the --config or ROTOR_CONFIG given). "" on success.
std::string file_layer(const Given& from, Layer& layer) {
  const std::string& path = from.texts.back();
  std::string content;
  if (std::string problem = read_file(path, content); !problem.empty())
    return from.where + ": cannot read " + in_quotes(path) + ": " + problem;
  toml::table table;
  try {
    table = toml::parse(content, std::string_view(path));
  } catch (const toml::parse_error& e) {
    return position(path, e.source()) + ": invalid TOML: " + std::string(e.description());
  }
  // Report problems in file order, not the table's (alphabetical) order.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (const auto& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first->source().begin < b.first->source().begin;
  });
  for (const auto& [key, node] : entries) {
    const Option* option = find_option(key->str());
    if (!option || !option->in_file) {
      std::string hint;
      std::string underscored(key->str());
      std::replace(underscored.begin(), underscored.end(), '-', '_');
      if (underscored != key->str() && find_option(underscored))
        hint = " (did you mean " + in_quotes(underscored) + "?)";
      return position(path, key->source()) + ": unknown option " + in_quotes(key->str()) + hint;
    }
    Given given;
    if (std::string problem = toml_given(path, *option, *node, given); !problem.empty())
      return problem;
    layer.push_back(std::move(given));
  }
  return "";
}

// --- Command line ---

struct CommandLine {
  Layer layer;
  std::vector<std::string> warnings;
  const ActionFlag* action = nullptr;  // the first action flag given, in table order
  std::string help;
};

std::string option_description(const Option& option) {
  std::string text = help_text(option);
  if (!option.default_value.empty())
    text += " [default: " + std::string(option.default_value) + "]";
  return text;
}

// CLI11 only collects raw strings here; parsing and validation happen in apply().
std::string parse_command_line(std::vector<std::string> args, CommandLine& out) {
  if (std::string problem = rewrite_uvicorn_flags(args); !problem.empty()) return problem;
  CLI::App app("rotor: a pre-fork HTTP server supervisor.", "rotor");
  app.set_help_flag();  // -h/--help is one of our action flags, not CLI11's exception
  app.get_formatter()->column_width(36);
  app.footer(
      "Every option can also be set in the TOML file (-c) under its snake_case name (workers,\n"
      "max_requests, ...) or in the environment as ROTOR_<NAME> (ROTOR_MAX_REQUESTS).\n"
      "A gunicorn.conf.py (-c, or ./gunicorn.conf.py) and GUNICORN_CMD_ARGS are read too.\n"
      "Precedence: defaults < file < GUNICORN_CMD_ARGS < environment < command line.");

  const std::vector<Option>& table = options();
  std::vector<std::vector<std::string>> lists(table.size());
  std::vector<std::string> scalars(table.size());
  std::vector<CLI::Option*> cli(table.size());
  std::vector<CLI::Option*> negated(table.size(), nullptr);
  for (size_t i = 0; i < table.size(); ++i) {
    const Option& option = table[i];
    std::string flags(option.flags);
    std::string description = option_description(option);
    if (option.kind == Kind::kBool) {
      cli[i] = app.add_flag(flags)->description(description);
      if (!option.negation.empty()) {
        negated[i] = app.add_flag(std::string(option.negation))
                         ->description("Sets " + cli_label(option) + " off.")
                         ->excludes(cli[i]);
      }
    } else if (option.kind == Kind::kStringList) {
      cli[i] = app.add_option(flags, lists[i], description)
                   ->option_text(std::string(option.metavar))
                   ->allow_extra_args(false);  // one value per occurrence: -b A -b B, not -b A B
    } else {
      cli[i] = app.add_option(flags, scalars[i], description)
                   ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // as argparse does
      if (cli[i]->get_positional())
        cli[i]->type_name("");  // shown by its name alone, not "APP TEXT"
      else
        cli[i]->option_text(std::string(option.metavar));
    }
  }
  std::vector<CLI::Option*> actions;
  for (const ActionFlag& flag : action_flags())
    actions.push_back(app.add_flag(std::string(flag.flags))
                          ->description(std::string(flag.help))
                          ->group(flag.hidden ? "" : "Actions"));

  std::vector<std::string> ignored_values(ignored_flags().size());
  std::vector<CLI::Option*> ignored;
  for (size_t i = 0; i < ignored_flags().size(); ++i) {
    const IgnoredFlag& flag = ignored_flags()[i];
    ignored.push_back(flag.takes_value
                          ? app.add_option(std::string(flag.flags), ignored_values[i])->group("")
                          : app.add_flag(std::string(flag.flags))->group(""));
  }

  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 consumes from the back
  try {
    app.parse(reversed);
  } catch (const CLI::ExtrasError&) {
    std::string extra = app.remaining().empty() ? "" : app.remaining().front();
    return (extra.starts_with('-') ? "unknown option " : "unexpected argument ") + in_quotes(extra);
  } catch (const CLI::ArgumentMismatch& e) {
    // CLI11 says "--workers: 1 required TEXT missing"; keep the name, say it plainly.
    std::string what = e.what();
    return what.substr(0, what.find(':')) + ": expected a value";
  } catch (const CLI::ParseError& e) {
    return e.what();
  }

  for (size_t i = 0; i < actions.size() && !out.action; ++i)
    if (actions[i]->count() > 0) out.action = &action_flags()[i];
  if (out.action && out.action->action == Action::kHelp) out.help = app.help();
  for (size_t i = 0; i < ignored.size(); ++i) {
    if (ignored[i]->count() == 0) continue;
    const IgnoredFlag& flag = ignored_flags()[i];
    if (flag.refused) return flag_names(flag.flags).back() + ": " + std::string(flag.why);
    out.warnings.push_back(flag_names(flag.flags).back() + " is a " + std::string(flag.origin) +
                           " option rotor ignores: " + std::string(flag.why));
  }
  for (size_t i = 0; i < table.size(); ++i) {
    if (negated[i] && negated[i]->count() > 0) {
      out.layer.push_back({&table[i], std::string(table[i].negation), {"false"}});
      continue;
    }
    if (cli[i]->count() == 0) continue;
    std::vector<std::string> texts = lists[i];
    if (table[i].kind == Kind::kBool) texts = {"true"};
    if (table[i].kind != Kind::kBool && table[i].kind != Kind::kStringList) texts = {scalars[i]};
    out.layer.push_back({&table[i], cli_label(table[i]), texts});
  }
  return "";
}

const Given* find_given(const Layer& layer, std::string_view name) {
  for (const Given& given : layer)
    if (given.option->name == name) return &given;
  return nullptr;
}

// A relative config path is relative to the directory rotor started in, also on a HUP after
// --chdir.
std::string in_dir(const std::string& dir, const std::string& path) {
  if (dir.empty() || path.empty() || path[0] == '/') return path;
  return dir + "/" + path;
}

// The interpreter that runs a gunicorn.conf.py: --python from the command line or environment
// (the file cannot choose the interpreter that reads it), else the asgi worker's default.
std::string python_for(const Layer& command_line, const Layer& environment,
                       const Environment& env) {
  const Given* given = find_given(command_line, "python");
  if (!given) given = find_given(environment, "python");
  auto venv = env.find("VIRTUAL_ENV");
  return python_executable(given ? given->texts.back() : "",
                           venv == env.end() ? nullptr : venv->second.c_str());
}

std::vector<std::string> cross_check(const Config& config) {
  std::vector<std::string> warnings;
  if (config.max_requests_jitter > 0 && config.max_requests == 0)
    warnings.push_back("max_requests_jitter has no effect while max_requests is 0 (off)");
  if (config.max_lifetime_jitter > 0 && config.max_lifetime == 0)
    warnings.push_back("max_lifetime_jitter has no effect while max_lifetime is 0 (off)");
  if (!config.app.empty() && config.worker_class == "hello")
    warnings.push_back("the hello worker class serves its own response; APP " +
                       in_quotes(config.app) + " is ignored");
  return warnings;
}

// -h and the hidden flags that print the documents generated from the option table.
std::string help_message(std::string_view flag, const std::string& help) {
  if (flag == "--help-options-markdown") return options_markdown();
  if (flag == "--help-man") return options_man_page();
  if (flag == "--help-bash-completion") return options_bash_completion();
  return help;
}

}  // namespace

LoadResult load(const std::vector<std::string>& args, const Environment& env,
                const std::string& base_dir) {
  CommandLine command_line;
  if (std::string problem = parse_command_line(args, command_line); !problem.empty())
    return failure(problem);

  LoadResult result;
  if (const ActionFlag* flag = command_line.action) {
    if (flag->action == Action::kHelp) {
      result.action = Action::kHelp;
      result.message = help_message(flag->flags, command_line.help);
      return result;
    }
    if (flag->action == Action::kVersion) {
      result.action = Action::kVersion;
      result.message = "rotor " ROTOR_VERSION;
      return result;
    }
  }

  std::string env_problem;
  Layer environment = environment_layer(env, env_problem);
  if (!env_problem.empty()) return failure(env_problem);
  // gunicorn's extra arguments from its environment: above its config file, below our own.
  CommandLine gunicorn_args;
  if (auto it = env.find("GUNICORN_CMD_ARGS"); it != env.end()) {
    std::vector<std::string> words;
    std::string problem = split_command_line(it->second, words);
    if (problem.empty()) problem = parse_command_line(words, gunicorn_args);
    if (!problem.empty()) return failure("GUNICORN_CMD_ARGS: " + problem);
    for (Given& given : gunicorn_args.layer) given.where = "GUNICORN_CMD_ARGS: " + given.where;
    for (std::string& w : gunicorn_args.warnings) w = "GUNICORN_CMD_ARGS: " + w;
  }

  Layer file;
  std::vector<std::string> file_warnings;
  const Given* config_file = find_given(command_line.layer, "config");
  if (!config_file) config_file = find_given(environment, "config");
  if (!config_file) config_file = find_given(gunicorn_args.layer, "config");
  // As gunicorn: with no config file named, ./gunicorn.conf.py is read when it exists.
  Given default_file{find_option("config"),
                     std::string(kGunicornDefaultConfig),
                     {std::string(kGunicornDefaultConfig)}};
  if (!config_file && access(in_dir(base_dir, default_file.texts[0]).c_str(), F_OK) == 0) {
    config_file = &default_file;
    file_warnings.push_back("read ./" + default_file.where +
                            " (gunicorn's default config file); name another with -c");
  }
  if (config_file && !config_file->texts.back().empty()) {
    const std::string& spec = config_file->texts.back();
    std::string problem;
    if (is_python_config(spec)) {
      PythonConfig py{spec, spec, python_for(command_line.layer, environment, env), env, base_dir};
      std::string path = in_dir(base_dir, spec);
      std::string unreadable;
      int fd = spec.starts_with("python:") ? -2 : open_config_file(path, unreadable);
      if (fd == -1)
        return failure(config_file->where + ": cannot read " + in_quotes(spec) + ": " + unreadable);
      if (fd >= 0) ::close(fd);
      problem = python_config_layer(py, file, file_warnings);
    } else {
      Given resolved = *config_file;
      resolved.texts.back() = in_dir(base_dir, spec);
      problem = file_layer(resolved, file);
    }
    if (!problem.empty()) return failure(problem);
  }

  for (const Layer& layer :
       {defaults_layer(), file, gunicorn_args.layer, environment, command_line.layer}) {
    for (const Given& given : layer) {
      if (std::string problem = apply(given, result.config); !problem.empty())
        return failure(problem);
    }
  }
  // auto: serve the app when one is given.
  if (result.config.worker_class == "auto") {
    result.config.worker_class = result.config.app.empty() ? "hello" : "asgi";
  }
  if (result.config.worker_class == "asgi" && result.config.app.empty()) {
    return failure("APP: the asgi worker class needs an application, as module:attribute");
  }
  // Refused before anything forks, and by --check-config alike (it would refuse the start).
  bool will_start = !command_line.action || command_line.action->action == Action::kCheckConfig;
  if (result.config.worker_class == "asgi" && will_start) {
    AppPython python = app_python(result.config.python, env);
    if (!python.refusal.empty()) return failure(python.refusal, kExitAppPython);
    result.config.python_plugin = python.plugin;
  }
  result.warnings = cross_check(result.config);
  for (const auto* more : {&file_warnings, &gunicorn_args.warnings, &command_line.warnings})
    result.warnings.insert(result.warnings.end(), more->begin(), more->end());

  if (command_line.action) result.action = command_line.action->action;
  if (result.action == Action::kPrintConfig) result.message = to_toml(result.config);
  if (result.action == Action::kCheckConfig) result.message = "rotor: config ok";
  return result;
}

Environment environment_from(char** envp) {
  Environment env;
  for (char** entry = envp; entry && *entry; ++entry) {
    std::string_view text(*entry);
    size_t eq = text.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return env;
}

}  // namespace rotor::conf
