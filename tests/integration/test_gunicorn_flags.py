"""Every gunicorn 20.1 setting is known to rotor: implemented (--reuse-port, --log-syslog*),
accepted with a warning where it has no meaning here, or refused with the reason where ignoring
it would be unsafe. The walk takes the settings from gunicorn itself (Debian's gunicorn)."""
import errno
import grp
import json
import os
import pwd
import re
import signal
import socket
import subprocess

import httpx
import pytest

from conftest import BIN, wait_for

# What rotor refuses, and why: serving without them would not be what the operator asked for.
REFUSED = {
    "--paste": "PasteDeploy", "--paster": "PasteDeploy", "--paste-global": "PasteDeploy",
    "--strip-header-spaces": "never strips spaces",
    "--tolerate-dangerous-framing": "never tolerates ambiguous framing",
    "--certfile": "TLS", "--keyfile": "TLS", "--ca-certs": "TLS", "--ssl-version": "TLS",
    "--cert-reqs": "TLS", "--ciphers": "TLS", "--suppress-ragged-eofs": "TLS",
    "--do-handshake-on-connect": "TLS",
}
# Accepted with a warning: the list of flags that stopped rotor as unknown.
WARNED = {"--no-sendfile", "--spew", "--logger-class", "--reload-extra-file",
          "--disable-redirect-access-to-syslog"}
IMPLEMENTED = {"--reuse-port", "--log-syslog", "--log-syslog-to", "--log-syslog-prefix",
               "--log-syslog-facility", "--statsd-host", "--statsd-prefix", "--dogstatsd-tags"}
# Actions, not settings.
ACTIONS = {"check_config", "print_config", "config"}

SETTINGS_SCRIPT = """
import json
from gunicorn.config import KNOWN_SETTINGS
print(json.dumps([{"name": s.name, "cli": s.cli, "action": s.action,
                   "validator": s.validator.__name__, "const": getattr(s, "const", None)}
                  for s in KNOWN_SETTINGS if s.cli]))
"""


def gunicorn_settings():
    """gunicorn's settings that have command-line flags, from gunicorn's own table."""
    out = subprocess.run(["/usr/bin/python3", "-c", SETTINGS_SCRIPT], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, f"Debian's gunicorn (python3-gunicorn) is needed:\n{out.stderr}"
    settings = json.loads(out.stdout)
    assert len(settings) > 60, len(settings)  # 66 in gunicorn 20.1
    return settings


def plausible_value(setting, tmp_path):
    """A value gunicorn would accept for the setting, as command-line text."""
    by_name = {
        "bind": "127.0.0.1:0", "worker_class": "uvicorn.workers.UvicornWorker",
        "chdir": str(tmp_path), "user": pwd.getpwuid(os.getuid()).pw_name,
        "group": grp.getgrgid(os.getgid()).gr_name, "umask": "0o22",
        "pidfile": str(tmp_path / "rotor.pid"), "worker_tmp_dir": str(tmp_path),
        "raw_env": "A=B", "errorlog": str(tmp_path / "error.log"),
        "accesslog": str(tmp_path / "access.log"), "loglevel": "info",
        "access_log_format": "%(h)s %(r)s", "syslog_addr": "udp://localhost:514",
        "syslog_facility": "local0", "statsd_host": "localhost:8125",
        "dogstatsd_tags": "env:prod", "pythonpath": str(tmp_path),
        "forwarded_allow_ips": "127.0.0.1", "proxy_allow_ips": "127.0.0.1",
        "reload_engine": "auto", "reload_extra_files": str(tmp_path / "extra.txt"),
        "logger_class": "gunicorn.glogging.Logger", "paste": "development.ini",
        "raw_paste_global_conf": "FOO=1", "ssl_version": "2", "cert_reqs": "0",
    }
    if setting["name"] in by_name:
        return by_name[setting["name"]]
    return "100" if setting["validator"] == "validate_pos_int" else "app"


def check(args, cwd, config=None):
    """rotor --check-config with `args`: (exit code, stdout, stderr)."""
    argv = [str(BIN), "--check-config", "main:app", *args]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60)
    return out.returncode, out.stdout, out.stderr


def verdict(names, code, err):
    """accepted, warned or refused, from what rotor --check-config said of a flag that has
    these names; or what was wrong."""
    lines = err.splitlines()
    if "unknown option" in err:
        return f"unknown: {err.strip()}"
    if code == 0:
        warned = [l for l in lines if l.startswith("rotor: warning: ")]
        said = [l for l in warned if any(f"warning: {name} " in l for name in names)]
        return "warned" if said else "accepted"
    if code == 2 and len(lines) == 1 and re.match(r"rotor: error: -[-\w]+: \S", lines[0]):
        return "refused"
    return f"exit {code}: {err.strip()}"


def walk(tmp_path):
    """Every flag of every gunicorn setting, each alone on rotor's command line."""
    (tmp_path / "extra.txt").write_text("")
    verdicts = {}
    for setting in gunicorn_settings():
        if setting["name"] in ACTIONS:
            continue
        for flag in setting["cli"]:
            args = [flag]
            if setting["action"] not in ("store_true", "store_const"):
                args.append(plausible_value(setting, tmp_path))
            code, _, err = check(args, tmp_path)
            verdicts[flag] = (setting, verdict(setting["cli"], code, err), err)
    return verdicts


def test_every_flag_of_every_gunicorn_setting_is_known(tmp_path):
    verdicts = walk(tmp_path)
    wrong = {flag: v for flag, (_, v, _) in verdicts.items()
             if v not in ("accepted", "warned", "refused")}
    assert not wrong, "\n".join(f"{flag}: {v}" for flag, v in wrong.items())
    for flag, (_, v, err) in verdicts.items():
        if flag in REFUSED:
            assert v == "refused" and REFUSED[flag] in err, (flag, err)
        else:
            assert v != "refused", (flag, err)
    for flag in WARNED:
        assert verdicts[flag][1] == "warned", (flag, verdicts[flag][2])
    for flag in IMPLEMENTED:
        assert verdicts[flag][1] == "accepted", (flag, verdicts[flag][2])


# The TLS settings other than a certificate or key have non-empty defaults in gunicorn and mean
# nothing without one: a gunicorn.conf.py that names them alone is not asking for TLS.
TLS_ONLY_WITH_A_CERTIFICATE = {"ssl_version", "cert_reqs", "ca_certs", "ciphers",
                               "suppress_ragged_eofs", "do_handshake_on_connect"}


def python_literal(setting, tmp_path):
    if setting["action"] == "store_true":
        return "True"
    text = plausible_value(setting, tmp_path)
    if setting["action"] == "append":
        return repr([text])
    if setting["validator"] == "validate_pos_int" and text.isdigit():
        return text
    return repr(text)


def test_a_gunicorn_conf_py_treats_each_setting_as_its_flag(tmp_path):
    """The same setting in a gunicorn.conf.py is refused, warned about or applied as its flag."""
    verdicts = walk(tmp_path)
    kept, refused = [], []
    for flag, (setting, v, err) in verdicts.items():
        assert v in ("accepted", "warned", "refused"), (flag, v)
        # --no-sendfile sets sendfile = False, what rotor does anyway: in a file it is silent.
        if setting["action"] == "store_const":
            continue
        (refused if v == "refused" else kept).append((setting, v, err))
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    for setting, _, err in refused:
        name = setting["name"]
        path = conf_dir / f"{name}.py"
        path.write_text(f"{name} = {python_literal(setting, tmp_path)}\n")
        code, _, file_err = check(["-c", str(path)], tmp_path)
        if name in TLS_ONLY_WITH_A_CERTIFICATE:
            assert code == 0, (name, file_err)
            continue
        reason = err.strip().split(": ", 3)[3]
        assert code == 2 and f"{name}: {reason}" in file_err, (name, file_err)
    seen = {}  # a setting's verdicts, one per flag
    for setting, v, _ in kept:
        seen.setdefault(setting["name"], (setting, set()))[1].add(v)
    path = conf_dir / "all.py"
    path.write_text("".join(f"{name} = {python_literal(s, tmp_path)}\n"
                            for name, (s, _) in seen.items()))
    code, _, file_err = check(["-c", str(path)], tmp_path)
    assert code == 0, file_err
    for name, (_, vs) in seen.items():
        said = f": {name} is a gunicorn setting rotor ignores" in file_err
        assert said == ("warned" in vs), (name, vs, file_err)


def test_warned_flags_start_rotor_and_say_so(rotor):
    r = rotor("-k", "hello", "--no-sendfile", "--spew", "--logger-class", "x.Logger",
              "--reload-extra-file", "/etc/hostname", "--disable-redirect-access-to-syslog")
    assert httpx.get(r.url("/")).status_code == 200
    warnings = [f["message"] for f in r.events("config-warning")]
    for flag in WARNED:
        assert any(m.startswith(f"{flag} is a gunicorn option rotor ignores: ") for m in warnings), \
            (flag, warnings)


@pytest.mark.parametrize("args", [["--tolerate-dangerous-framing"], ["--strip-header-spaces"],
                                  ["--paste", "development.ini"],
                                  ["--paste-global", "FOO=1"]])
def test_unsafe_flags_are_refused_with_the_reason(args, tmp_path):
    out = subprocess.run([str(BIN), "-k", "hello", "-b", "127.0.0.1:0", *args],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rotor: error: {args[0]}: rotor "), lines
    assert REFUSED[args[0]] in lines[0]


def bind_beside(port):
    """Binds a SO_REUSEPORT socket on 127.0.0.1:`port`; the errno if it cannot."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return 0
    except OSError as e:
        return e.errno
    finally:
        s.close()


def test_reuse_port_lets_another_server_bind_the_port_rotor_listens_on(rotor):
    r = rotor("-k", "hello", "--reuse-port")
    assert bind_beside(r.port) == 0
    assert httpx.get(r.url("/")).status_code == 200


def test_without_reuse_port_the_port_is_rotors_alone(rotor):
    r = rotor("-k", "hello")
    assert bind_beside(r.port) == errno.EADDRINUSE


SYSLOG_LINE = re.compile(r"<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+ )?([^\[\s]+)\[(\d+)\]: "
                         r"level=(\w+) role=(\w+) (.*)")


def receive(sock, want, timeout=30):
    """Datagrams from `sock` until one matches `want`; all of them."""
    got = []
    sock.settimeout(0.2)

    def found():
        try:
            got.append(sock.recv(65536).decode())
        except socket.timeout:
            pass
        return any(want(g) for g in got)
    wait_for(found, timeout, interval=0, what=f"a syslog message; got {got}")
    return got


def test_log_syslog_sends_the_error_log_to_a_unix_datagram_socket(rotor, tmp_path):
    path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    r = rotor("-k", "hello", "--log-syslog", "--log-syslog-to", f"unix://{path}",
              "--log-syslog-prefix", "shop", "--log-syslog-facility", "local3")
    got = receive(sock, lambda m: "event=worker-ready" in m)
    parsed = [SYSLOG_LINE.fullmatch(m) for m in got]
    assert all(parsed), got
    listening = next(p for p in parsed if "event=listening" in p.group(7))
    assert int(listening.group(1)) == 19 * 8 + 6  # local3, informational
    assert listening.group(2) is None  # a local daemon is not told the host
    assert listening.group(3) == "shop" and int(listening.group(4)) == r.pid
    assert listening.group(6) == "master"
    worker = r.ready_pids()[0]
    # Workers inherit the destination: a worker's own line carries its own pid.
    r.signal(signal.SIGTERM)
    got = receive(sock, lambda m: "role=worker event=drain" in m)
    drain = SYSLOG_LINE.fullmatch(next(m for m in got if "role=worker event=drain" in m))
    assert drain and int(drain.group(4)) == worker and drain.group(3) == "shop"
    # The error log (stderr here) keeps every line as well.
    assert r.lines("listening") and r.lines("drain")
    sock.close()


def test_log_syslog_over_udp_names_the_host(rotor, tmp_path):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    rotor("-k", "hello", "--log-syslog", "--log-syslog-to", f"udp://127.0.0.1:{port}")
    got = receive(sock, lambda m: "event=listening" in m)
    m = SYSLOG_LINE.fullmatch(next(g for g in got if "event=listening" in g))
    assert m and int(m.group(1)) == 1 * 8 + 6  # user, informational
    assert m.group(2) == socket.gethostname() + " " and m.group(3) == "rotor"
    sock.close()


@pytest.mark.parametrize("args,why", [
    (["--log-syslog-to", "http://x"], "--log-syslog-to: expected unix://PATH"),
    (["--log-syslog-facility", "local9"], "--log-syslog-facility: expected a syslog facility"),
    (["--log-syslog-prefix", "my app"], "--log-syslog-prefix: expected a name without spaces"),
    (["--log-syslog", "--log-syslog-to", "unix:///nonexistent/log.sock"],
     "--log-syslog-to: cannot reach syslog at unix:///nonexistent/log.sock"),
])
def test_bad_syslog_settings_are_one_line_and_exit_2(args, why, tmp_path):
    out = subprocess.run([str(BIN), "-k", "hello", "-b", "127.0.0.1:0", *args],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rotor: error: {why}"), lines


def test_gunicorn_conf_py_reuse_port_and_syslog_settings_are_applied(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(
        "reuse_port = True\nsyslog = True\nsyslog_addr = 'unix:///dev/log'\n"
        "syslog_prefix = 'shop'\nsyslog_facility = 'LOCAL3'\n")
    out = subprocess.run([str(BIN), "-k", "hello", "--print-config"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    for line in ("reuse_port = true", "log_syslog = true", 'log_syslog_to = "unix:///dev/log"',
                 'log_syslog_prefix = "shop"', 'log_syslog_facility = "LOCAL3"'):
        assert re.search(rf"^{re.escape(line)}$", out.stdout, re.M), (line, out.stdout)


def test_a_hup_turns_syslog_on_and_an_unreachable_one_leaves_logging_as_it_was(rotor, tmp_path):
    path = tmp_path / "log.sock"
    conf = tmp_path / "rotor.toml"
    conf.write_text("log_syslog = false\n")
    r = rotor("-k", "hello", "-c", str(conf))
    conf.write_text(f'log_syslog = true\nlog_syslog_to = "unix://{tmp_path}/nobody.sock"\n')
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.lines("log-setup-failed"), what="event=log-setup-failed")
    wait_for(lambda: r.lines("config-applied"), what="event=config-applied")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    conf.write_text(f'log_syslog = true\nlog_syslog_to = "unix://{path}"\n')
    r.signal(signal.SIGHUP)
    got = receive(sock, lambda m: "event=config-applied" in m)
    assert all(SYSLOG_LINE.fullmatch(m) for m in got), got
    assert len(r.lines("config-applied")) == 2  # the error log kept going all along
    sock.close()
