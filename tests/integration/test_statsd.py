"""--statsd-host: the master sends gunicorn's statsd names over UDP (or a unix datagram socket),
and what it sends adds up to what the clients did."""
import re
import socket
import subprocess

import httpx

from conftest import APPS, BIN, wait_for

LINE = re.compile(r"^(?P<name>[^:]+):(?P<value>[0-9.]+)\|(?P<type>c|ms|g)(?:\|@(?P<rate>[0-9.e-]+))?"
                  r"(?:\|#(?P<tags>.*))?$")


class Collector:
    """A statsd collector: reads datagrams, sums counters and sampled timings, keeps gauges."""

    def __init__(self, family=socket.AF_INET, path=None):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if path:
            self.sock.bind(str(path))
            self.address = f"unix:{path}"
        else:
            self.sock.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.sock.setblocking(False)
        self.counters, self.timings, self.gauges, self.tags, self.bad = {}, {}, {}, set(), []

    def drain(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            assert len(data) <= 1024, len(data)
            for line in data.decode().split("\n"):
                m = LINE.match(line)
                if not m:
                    self.bad.append(line)
                    continue
                name, value, kind = m["name"], float(m["value"]), m["type"]
                rate = float(m["rate"]) if m["rate"] else 1.0
                if m["tags"] is not None:
                    self.tags.add(m["tags"])
                if kind == "c":
                    self.counters[name] = self.counters.get(name, 0) + value / rate
                elif kind == "ms":
                    self.timings.setdefault(name, []).append((value, round(1 / rate)))
                else:
                    self.gauges[name] = value

    def count(self, name):
        self.drain()
        return round(self.counters.get(name, 0))

    def timed(self, name):
        self.drain()
        return sum(n for _, n in self.timings.get(name, []))


def test_statsd_counts_add_up_to_the_requests_sent(rotor):
    c = Collector()
    r = rotor("--chdir", str(APPS), "-k", "hello", "-w", "2", "--statsd-host", c.address,
              "--statsd-prefix", "app", "--dogstatsd-tags", "env:test, team:web", workers=2)
    with httpx.Client() as client:
        for _ in range(40):
            assert client.get(r.url("/")).status_code == 200
    wait_for(lambda: c.count("app.gunicorn.requests") >= 40, what="40 requests counted")
    wait_for(lambda: c.timed("app.gunicorn.request.duration") >= 40, what="40 timings")
    assert c.count("app.gunicorn.requests") == 40
    assert c.count("app.gunicorn.request.status.2xx") == 40
    assert c.timed("app.gunicorn.request.duration") == 40
    assert all(0 <= v < 10_000 for v, _ in c.timings["app.gunicorn.request.duration"])
    assert c.gauges["app.gunicorn.workers"] == 2
    assert c.tags == {"env:test,team:web"}
    assert not c.bad, c.bad
    assert r.events("statsd")[0]["address"] == c.address


def test_statsd_counts_rotations_and_error_answers(rotor):
    c = Collector()
    r = rotor("--chdir", str(APPS), "-w", "1", "--max-requests", "5", "--statsd-host", c.address,
              "raw_app:app", workers=1)
    with httpx.Client() as client:
        for _ in range(20):
            assert client.get(r.url("/")).status_code == 200
        assert client.get(r.url("/raise-before")).status_code == 500
    exits = lambda: len([f for f in r.events("worker-exit") if f.get("reason") == "max-requests"])
    wait_for(lambda: exits() >= 1, what="a rotation")
    wait_for(lambda: c.count("rotor.worker.exits.max-requests") == exits(), what="exits counted")
    wait_for(lambda: c.count("gunicorn.request.status.5xx") == 1, what="the 500 counted")
    assert c.count("gunicorn.requests") == 21
    assert c.tags == set()


def test_statsd_to_a_unix_datagram_socket_warns_once_while_it_is_missing(rotor, tmp_path):
    path = tmp_path / "statsd.sock"
    r = rotor("--chdir", str(APPS), "-k", "hello", "--statsd-host", f"unix:{path}")
    wait_for(lambda: r.lines("statsd-send-failed"), what="the send failure said")
    assert httpx.get(r.url("/")).status_code == 200
    c = Collector(socket.AF_UNIX, path)  # the collector comes back
    wait_for(lambda: c.drain() or c.gauges.get("gunicorn.workers") == 1, what="datagrams again")
    assert httpx.get(r.url("/")).status_code == 200
    wait_for(lambda: c.count("gunicorn.requests") >= 1, what="the request after it counted")
    assert len(r.lines("statsd-send-failed")) == 1


def test_bad_statsd_addresses_are_one_line_and_an_exit_code(tmp_path):
    for value, code, says in [("localhost", 2, "HOST:PORT"), ("fd://3", 2, "HOST:PORT"),
                              ("localhost:99999", 2, "port"),
                              ("no-such-host.invalid:8125", 1, "cannot resolve")]:
        out = subprocess.run([str(BIN), "-k", "hello", "-b", "127.0.0.1:0", "--statsd-host", value],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert out.returncode == code, (value, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "--statsd-host" in lines[0] and says in lines[0], out.stderr
