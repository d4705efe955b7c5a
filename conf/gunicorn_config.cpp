#include "conf/gunicorn_config.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <array>
#include <charconv>

#include "conf/capture.hpp"
#include "conf/values.hpp"

namespace rotor::conf {
namespace {

// Runs the config as gunicorn does (exec of the file's code, or an import of python:module)
// and writes each module-level name to the result pipe as a TOML array: its Python type,
// whether it is set (Python's truth: gunicorn's defaults for what rotor ignores are falsy),
// then its value(s) as text. What the file itself prints goes to stderr, and so does a traceback;
// the result then carries a one-line summary instead.
constexpr std::string_view kEvaluator = R"PY(
import importlib, json, os, sys, traceback, types
result = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="backslashreplace")
os.dup2(2, 1)
def emit(key, *values):
    print(" = ".join([json.dumps(key, ensure_ascii=False),
                      "[" + ", ".join(json.dumps(str(v), ensure_ascii=False) for v in values) + "]"]),
          file=result)
def done():
    # Not sys.exit: a non-daemon thread the file started would keep the process alive.
    for f in (result, sys.stdout, sys.stderr):
        f.flush()
    os._exit(0)
spec = sys.argv[1]
sys.path.insert(0, os.getcwd())
try:
    if spec.startswith("python:"):
        names = vars(importlib.import_module(spec[len("python:"):]))
    else:
        names = {"__file__": os.path.abspath(spec), "__name__": "__config__"}
        with open(spec, "rb") as f:
            source = f.read()
        exec(compile(source, spec, "exec"), names)
except BaseException as e:
    tb = e.__traceback__.tb_next  # from the file's own frames on
    traceback.print_exception(type(e), e, tb)
    if isinstance(e, SyntaxError):
        line, what = e.lineno, f"SyntaxError: {e.msg}"
    else:
        line = None
        for frame in traceback.extract_tb(tb):
            if frame.filename == spec:
                line = frame.lineno
        what = traceback.format_exception_only(e)[-1].strip()
    emit("rotor:error", (f"line {line}: " if line else "") + what.replace("\n", " "))
    done()
for name, value in names.items():
    if name.startswith("_") or isinstance(value, types.ModuleType) or value is None:
        continue
    is_set = "1" if value else "0"
    if isinstance(value, bool):
        emit(name, "bool", is_set, "true" if value else "false")
    elif isinstance(value, (int, float, str)):
        emit(name, type(value).__name__, is_set, value)
    elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        emit(name, "list", is_set, *value)
    elif callable(value):
        emit(name, "callable", is_set)
    else:
        emit(name, type(value).__name__, is_set)
done()
)PY";

constexpr int kTimeoutMs = 60000;

// gunicorn's server hooks: functions it calls at points of a worker's life. rotor runs none.
constexpr std::array kHooks = {"on_starting", "on_reload",        "when_ready",   "pre_fork",
                               "post_fork",   "post_worker_init", "worker_int",   "worker_abort",
                               "pre_exec",    "pre_request",      "post_request", "child_exit",
                               "worker_exit", "nworkers_changed", "on_exit"};

// gunicorn settings without a command-line flag rotor knows, and without a meaning here.
constexpr std::array kOtherSettings = {"logconfig_dict",
                                       "logconfig_json",
                                       "secure_scheme_headers",
                                       "forwarder_headers",
                                       "header_map",
                                       "tmp_upload_dir",
                                       "permit_obsolete_folding",
                                       "casefold_http_method",
                                       "permit_unconventional_http_method",
                                       "permit_unconventional_http_version"};

struct PyValue {
  std::string type;  // bool, int, float, str, list, callable, or another Python type's name
  bool set = false;  // truthy in Python
  std::vector<std::string> items;
};

// Python's 18 for umask is 0o22: the option's parser reads digits as octal.
std::string as_octal(const std::string& decimal) {
  long long n = 0;
  auto [end, ec] = std::from_chars(decimal.data(), decimal.data() + decimal.size(), n);
  if (ec != std::errc() || end != decimal.data() + decimal.size() || n < 0) return decimal;
  char buf[32];
  return "0o" + std::string(buf, std::to_chars(buf, buf + sizeof buf, n, 8).ptr);
}

std::string a_python(const std::string& type) {
  bool vowel = !type.empty() && std::string_view("aeiou").find(type[0]) != std::string_view::npos;
  return (vowel ? "an " : "a ") + type;
}

// The value's texts for the option's parser; "" on success, else what was expected.
std::string texts_for(const Option& option, const PyValue& v, std::vector<std::string>& texts) {
  bool scalar = v.type == "bool" || v.type == "int" || v.type == "float" || v.type == "str";
  if (option.kind == Kind::kStringList) {
    if (v.type == "list") {
      texts = v.items;
    } else if (v.type == "str") {
      // gunicorn splits its address and path lists on commas; raw_env is one KEY=VALUE.
      texts = option.name == "env" ? v.items : split_list(v.items[0]);
    } else {
      return "expected a string or a list of strings, got " + a_python(v.type);
    }
    return "";
  }
  if (!scalar) return "expected a single value, got " + a_python(v.type);
  texts = v.items;
  if (option.kind == Kind::kOctal && v.type == "int") texts = {as_octal(v.items[0])};
  return "";
}

const Option* gunicorn_option(std::string_view setting) {
  for (const Option& option : options())
    if (option.gunicorn == setting) return &option;
  return nullptr;
}

const IgnoredFlag* ignored_setting(std::string_view setting) {
  for (const IgnoredFlag& flag : ignored_flags())
    if (!flag.setting.empty() && flag.setting == setting) return &flag;
  return nullptr;
}

template <size_t N>
bool among(const std::array<const char*, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

bool is_python_config(std::string_view spec) {
  return spec.starts_with("python:") || spec.ends_with(".py");
}

std::string python_config_layer(const PythonConfig& config, Layer& layer,
                                std::vector<std::string>& warnings) {
  const std::string& where = config.where;
  Captured run = capture({config.python, "-c", std::string(kEvaluator), config.spec}, config.env,
                         config.dir, kTimeoutMs);
  if (!run.error.empty()) return where + ": cannot run " + config.python + ": " + run.error;
  toml::table table;
  try {
    table = toml::parse(run.out);
  } catch (const toml::parse_error&) {
    run.exit_code = run.exit_code == 0 ? -1 : run.exit_code;
  }
  if (run.exit_code != 0)
    return where + ": " + config.python + " could not run it (exit " +
           std::to_string(run.exit_code) + "; its output is above)";
  if (const toml::array* error = table["rotor:error"].as_array()) {
    // The evaluator's own key, which no Python name can be.
    return where + ": " + error->at(0).value_or(std::string("failed"));
  }
  for (const auto& [key, node] : table) {
    const toml::array* array = node.as_array();
    if (!array || array->empty()) continue;
    PyValue value;
    value.type = array->at(0).value_or(std::string());
    value.set = array->size() > 1 && array->at(1).value_or(std::string()) == "1";
    for (size_t i = 2; i < array->size(); ++i)
      value.items.push_back(array->at(i).value_or(std::string()));
    std::string name(key.str());
    std::string named = where + ": " + name;
    if (const Option* option = gunicorn_option(name)) {
      Given given{option, named, {}};
      if (std::string problem = texts_for(*option, value, given.texts); !problem.empty())
        return named + ": " + problem;
      layer.push_back(std::move(given));
    } else if (const IgnoredFlag* flag = ignored_setting(name)) {
      if (!value.set) continue;  // gunicorn's default, or off: nothing is lost
      if (flag->refused) return named + ": " + std::string(flag->why);
      warnings.push_back(named + " is a gunicorn setting rotor ignores: " + std::string(flag->why));
    } else if (among(kHooks, name) && value.type == "callable") {
      warnings.push_back(named + " is a gunicorn server hook; rotor does not run hooks");
    } else if (among(kOtherSettings, name) && value.set) {
      warnings.push_back(named + " is a gunicorn setting rotor ignores");
    }
  }
  return "";
}

std::string split_command_line(std::string_view text, std::vector<std::string>& words) {
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (++i < text.size()) word += text[i];
    } else if (c == '\'') {
      size_t close = text.find('\'', i + 1);
      if (close == std::string_view::npos) return "unterminated ' quote";
      word.append(text.substr(i + 1, close - i - 1));
      i = close;
    } else if (c == '"') {
      // Inside double quotes a backslash escapes only $ ` " \ and a newline.
      for (++i;; ++i) {
        if (i >= text.size()) return "unterminated \" quote";
        if (text[i] == '"') break;
        if (text[i] == '\\' && i + 1 < text.size() &&
            std::string_view("$`\"\\\n").find(text[i + 1]) != std::string_view::npos)
          ++i;
        word += text[i];
      }
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return "";
}

}  // namespace rotor::conf
