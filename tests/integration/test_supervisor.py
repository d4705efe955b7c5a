"""The master's promises, checked on the real binary: rotation, crash and hang recovery,
graceful stop, reload, scaling, bind errors and worker cleanup when the master dies.

Every check waits on an observable condition (a log line, a pid, a socket state) with a generous
deadline; sleeps are only ever used as polling intervals.
"""
import os
import re
import signal
import socket
import threading
import time

import httpx
import pytest

from conftest import DEADLINE, parse_fields, pid_alive, run_wrk, wait_for
from rawhttp import recv_until_closed


# --- helpers -----------------------------------------------------------------------------------

def _server_sockets(port):
    """(remote_port, state, rx_queue) of every server-side IPv4 TCP socket on `port`."""
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local, remote, state, queues = cols[1], cols[2], cols[3], cols[4]
            if int(local.split(":")[1], 16) != port:
                continue
            if remote.endswith(":0000"):  # the listening socket
                continue
            out.append((int(remote.split(":")[1], 16), state, int(queues.split(":")[1], 16)))
    return out


def established(port):
    return sum(1 for _, state, _ in _server_sockets(port) if state == "01")


class Load:
    """wrk running in a background thread."""

    def __init__(self, url, duration, connections=16):
        self.duration = duration
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(url, duration, connections),
                                       daemon=True)
        self.thread.start()

    def _run(self, url, duration, connections):
        try:
            self.result = run_wrk(url, duration=duration, connections=connections)
        except BaseException as e:  # reported by join()
            self.error = e

    def running(self):
        return self.thread.is_alive()

    def join(self):
        self.thread.join(timeout=self.duration + 90)
        assert not self.thread.is_alive(), "wrk did not finish"
        if self.error:
            raise self.error
        return self.result


def start_load(r, duration, connections=16):
    """Starts wrk against `r` and returns once its connections are established."""
    load = Load(r.url("/"), duration, connections)
    wait_for(lambda: established(r.port) >= connections or not load.running(), 20,
             what="wrk connections")
    assert load.running(), f"wrk ended before the test could act:\n{load.result}"
    return load


def get_ok(r, n=5):
    """n fresh connections, each must get the hello answer."""
    for _ in range(n):
        resp = httpx.get(r.url("/"), timeout=10, headers={"Connection": "close"})
        assert resp.status_code == 200
        assert resp.text == "Hello, world!"


def exits(r, reason=None):
    return [f for f in r.events("worker-exit") if reason is None or f.get("reason") == reason]


def exit_of(r, pid):
    for f in r.events("worker-exit"):
        if int(f["pid"]) == pid:
            return f
    return None


def line_index(r, event, pid):
    for i, line in enumerate(r.lines()):
        if f"event={event} " in line + " " and int(parse_fields(line)["pid"]) == pid:
            return i
    return None


# --- rotation ----------------------------------------------------------------------------------

def test_max_requests_rotation_under_load_loses_nothing(rotor):
    r = rotor("-k", "hello", "-w", "2", "--max-requests", "1000", "--max-requests-jitter", "100")
    stats = run_wrk(r.url("/"), duration=5, connections=16)
    assert stats["requests"] > 0, stats["raw"]
    assert stats["errors"] == 0, f"wrk saw errors:\n{stats['raw']}\n{r.log()}"

    rotated = wait_for(lambda: len(exits(r, "max-requests")) >= 10 and exits(r, "max-requests"),
                       what=f">= 10 max-requests rotations ({stats['requests']} requests)")
    for f in rotated:
        limit, served = int(f["limit"]), int(f["requests"])
        assert 1000 <= limit <= 1100, f
        assert served >= limit, f
        assert f["status"] == "exit:0", f
        # What the worker cost over its life, from wait4(2): serving 1000 requests takes CPU
        # and any process takes page faults.
        assert float(f["cpu_ms"]) > 0 and int(f["minflt"]) > 0, f

    spawns = r.events("spawn")
    limits = [int(f["limit"]) for f in spawns]
    assert all(1000 <= l <= 1100 for l in limits), limits
    assert len(set(limits)) > 1, f"jitter had no effect: {limits}"

    # Spawn before retire: every rotated worker has a successor that was ready before it exited.
    successor = {int(f["replaces"]): int(f["pid"]) for f in spawns if "replaces" in f}
    for f in rotated:
        old = int(f["pid"])
        assert old in successor, f"no spawn replaces={old}\n{r.log()}"
        ready_at = line_index(r, "worker-ready", successor[old])
        exit_at = line_index(r, "worker-exit", old)
        assert ready_at is not None and ready_at < exit_at, \
            f"worker {old} exited before its successor {successor[old]} was ready\n{r.log()}"
    get_ok(r)


# --- crash and hang ----------------------------------------------------------------------------

def test_sigkilled_worker_is_replaced_under_load(rotor):
    r = rotor("-k", "hello", "-w", "2")
    before = r.ready_pids()
    assert len(before) == 2
    victim = before[0]
    load = start_load(r, duration=4)

    os.kill(victim, signal.SIGKILL)
    f = wait_for(lambda: exit_of(r, victim), what=f"worker-exit of {victim}")
    assert f["reason"] == "crash", f
    assert f["status"] == "signal:KILL", f

    def replaced():
        new = [p for p in r.ready_pids() if p not in before]
        return len(r.ready_pids()) == 2 and new
    new = wait_for(replaced, what=f"a ready replacement\n{r.log()}")
    assert any(int(s["pid"]) == new[0] for s in r.events("spawn"))
    assert r.proc.poll() is None and pid_alive(r.pid), "the master died with its worker"
    assert pid_alive(before[1]), "the healthy worker was touched"

    stats = load.join()
    assert stats["requests"] > 0, stats["raw"]
    assert r.proc.poll() is None
    get_ok(r)


def test_stopped_worker_is_killed_after_timeout(rotor):
    r = rotor("-k", "hello", "-w", "2", "--timeout", "2")
    before = r.ready_pids()
    victim, healthy = before
    os.kill(victim, signal.SIGSTOP)
    try:
        t = wait_for(lambda: [f for f in r.events("worker-timeout") if int(f["pid"]) == victim],
                     what=f"worker-timeout of {victim}\n{r.log()}")[0]
        assert float(t["silent_s"]) >= 2.0, t
        f = wait_for(lambda: exit_of(r, victim), what=f"worker-exit of {victim}\n{r.log()}")
        assert f["reason"] == "timeout", f
        # The abort itself ended it (the master continues a stopped worker so that it can act
        # on it), not the SIGKILL that follows an abort left unanswered.
        assert f["status"] == "signal:ABRT", f
        assert not [k for k in r.events("worker-kill") if int(k["pid"]) == victim], r.log()
        wait_for(lambda: not pid_alive(victim), 10, what=f"{victim} to be gone")
        wait_for(lambda: len(r.ready_pids()) == 2 and
                 any(p not in before for p in r.ready_pids()),
                 what=f"a ready replacement\n{r.log()}")
    finally:
        if pid_alive(victim):
            os.kill(victim, signal.SIGCONT)
    # The idle but healthy worker heartbeats: it must not have been taken for a hung one.
    assert pid_alive(healthy)
    assert not [f for f in r.events("worker-timeout") if int(f["pid"]) == healthy], r.log()
    assert r.proc.poll() is None
    get_ok(r)


# --- graceful stop -----------------------------------------------------------------------------

def test_term_finishes_request_in_flight(rotor):
    r = rotor("-k", "hello", "-w", "2", "--graceful-timeout", "20")
    workers = r.ready_pids()
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    try:
        # A first request proves a worker has accepted this connection.
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        first = b""
        while not first.endswith(b"Hello, world!"):
            b = s.recv(65536)
            assert b, f"closed early: {first!r}"
            first += b
        assert first.startswith(b"HTTP/1.1 200")

        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
        client_port = s.getsockname()[1]
        # The worker has read what we sent (nothing left in the server socket's queue).
        wait_for(lambda: [x for x in _server_sockets(r.port)
                          if x[0] == client_port and x[1] == "01" and x[2] == 0],
                 what="the worker to read the request head")

        r.signal(signal.SIGTERM)
        # Both workers have taken the TERM (each logs its drain) before the body completes.
        wait_for(lambda: len(r.lines("drain")) >= len(workers), what="the workers' drain lines")
        s.sendall(b"67890")
        data, closed = recv_until_closed(s, 15)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 200"), data
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), data
    assert body == b"Hello, world!", data
    assert closed, "the draining worker kept the connection open"

    assert r.wait_exit(DEADLINE) == 0, r.log()
    assert r.events("shutdown")[0]["mode"] == "graceful"
    for pid in workers:
        wait_for(lambda: not pid_alive(pid), 5, what=f"worker {pid} to be gone")
    assert {int(f["pid"]) for f in exits(r, "shutdown")} >= set(workers), r.log()
    assert r.events("exit")[-1]["code"] == "0"


def _hold_partial_request(r):
    """A connection whose worker has read half of a request body that never completes."""
    s = socket.create_connection(("127.0.0.1", r.port), timeout=30)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    while not got.endswith(b"Hello, world!"):
        b = s.recv(65536)
        assert b, got
        got += b
    s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
    client_port = s.getsockname()[1]
    wait_for(lambda: [x for x in _server_sockets(r.port)
                      if x[0] == client_port and x[1] == "01" and x[2] == 0],
             what="the worker to read the request head")
    return s


def test_graceful_timeout_bounds_the_drain(rotor):
    r = rotor("-k", "hello", "-w", "2", "--graceful-timeout", "2")
    workers = r.ready_pids()
    s = _hold_partial_request(r)
    try:
        t0 = time.monotonic()
        r.signal(signal.SIGTERM)
        # The body never completes; graceful_timeout (2 s), not a 30 s body timeout, ends it.
        assert r.wait_exit(15) == 0, r.log()
        took = time.monotonic() - t0
        data, closed = recv_until_closed(s, 5)
    finally:
        s.close()
    assert took >= 1.5, f"the drain did not wait for the request in flight ({took:.2f}s)"
    assert closed and not data.startswith(b"HTTP/1.1 200"), data
    for pid in workers:
        wait_for(lambda: not pid_alive(pid), 5, what=f"worker {pid} to be gone")


def test_int_is_a_fast_stop(rotor):
    r = rotor("-k", "hello", "-w", "2", "--graceful-timeout", "60")
    workers = r.ready_pids()
    s = _hold_partial_request(r)
    try:
        r.signal(signal.SIGINT)
        # A graceful stop would wait up to 60 s for this request; a fast one does not.
        r.wait_exit(10)
        data, closed = recv_until_closed(s, 5)
    finally:
        s.close()
    assert closed, "the connection outlived a fast stop"
    assert r.events("shutdown")[0]["mode"] == "fast"
    for pid in workers:
        wait_for(lambda: not pid_alive(pid), 5, what=f"worker {pid} to be gone")


def test_usr1_reopens_error_and_access_logs(rotor, tmp_path):
    err, acc = tmp_path / "error.log", tmp_path / "access.log"
    r = rotor("-k", "hello", "-w", "1", "--error-logfile", str(err), "--access-logfile", str(acc),
              wait=False)

    def port():
        assert r.proc.poll() is None, r.log()
        m = err.exists() and re.search(r"event=listening address=http://127\.0\.0\.1:(\d+)",
                                       err.read_text())
        return m and int(m.group(1))
    r.port = wait_for(port, what="the listening line in the error log file")
    wait_for(lambda: "event=worker-ready" in err.read_text(), what="a ready worker")
    worker = int(parse_fields([l for l in err.read_text().splitlines()
                               if "event=worker-ready" in l][0])["pid"])
    assert httpx.get(r.url("/before"), timeout=10).status_code == 200
    wait_for(lambda: acc.exists() and "/before" in acc.read_text(), what="the access line")

    err.rename(tmp_path / "error.log.1")
    acc.rename(tmp_path / "access.log.1")
    r.signal(signal.SIGUSR1)

    def reopened():
        assert httpx.get(r.url("/after"), timeout=10).status_code == 200
        return acc.exists() and "/after" in acc.read_text()
    wait_for(reopened, interval=0.2, what="the worker to write to a new access log")
    r.signal(signal.SIGTTIN)
    wait_for(lambda: err.exists() and "event=scale" in err.read_text(),
             what="the master to write to a new error log")
    assert "event=scale" not in (tmp_path / "error.log.1").read_text()
    assert "/before" not in acc.read_text()
    # Reopening logs restarts nothing.
    assert pid_alive(worker)
    assert "event=worker-exit" not in err.read_text() + (tmp_path / "error.log.1").read_text()


# --- reload and scaling ------------------------------------------------------------------------

def test_hup_rolls_every_worker_under_load(rotor):
    r = rotor("-k", "hello", "-w", "2")
    old = r.ready_pids()
    assert all(f["generation"] == "1" for f in r.events("worker-ready"))
    load = start_load(r, duration=6)

    r.signal(signal.SIGHUP)

    def rolled():
        gone = all(exit_of(r, p) for p in old)
        new = [f for f in r.events("worker-ready") if f["generation"] == "2"
               and int(f["pid"]) in r.ready_pids()]
        return gone and len(new) == 2
    wait_for(rolled, what=f"the reload to roll both workers\n{r.log()}")
    assert load.running(), "the reload outlasted the load; nothing was checked under load"
    stats = load.join()

    for p in old:
        f = exit_of(r, p)
        assert f["reason"] == "reload", f
        assert f["status"] == "exit:0", f
        assert not pid_alive(p)
    assert r.events("reload")[0]["generation"] == "2"
    assert stats["requests"] > 0, stats["raw"]
    assert stats["errors"] == 0, f"wrk saw errors across the reload:\n{stats['raw']}\n{r.log()}"
    assert r.proc.poll() is None
    get_ok(r)


def _read_one_response(sock):
    """One hello response from a keep-alive socket: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = sock.recv(65536)
        assert b, f"closed early: {data!r}"
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(body) < length:
        b = sock.recv(65536)
        assert b, f"closed early: {data!r}"
        body += b
    return head, body


def test_rotation_hands_keepalive_connections_over(rotor, tmp_path):
    """A rotated worker passes its idle keep-alive connection to its successor: the client's
    socket stays open and its next request is answered by the new worker."""
    access = tmp_path / "access.log"
    r = rotor("-k", "hello", "-w", "1", "--access-logfile", str(access),
              "--access-logformat", "%(p)s %(U)s")
    old = r.ready_pids()[0]
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET /before HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = _read_one_response(s)
        assert head.startswith(b"HTTP/1.1 200") and body == b"Hello, world!"
        r.signal(signal.SIGHUP)
        wait_for(lambda: exit_of(r, old), what="the old worker to exit")
        assert exit_of(r, old)["reason"] == "reload"
        s.sendall(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = _read_one_response(s)
        assert head.startswith(b"HTTP/1.1 200") and body == b"Hello, world!"
        assert b"connection: close" not in head.lower()
    lines = wait_for(lambda: len(access.read_text().splitlines()) >= 2 and
                     access.read_text().splitlines(), what="two access log lines")
    by_path = {line.split()[1]: line.split()[0] for line in lines}
    assert by_path["/before"] == f"<{old}>"
    assert by_path["/after"] != f"<{old}>", lines
    assert int(by_path["/after"].strip("<>")) in r.ready_pids()


def test_app_env_is_not_read_back_as_rotor_config_on_hup(rotor):
    # -e exports into the master's environment so that the app sees it; a HUP must still read
    # rotor's settings from the environment rotor started with.
    r = rotor("-k", "hello", "-e", "WEB_CONCURRENCY=3", "-e", "ROTOR_MAX_REQUESTS=5")
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("config-applied"), what=f"the reload\n{r.log()}")
    assert r.events("config-applied")[0]["workers"] == "1"
    for _ in range(20):  # at 5 requests per worker these would rotate it
        assert httpx.get(r.url("/")).status_code == 200
    assert not [f for f in r.events("worker-exit") if f["reason"] == "max-requests"]
    assert len(r.ready_pids()) == 1


def test_ttin_ttou_scale_up_and_down(rotor):
    r = rotor("-k", "hello", "-w", "2")
    before = r.ready_pids()

    r.signal(signal.SIGTTIN)
    wait_for(lambda: len(r.ready_pids()) == 3, what=f"a third ready worker\n{r.log()}")
    assert r.events("scale")[0]["workers"] == "3"
    three = r.ready_pids()
    assert len(set(three) - set(before)) == 1

    r.signal(signal.SIGTTOU)
    f = wait_for(lambda: exits(r, "scale-down"), what=f"a scale-down exit\n{r.log()}")[0]
    gone = int(f["pid"])
    assert gone in three
    assert f["status"] == "exit:0", f
    wait_for(lambda: not pid_alive(gone), 10, what=f"{gone} to be gone")
    wait_for(lambda: len(r.ready_pids()) == 2, what="two workers")
    assert r.events("scale")[1]["workers"] == "2"
    # Scaling down is not a crash: nothing is respawned in its place.
    assert len(exits(r)) == 1, r.log()
    assert set(r.ready_pids()) == set(three) - {gone}
    get_ok(r)


# --- binding and master death ------------------------------------------------------------------

def test_port_in_use_exits_1(rotor):
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        r = rotor("-k", "hello", "-b", f"127.0.0.1:{port}", bind=False, wait=False)
        assert r.wait_exit(DEADLINE) == 1, r.log()
    finally:
        holder.close()
    log = r.log()
    assert "cannot bind" in log and "Address already in use" in log, log
    assert f"127.0.0.1:{port}" in log, log
    assert not r.lines("spawn"), "workers were forked although the bind failed"


def test_workers_die_with_the_master(rotor):
    r = rotor("-k", "hello", "-w", "2")
    workers = r.ready_pids()
    assert len(workers) == 2
    os.kill(r.pid, signal.SIGKILL)
    r.proc.wait(timeout=10)
    for pid in workers:
        wait_for(lambda: not pid_alive(pid), 5, what=f"worker {pid} to die with the master")


# --- unix sockets ------------------------------------------------------------------------------

def _unix_get(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"GET / HTTP/1.1\r\nHost: unix\r\nConnection: close\r\n\r\n")
        data, closed = recv_until_closed(s, 10)
    assert closed
    return data


def _start_unix(rotor, path):
    r = rotor("-k", "hello", "-w", "1", "-b", f"unix:{path}", bind=False, wait=False)
    wait_for(lambda: r.proc.poll() is not None or
             any(f.get("address") == f"unix:{path}" for f in r.events("listening")),
             what="the unix listening line")
    assert r.proc.poll() is None, r.log()
    r.wait_ready(1)
    return r


def test_unix_socket_bind(rotor, tmp_path):
    path = tmp_path / "rotor.sock"
    r = _start_unix(rotor, path)
    data = _unix_get(path)
    assert data.startswith(b"HTTP/1.1 200"), data
    assert data.endswith(b"\r\n\r\nHello, world!"), data
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert not path.exists(), "the unix socket file was left behind"


def test_unix_socket_replaces_stale_socket_file(rotor, tmp_path):
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed server leaves behind
    assert path.exists()
    _start_unix(rotor, path)
    assert _unix_get(path).startswith(b"HTTP/1.1 200")


def test_unix_socket_never_clobbers_a_regular_file(rotor, tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("precious")
    r = rotor("-k", "hello", "-b", f"unix:{path}", bind=False, wait=False)
    assert r.wait_exit() == 1, r.log()
    assert "cannot bind" in r.log()
    assert path.read_text() == "precious"
