// The man page rotor(1) (--help-man), derived from the option table so it cannot drift from it.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "conf/load.hpp"
#include "conf/options.hpp"

namespace rotor::conf {

// Backslashes and hyphens escaped (a "-" may be typeset as a hyphen, and options must stay
// copyable), non-ASCII as \[uXXXX] (groff reads Latin-1 otherwise), and a line that would
// start with a control character guarded with \&.
std::string roff(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    bool line_start = out.empty() || out.back() == '\n';
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
      uint32_t code = c & (0x3f >> extra);
      for (int k = 0; k < extra && i + 1 < text.size(); ++k)
        code = code << 6 | (static_cast<unsigned char>(text[++i]) & 0x3f);
      char buf[16];
      snprintf(buf, sizeof buf, "\\[u%04X]", code);
      out += buf;
    }
  }
  return out;
}

namespace {

std::string bold(std::string_view text) {
  return "\\fB" + roff(text) + "\\fR";
}
std::string italic(std::string_view text) {
  return "\\fI" + roff(text) + "\\fR";
}

// ".TP" head: "-w, --workers INT|auto"; a positional is its name in italics.
std::string option_head(const Option& option) {
  if (!option.flags.starts_with('-')) return italic(option.flags);
  std::string head;
  std::vector<std::string> names = flag_names(option.flags);
  if (!option.negation.empty()) names.emplace_back(option.negation);
  for (const std::string& name : names) head += (head.empty() ? "" : ", ") + bold(name);
  if (option.kind != Kind::kBool && !option.metavar.empty()) head += " " + italic(option.metavar);
  return head;
}

std::string option_entry(const Option& option) {
  std::string out = ".TP\n" + option_head(option) + "\n" + roff(help_text(option)) + "\n";
  std::string facts;
  if (!option.default_value.empty()) facts += "Default: " + bold(option.default_value) + ". ";
  facts += "Environment: " + bold(env_name(option));
  if (!option.env_alias.empty()) facts += ", " + bold(option.env_alias);
  facts += ".";
  if (option.in_file) facts += " Config file key: " + bold(option.name) + ".";
  return out + ".br\n" + facts + "\n";
}

constexpr std::string_view kHeader = R"(.TH ROTOR 1 "" "rotor @VERSION@" "User Commands"
.SH NAME
rotor \- pre\-fork HTTP server supervisor for Python ASGI apps
.SH SYNOPSIS
.B rotor
[\fIOPTION\fR]... [\fIAPP\fR]
.br
.B rotor ctl
[\fB\-\-socket\fR \fIPATH\fR | \fB\-c\fR \fIFILE\fR] [\fB\-\-json\fR] \fICOMMAND\fR
.br
.B rotor top
[\fB\-\-socket\fR \fIPATH\fR | \fB\-c\fR \fIFILE\fR] [\fB\-\-once\fR]
.SH DESCRIPTION
.B rotor
runs Python ASGI apps as
.B gunicorn \-k uvicorn.workers.UvicornWorker
does, and replaces leaking workers without losing a request.
A master binds the sockets, forks workers that serve HTTP/1.1, counts each worker's requests in
a shared\-memory scoreboard, and replaces a worker after \fB\-\-max\-requests\fR plus a random
jitter, starting its successor before the old one stops accepting.
Two worker classes ship: \fBasgi\fR (embedded CPython serving \fIAPP\fR, given as
\fImodule\fR:\fIattribute\fR) and the native \fBhello\fR.
.PP
Every option below can be given on the command line, as an environment variable, or as a key in
a TOML file named by \fB\-c\fR; the command line wins over the environment, which wins over the
file.
gunicorn's flag names work, and a \fIgunicorn.conf.py\fR is read too.
.SH OPTIONS
)";

constexpr std::string_view kFooter = R"(.SH EXIT STATUS
.TP
.B 0
Stopped by a signal (TERM, INT, QUIT), or an action flag (\fB\-\-print\-config\fR,
\fB\-\-check\-config\fR, \fB\-\-version\fR, \fB\-\-help\fR) succeeded.
.TP
.B 1
A listener cannot be bound; the \fB\-\-pid\fR file names a running process or lies in a directory
rotor may not trust.
.TP
.B 2
A bad option, flag, TOML file or \fIgunicorn.conf.py\fR (one line naming it).
.TP
.B 3
The first generation of workers cannot boot.
.TP
.B 4
The app cannot be imported, or its attribute is missing; or the app's Python (\fB\-\-python\fR,
\fBVIRTUAL_ENV\fR) is another CPython version than the one rotor embeds.
.SH SIGNALS
Signals to the master:
.TP
.B TERM
Graceful stop: new connections are refused, workers drain, the master exits 0 within
\fB\-\-graceful\-timeout\fR.
.TP
.BR INT ", " QUIT
Fast stop: workers get a second, then SIGKILL.
.TP
.B HUP
Reload the configuration (file and environment) and roll every worker, spawn\-before\-retire;
for Python apps a new template imports the code first, and a failed import leaves the running
workers serving.
.TP
.BR TTIN " / " TTOU
One worker more / fewer.
.TP
.B USR1
Reopen the log files (master and workers).
.SH CONTROL
With \fB\-\-control\-socket\fR \fIPATH\fR the master serves
.B rotor ctl
on a unix socket (mode 0600); the client's socket is \fB\-\-socket\fR, else the
\fB\-\-control\-socket\fR of the \fB\-c\fR file and the environment, else
\fBROTOR_CONTROL_SOCKET\fR.
Its commands: \fBstatus\fR, \fBworkers\fR, \fBreload\fR (as HUP), \fBscale\fR \fIN\fR,
\fBadd\fR [\fIN\fR], \fBremove\fR [\fIN\fR], \fBrotate\fR \fIPID\fR|\fBall\fR
(spawn\-before\-retire, as a max\-requests rotation), \fBreopen\fR (as USR1), \fBstop\fR
[\fB\-\-fast\fR]; \fB\-\-json\fR prints the master's reply.
It exits 0 when done, 1 when no server answers at the socket or permission is refused, 2 for a
bad or refused command.
.B rotor top
shows the workers, refreshed every second (q quits); \fB\-\-once\fR prints one frame.
.SH ENVIRONMENT
Each option above reads \fBROTOR_\fR\fINAME\fR (its config file key in upper case); a list takes
its items separated by commas or spaces, or as a TOML array.
.TP
.B VIRTUAL_ENV
The default \fB\-\-python\fR is \fI$VIRTUAL_ENV/bin/python\fR.
.TP
.B GUNICORN_CMD_ARGS
Extra gunicorn command line arguments, above the config file and below rotor's own settings.
.TP
.BR LISTEN_FDS ", " LISTEN_PID
systemd socket activation: the passed sockets are served in place of \fB\-\-bind\fR.
.TP
.B NOTIFY_SOCKET
systemd readiness notification (Type=notify).
.SH FILES
.TP
.I ./gunicorn.conf.py
Read when no \fB\-c\fR file is named and it exists, as gunicorn does.
.TP
.I /usr/share/bash\-completion/completions/rotor
Bash completion, generated like this page (\fBrotor \-\-help\-bash\-completion\fR).
.SH SEE ALSO
.BR gunicorn (1)
)";

}  // namespace

std::string options_man_page() {
  std::string header(kHeader);
  header.replace(header.find("@VERSION@"), 9, ROTOR_VERSION);
  std::string out = header;
  for (const Option& option : options()) out += option_entry(option);
  for (const ActionFlag& flag : action_flags()) {
    if (flag.hidden) continue;
    std::string head;
    for (const std::string& name : flag_names(flag.flags))
      head += (head.empty() ? "" : ", ") + bold(name);
    out += ".TP\n" + head + "\n" + roff(flag.help) + "\n";
  }
  return out + std::string(kFooter);
}

}  // namespace rotor::conf
