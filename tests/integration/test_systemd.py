"""systemd: what rotor tells the NOTIFY_SOCKET (read here from a real unix datagram socket),
and the units in deploy/systemd, checked by systemd-analyze and run by systemd-socket-activate."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import APPS, BIN, ROOT, wait_for

UNITS = ROOT / "deploy" / "systemd"

ENV_APP = '''
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    seen = ",".join(k for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID") if k in os.environ)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": (seen or "-").encode()})
'''


class NotifyListener:
    """The systemd side: a datagram socket that collects what rotor sends."""

    def __init__(self, abstract=False):
        self.dir = tempfile.mkdtemp(prefix="sdn", dir="/tmp")  # short: sun_path has 108 bytes
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"rotor-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)
        self.sock.setblocking(False)
        self.messages = []  # (time.monotonic(), {key: value}) per datagram

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.messages.append((time.monotonic(), fields))

    def with_key(self, key, value=None):
        return [f for _, f in self.drain() if key in f and (value is None or f[key] == value)]

    def wait(self, key, value=None, count=1, timeout=30):
        return wait_for(lambda: len(self.with_key(key, value)) >= count and self.with_key(key, value),
                        timeout, what=f"{count} x {key}={value}: {self.messages}")

    def states(self):
        """The READY/RELOADING/STOPPING notices, in the order they came."""
        out = []
        for _, f in self.drain():
            out += [k for k in ("READY", "RELOADING", "STOPPING") if f.get(k) == "1"]
        return out

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def listener():
    made = []

    def make(**kw):
        made.append(NotifyListener(**kw))
        return made[-1]

    yield make
    for l in made:
        l.close()


def get(r, path="/"):
    with urllib.request.urlopen(r.url(path), timeout=10) as resp:
        return resp.read().decode()


WORKER_KINDS = {
    "hello": ["-k", "hello"],
    "asgi": ["--chdir", str(APPS), "template_app:app"],
}


@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_ready_then_reloading_and_ready_on_hup_then_stopping_on_term(rotor, listener, kind):
    n = listener()
    r = rotor("-w", "2", *WORKER_KINDS[kind], env={"NOTIFY_SOCKET": n.address}, workers=2)
    ready = n.wait("READY", "1")[0]
    assert ready["MAINPID"] == str(r.pid)
    assert n.states() == ["READY"]

    before = time.monotonic()
    r.signal(signal.SIGHUP)
    reloading = n.wait("RELOADING", "1")[0]
    after = time.monotonic()
    # CLOCK_MONOTONIC, as systemd compares it with the HUP it sent.
    assert before - 1 <= int(reloading["MONOTONIC_USEC"]) / 1e6 <= after + 1
    n.wait("READY", "1", count=2)
    # The new generation is in: its workers are ready when READY=1 comes.
    generation_2 = [f for f in r.events("worker-ready") if f["generation"] == "2"]
    assert len(generation_2) >= 2

    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    n.drain()
    assert n.states() == ["READY", "RELOADING", "READY", "STOPPING"]


def test_a_reload_whose_import_fails_still_ends_with_ready(rotor, listener, tmp_path):
    app_file = tmp_path / "sd_app.py"
    app_file.write_text((APPS / "template_app.py").read_text())
    n = listener()
    r = rotor("--chdir", str(tmp_path), "sd_app:app", env={"NOTIFY_SOCKET": n.address})
    n.wait("READY", "1")
    app_file.write_text("raise RuntimeError('broken on purpose')\n")
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
    r.signal(signal.SIGHUP)
    n.wait("RELOADING", "1")
    # Otherwise systemd would show the unit reloading until it is restarted.
    again = n.wait("READY", "1", count=2)[1]
    assert "the reload to generation 2 failed" in again["STATUS"]
    assert r.events("reload-failed")
    assert n.states() == ["READY", "RELOADING", "READY"]


def test_watchdog_pings_at_half_the_watchdog_timeout(rotor, listener):
    n = listener()
    rotor("-k", "hello", env={"NOTIFY_SOCKET": n.address, "WATCHDOG_USEC": "200000"})
    n.wait("READY", "1")
    n.drain()
    start = len(n.with_key("WATCHDOG", "1"))
    time.sleep(2.0)
    pings = len(n.with_key("WATCHDOG", "1")) - start
    # Every 100 ms: about 20 in 2 s; generous for a loaded machine, far above none.
    assert 8 <= pings <= 30, n.messages


def test_no_watchdog_when_watchdog_pid_names_another_process(rotor, listener):
    n = listener()
    rotor("-k", "hello",
          env={"NOTIFY_SOCKET": n.address, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    n.wait("READY", "1")
    time.sleep(0.5)
    assert n.with_key("WATCHDOG") == []


def test_status_lines_tell_workers_ready_and_requests_served(rotor, listener):
    n = listener()
    r = rotor("-k", "hello", "-w", "2", env={"NOTIFY_SOCKET": n.address}, workers=2)
    n.wait("READY", "1")
    assert re.fullmatch(r"2 of 2 workers ready, \d+ requests served, generation 1",
                        n.with_key("READY", "1")[0]["STATUS"])
    for _ in range(7):
        get(r)
    # Not per request: at most once a second, so the count arrives within a few seconds.
    n.wait("STATUS", "2 of 2 workers ready, 7 requests served, generation 1")
    updates = [t for t, f in n.messages if "STATUS" in f and "READY" not in f]
    gaps = [b - a for a, b in zip(updates, updates[1:])]
    assert all(g > 0.8 for g in gaps), gaps


def test_the_app_and_its_workers_do_not_inherit_the_notify_socket(rotor, listener, tmp_path):
    (tmp_path / "env_app.py").write_text(ENV_APP)
    n = listener()
    r = rotor("--chdir", str(tmp_path), "env_app:app",
              env={"NOTIFY_SOCKET": n.address, "WATCHDOG_USEC": "5000000"})
    n.wait("READY", "1")
    assert get(r) == "-"


def test_an_abstract_notify_socket_is_reached(rotor, listener):
    n = listener(abstract=True)
    r = rotor("-k", "hello", env={"NOTIFY_SOCKET": n.address})
    n.wait("READY", "1")
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert n.states() == ["READY", "STOPPING"]


@pytest.mark.parametrize("address", ["/nonexistent/rotor-notify", "relative/notify"])
def test_a_notify_socket_pointing_nowhere_logs_one_line_and_rotor_serves(rotor, address):
    r = rotor("-k", "hello", env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
    assert get(r).startswith("Hello")
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.lines("config-applied"), what="the reload")
    time.sleep(0.5)  # watchdog pings and status lines fail meanwhile
    assert get(r).startswith("Hello")
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    failed = r.lines("notify-failed")
    assert len(failed) == 1, r.log()
    assert address in failed[0]


# The units, made to point at the built binary and a test app (systemd-analyze verify checks
# that ExecStart's binary exists).
def unit_copies(tmp_path):
    out = tmp_path / "units"
    out.mkdir()
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/usr/local/bin/rotor", str(BIN))
        (out / unit.name).write_text(text)
    return out


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    units = unit_copies(tmp_path)
    names = sorted(p.name for p in units.iterdir())
    assert names == ["rotor@.service", "rotor@.socket"]
    # An instance of the template, as systemctl would start it.
    for name in names:
        (units / name.replace("@", "@demo")).symlink_to(units / name)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           str(units / "rotor@demo.socket"), str(units / "rotor@demo.service")],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"))
    # Only our units: the host's own may have warnings of their own.
    ours = [l for l in (proc.stdout + proc.stderr).splitlines() if "rotor@" in l]
    assert proc.returncode == 0 and not ours, proc.stdout + proc.stderr


def unit_setting(name, key):
    values = []
    for line in (UNITS / name).read_text().splitlines():
        if line.startswith(key + "="):
            values.append(line.split("=", 1)[1])
    return values


def test_the_service_matches_how_rotor_stops_and_reloads():
    assert unit_setting("rotor@.service", "Type") == ["notify"]
    assert unit_setting("rotor@.service", "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    # TERM to the master alone: it drains its workers; the rest are killed only at the timeout.
    assert unit_setting("rotor@.service", "KillMode") == ["mixed"]
    exec_start = unit_setting("rotor@.service", "ExecStart")[0]
    graceful = float(re.search(r"--graceful-timeout[ =](\d+)", exec_start).group(1))
    stop = float(unit_setting("rotor@.service", "TimeoutStopSec")[0].rstrip("s"))
    assert stop > graceful + 1
    # Every flag the unit names is one rotor knows.
    for flag in re.findall(r"(--[a-z-]+)", exec_start):
        assert flag in subprocess.run([str(BIN), "--help"], capture_output=True,
                                      text=True).stdout, flag


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"),
                    reason="systemd-socket-activate is not installed")
def test_socket_activation_serves_on_the_socket_systemd_passes(tmp_path, listener):
    """What rotor@.socket does, done by systemd's own tool: LISTEN_FDS, LISTEN_PID."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    n = listener()
    log = open(tmp_path / "rotor.log", "wb")
    # It binds, and execs rotor at the first connection (as the socket unit does, with
    # Accept=no); it passes on only the environment it is told to.
    proc = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                             "-E", "NOTIFY_SOCKET", str(BIN), "-k", "hello"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, NOTIFY_SOCKET=n.address))
    try:
        wait_for(lambda: "Listening on" in (tmp_path / "rotor.log").read_text(), what="the bind")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as resp:
            assert resp.read().startswith(b"Hello")
        assert n.wait("READY", "1")[0]["MAINPID"] == str(proc.pid)
        listening = [l for l in (tmp_path / "rotor.log").read_text().splitlines()
                     if "event=listening" in l]
        assert [l.split("address=")[1] for l in listening] == [f"http://127.0.0.1:{port}"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
