// `rotor top`: the workers, refreshed every second, until q or Ctrl-C; --once prints one frame.
// The terminal is put back as it was however top ends.
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "supervisor/control_command.hpp"
#include "supervisor/ctl_client.hpp"
#include "supervisor/ctl_render.hpp"
#include "supervisor/scoreboard.hpp"

namespace rotor::ctl {
namespace {

constexpr int kRefreshMs = 1000;
const char* kUsage = "usage: rotor top [--socket PATH | -c FILE] [--once]";

volatile sig_atomic_t g_quit = 0;
void on_quit_signal(int) {
  g_quit = 1;
}

// Raw-ish keyboard input and the alternate screen while top runs; all undone on destruction.
class Terminal {
 public:
  Terminal() {
    interactive_ = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0;
    if (interactive_) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    std::fputs("\x1b[?1049h\x1b[?25l", stdout);  // alternate screen, cursor hidden
  }
  ~Terminal() {
    std::fputs("\x1b[?25h\x1b[?1049l", stdout);
    std::fflush(stdout);
    if (interactive_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  // Waits up to `ms` for a key; true when it asks to quit.
  bool quit_within(int ms) const {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    if (!interactive_) p.fd = -1;
    if (poll(&p, 1, ms) <= 0 || !(p.revents & POLLIN)) return g_quit != 0;
    char c = 0;
    if (::read(STDIN_FILENO, &c, 1) == 0) return false;
    return c == 'q' || c == 'Q' || g_quit;
  }

 private:
  termios saved_{};
  bool interactive_ = false;
};

// One request's reply, parsed; nothing with `error` set when there is none.
std::optional<json::Value> ask(const std::string& path, control::Verb verb, std::string* error) {
  control::Request r;
  r.verb = verb;
  std::string reply;
  if (exchange(path, control::to_line(r), &reply, error) != kExitDone) return std::nullopt;
  auto v = json::parse(reply, error);
  const json::Value* ok = v ? v->get("ok") : nullptr;
  if (!ok || !ok->boolean() || !*ok->boolean()) {
    if (error->empty()) *error = "rotor: the control server refused: " + reply;
    return std::nullopt;
  }
  return v;
}

struct Frame {
  std::string text;
  Counts counts;
};

std::optional<Frame> frame(const std::string& path, const Counts* previous, double interval_s,
                           bool live, std::string* error) {
  auto status = ask(path, control::Verb::kStatus, error);
  if (!status) return std::nullopt;
  auto workers = ask(path, control::Verb::kWorkers, error);
  if (!workers) return std::nullopt;
  const json::Value* list = workers->get("workers");
  json::Value none;
  Frame f;
  f.text = "rotor top  " + path + (live ? "  (q to quit)" : "") + "\n\n" +
           render_status(status->get("status") ? *status->get("status") : none) + "\n" +
           render_workers(list ? *list : none, previous, interval_s);
  f.counts = request_counts(list ? *list : none);
  return f;
}

int live(const std::string& path) {
  struct sigaction sa {};
  sa.sa_handler = on_quit_signal;
  sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: the wait for a key ends at once
  sigaction(SIGTERM, &sa, nullptr);
  std::string error;
  int code = kExitDone;
  {
    Terminal term;
    Counts previous;
    int64_t previous_ns = 0;
    while (!g_quit) {
      int64_t now = monotonic_ns();
      double interval = previous_ns ? static_cast<double>(now - previous_ns) / 1e9 : 0;
      auto f = frame(path, previous_ns ? &previous : nullptr, interval, true, &error);
      if (!f) {
        code = kExitNoServer;
        break;
      }
      previous = std::move(f->counts);
      previous_ns = now;
      std::fputs(("\x1b[H\x1b[2J" + f->text).c_str(), stdout);
      std::fflush(stdout);
      if (term.quit_within(kRefreshMs)) break;
    }
  }
  if (code != kExitDone) std::fprintf(stderr, "%s\n", error.c_str());
  return code;
}

}  // namespace

int top_main(const std::vector<std::string>& args, const conf::Environment& env) {
  std::string path, config_file;
  bool once = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--socket" || args[i] == "-s") && i + 1 < args.size()) {
      path = args[++i];
    } else if (args[i].rfind("--socket=", 0) == 0) {
      path = args[i].substr(9);
    } else if ((args[i] == "-c" || args[i] == "--config") && i + 1 < args.size()) {
      config_file = args[++i];
    } else if (args[i] == "--once") {
      once = true;
    } else if (args[i] == "-h" || args[i] == "--help") {
      std::printf("%s\n", kUsage);
      return kExitDone;
    } else {
      std::fprintf(stderr, "rotor top: unexpected argument: %s\n%s\n", args[i].c_str(), kUsage);
      return kExitUsage;
    }
  }
  std::string error;
  if (path.empty()) path = default_socket(config_file, env, &error);
  if (path.empty() && error.empty())
    error = "no socket: give --socket PATH, -c FILE or set ROTOR_CONTROL_SOCKET";
  if (!error.empty()) {
    std::fprintf(stderr, "rotor top: %s\n%s\n", error.c_str(), kUsage);
    return kExitUsage;
  }
  if (!once) return live(path);
  auto f = frame(path, nullptr, 0, false, &error);
  if (!f) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return kExitNoServer;
  }
  std::fputs(f->text.c_str(), stdout);
  return kExitDone;
}

}  // namespace rotor::ctl
