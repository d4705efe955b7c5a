#include "conf/uvicorn_flags.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>

#include "conf/options.hpp"

namespace rotor::conf {

namespace {

bool is_number(std::string_view text, long max) {
  long value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size() && value >= 0 &&
         value <= max;
}

bool names_bind(std::string_view arg) {
  return arg == "--bind" || arg.starts_with("--bind=") || arg.starts_with("-b");
}

bool among(std::string_view flags, std::string_view arg) {  // flags: "-w,--workers"
  std::vector<std::string> names = flag_names(flags);
  return std::find(names.begin(), names.end(), arg) != names.end();
}

// Whether `arg` is one of rotor's (or an ignored) flags whose value is the next argument, which
// must then pass through untouched however it looks.
bool takes_next_value(std::string_view arg) {
  if (!arg.starts_with('-')) return false;
  for (const Option& option : options()) {
    if (option.kind != Kind::kBool && among(option.flags, arg)) return true;
  }
  for (const IgnoredFlag& flag : ignored_flags()) {
    if (flag.takes_value && among(flag.flags, arg)) return true;
  }
  return false;
}

}  // namespace

std::string rewrite_uvicorn_flags(std::vector<std::string>& args) {
  std::optional<std::string> host, port;
  std::string uds, fd;
  std::vector<std::string> binds, kept;
  bool bind_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    bind_given = bind_given || names_bind(arg);
    if (takes_next_value(arg) && i + 1 < args.size()) {
      kept.emplace_back(arg);
      kept.push_back(args[++i]);
      continue;
    }
    if (arg == "--access-log" || arg == "--no-access-log") {
      kept.emplace_back("--access-logfile");
      kept.emplace_back(arg == "--access-log" ? "-" : "");
      continue;
    }
    std::string_view name = arg.substr(0, arg.find('='));
    if (name != "--host" && name != "--port" && name != "--uds" && name != "--fd") {
      kept.emplace_back(arg);
      continue;
    }
    std::string value;
    if (name.size() < arg.size()) {
      value = arg.substr(name.size() + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return std::string(name) + ": expected a value";
    }
    if (name == "--host") {
      if (value.empty()) return "--host: expected a host name or address";
      host = value;
    } else if (name == "--port") {
      if (!is_number(value, 65535)) return "--port: expected a port number, got '" + value + "'";
      port = value;
    } else if (name == "--uds") {
      if (value.empty()) return "--uds: expected a socket path";
      uds = value;
    } else {
      if (!is_number(value, 1 << 30))
        return "--fd: expected a file descriptor, got '" + value + "'";
      fd = value;
    }
  }
  // As uvicorn: a socket path, else a descriptor, else host and port; one of them.
  if (!uds.empty()) {
    binds.push_back("unix:" + uds);
  } else if (!fd.empty()) {
    binds.push_back("fd://" + fd);
  } else if (host || port) {
    std::string h = host.value_or("127.0.0.1");
    if (h.find(':') != std::string::npos && !h.starts_with('[')) h = "[" + h + "]";  // IPv6
    binds.push_back(h + ":" + port.value_or("8000"));
  }
  if (bind_given && !binds.empty()) {
    return "--bind and uvicorn's --host/--port/--uds/--fd both say where to listen; use one";
  }
  for (const std::string& b : binds) {
    kept.emplace_back("--bind");
    kept.push_back(b);
  }
  args = std::move(kept);
  return "";
}

}  // namespace rotor::conf
