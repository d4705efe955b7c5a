"""systemd: what rotor tells the NOTIFY_SOCKET (read here from a real unix datagram socket)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import APPS, wait_for

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
