#include "supervisor/ctl_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "supervisor/control_command.hpp"
#include "supervisor/ctl_render.hpp"
#include "supervisor/scoreboard.hpp"

namespace rotor::ctl {
namespace {

constexpr int kReplyTimeoutMs = 10'000;
constexpr size_t kMaxReplyBytes = 16 << 20;

const char* kUsage =
    "usage: rotor ctl [--socket PATH | -c FILE] [--json] status | workers | reload | scale N | add "
    "[N] | "
    "remove [N] | rotate PID|all | reopen | stop [--fast]";

int usage(const std::string& why) {
  std::fprintf(stderr, "rotor ctl: %s\n%s\n", why.c_str(), kUsage);
  return kExitUsage;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string connect_error(const std::string& path, int err) {
  if (err == EACCES || err == EPERM) return "rotor: control socket " + path + ": permission denied";
  return "rotor: no rotor control server at " + path + " (" + std::strerror(err) + ")";
}

bool send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the reply's newline, EOF or the deadline.
bool read_line(int fd, std::string* reply) {
  int64_t deadline = monotonic_ns() + kReplyTimeoutMs * kNsPerMs;
  char buf[8192];
  while (reply->find('\n') == std::string::npos && reply->size() < kMaxReplyBytes) {
    int64_t left_ms = (deadline - monotonic_ns()) / kNsPerMs;
    pollfd p{fd, POLLIN, 0};
    if (left_ms <= 0 || poll(&p, 1, static_cast<int>(left_ms)) == 0) return false;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply->append(buf, static_cast<size_t>(n));
  }
  if (auto eol = reply->find('\n'); eol != std::string::npos) reply->resize(eol);
  return !reply->empty();
}

struct Options {
  std::string socket;
  std::string config_file;
  bool json = false;
  std::vector<std::string> words;
};

// Options before the command; the command's own words (stop --fast) are left to it.
std::string read_options(const std::vector<std::string>& args, Options& o) {
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--socket" || a == "-s") {
      if (i + 1 >= args.size()) return a + " needs a path";
      o.socket = args[++i];
    } else if (a.rfind("--socket=", 0) == 0) {
      o.socket = a.substr(9);
    } else if (a == "-c" || a == "--config") {
      if (i + 1 >= args.size()) return a + " needs a file";
      o.config_file = args[++i];
    } else if (a == "--json") {
      o.json = true;
    } else if (!a.empty() && a[0] == '-') {
      return "unknown option: " + a;
    } else {
      break;
    }
  }
  o.words.assign(args.begin() + static_cast<long>(i), args.end());
  return "";
}

}  // namespace

int exchange(const std::string& path, const std::string& line, std::string* reply,
             std::string* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    *error = "rotor: control socket path too long: " + path;
    return kExitNoServer;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0 || connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = connect_error(path, errno);
    return kExitNoServer;
  }
  if (!send_all(fd.get(), line + "\n") || !read_line(fd.get(), reply)) {
    *error = "rotor: the control server at " + path + " did not answer";
    return kExitNoServer;
  }
  return kExitDone;
}

std::string default_socket(const std::string& config_file, const conf::Environment& env,
                           std::string* error) {
  if (config_file.empty()) {
    auto it = env.find("ROTOR_CONTROL_SOCKET");
    return it == env.end() ? "" : it->second;
  }
  // --print-config: the file is read and checked as for a start, and nothing is started.
  conf::LoadResult res = conf::load({"-c", config_file, "--print-config"}, env);
  if (res.action == conf::Action::kError) {
    constexpr std::string_view kPrefix = "rotor: error: ";
    std::string_view m = res.message;
    if (m.starts_with(kPrefix)) m.remove_prefix(kPrefix.size());
    *error = std::string(m);
  }
  return res.config.control_socket;
}

int ctl_main(const std::vector<std::string>& args, const conf::Environment& env) {
  Options o;
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
    std::printf("%s\n", kUsage);
    return kExitDone;
  }
  if (std::string why = read_options(args, o); !why.empty()) return usage(why);
  std::string error;
  auto request = control::from_words(o.words, &error);
  if (!request) return usage(error);
  if (o.socket.empty()) o.socket = default_socket(o.config_file, env, &error);
  if (!error.empty()) return usage(error);
  if (o.socket.empty())
    return usage("no socket: give --socket PATH, -c FILE or set ROTOR_CONTROL_SOCKET");
  std::string reply;
  if (int code = exchange(o.socket, control::to_line(*request), &reply, &error); code) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return code;
  }
  auto parsed = json::parse(reply, &error);
  if (!parsed || !parsed->object()) {
    std::fprintf(stderr, "rotor ctl: the server's reply is not JSON: %s\n", error.c_str());
    return kExitNoServer;
  }
  const json::Value* ok = parsed->get("ok");
  bool done = ok && ok->boolean() && *ok->boolean();
  if (o.json) {
    std::printf("%s\n", reply.c_str());
  } else if (done) {
    std::fputs(render_reply(*request, *parsed).c_str(), stdout);
  }
  if (!done) {
    const json::Value* why = parsed->get("error");
    std::fprintf(stderr, "rotor ctl: refused: %s\n",
                 why && why->string() ? why->string()->c_str() : "no reason given");
    return kExitUsage;
  }
  return kExitDone;
}

}  // namespace rotor::ctl
