"""The master's /healthz and /readyz, what a hostile client gets from its metrics port, and the
shutdown delay that turns /readyz to 503 while rotor still serves."""
import os
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from conftest import BIN, DEADLINE, wait_for
from rawhttp import recv_until_closed
from test_metrics import metrics_port

HELLO = ["-k", "hello"]


def get(port, path, method="GET"):
    return httpx.request(method, f"http://127.0.0.1:{port}{path}", timeout=DEADLINE)


def raw(port, data, timeout=10):
    """Sends `data` to the metrics port and reads until the master closes: (answer, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return recv_until_closed(s, timeout)


def test_healthz_and_readyz_answer_200_while_workers_serve(rotor):
    r = rotor(*HELLO, "-w", "2", "--metrics-bind", "127.0.0.1:0")
    port = metrics_port(r)
    assert get(port, "/healthz").status_code == 200
    resp = get(port, "/readyz")
    assert resp.status_code == 200 and resp.text == "ready\n"
    head = get(port, "/readyz", "HEAD")
    assert head.status_code == 200 and head.content == b""
    assert get(port, "/nothing").status_code == 404
    post = get(port, "/metrics", "POST")
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"


def test_garbage_gets_400_and_a_huge_head_431(rotor):
    r = rotor(*HELLO, "--metrics-bind", "127.0.0.1:0")
    port = metrics_port(r)
    answer, closed = raw(port, b"\x16\x03\x01\x00\xa5\x01\x00\x00")  # a TLS hello
    assert closed and answer.startswith(b"HTTP/1.1 400 "), answer
    answer, closed = raw(port, b"hello there\r\n\r\n")
    assert closed and answer.startswith(b"HTTP/1.1 400 "), answer
    huge = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    answer, closed = raw(port, huge)
    assert closed and answer.startswith(b"HTTP/1.1 431 "), answer
    assert get(port, "/healthz").status_code == 200


def test_slow_clients_cannot_hold_the_metrics_port(rotor):
    r = rotor(*HELLO, "--metrics-bind", "127.0.0.1:0")
    port = metrics_port(r)
    # More slow clients than the master keeps: each sends a byte of a head and stalls.
    slow = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"G")
        slow.append(s)
    try:
        for _ in range(5):
            started = time.monotonic()
            assert get(port, "/healthz").status_code == 200
            assert time.monotonic() - started < 1.0
        # Those still held get 408 once the head deadline (5 s) passes.
        answer, closed = recv_until_closed(slow[-1], 10)
        assert closed and answer.startswith(b"HTTP/1.1 408 "), answer
    finally:
        for s in slow:
            s.close()


def test_metrics_on_a_unix_socket(rotor, tmp_path):
    path = tmp_path / "metrics.sock"
    r = rotor(*HELLO, "--metrics-bind", f"unix:{path}")
    wait_for(lambda: r.events("metrics-listening"), what="the metrics listener")
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, timeout=DEADLINE) as c:
        resp = c.get("http://rotor/metrics")
        assert resp.status_code == 200 and "rotor_requests_total 0" in resp.text
        assert c.get("http://rotor/readyz").status_code == 200
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert not path.exists()  # removed with the master


def test_a_metrics_address_in_use_is_one_line_and_exit_1(tmp_path):
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        port = held.getsockname()[1]
        out = subprocess.run([str(BIN), "-k", "hello", "-b", "127.0.0.1:0", "--metrics-bind",
                              f"127.0.0.1:{port}"], capture_output=True, text=True,
                             timeout=DEADLINE)
    finally:
        held.close()
    assert out.returncode == 1, out
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "--metrics-bind" in lines[0] and "in use" in lines[0], lines


def test_a_bad_metrics_address_is_a_usage_error():
    out = subprocess.run([str(BIN), "-k", "hello", "--metrics-bind", "nowhere"],
                         capture_output=True, text=True, timeout=DEADLINE)
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1 and "metrics" in out.stderr, out.stderr


def keep_requesting(url, until, results):
    """New connections to the app, one request each, until `until` (monotonic)."""
    while time.monotonic() < until:
        try:
            code = httpx.get(url, timeout=5, headers={"Connection": "close"}).status_code
        except httpx.HTTPError as e:
            code = repr(e)
        results.append((time.monotonic(), code))
        time.sleep(0.02)


def test_term_with_a_shutdown_delay_turns_readyz_503_while_serving(rotor):
    r = rotor(*HELLO, "-w", "2", "--metrics-bind", "127.0.0.1:0", "--shutdown-delay", "3")
    port = metrics_port(r)
    assert get(port, "/readyz").status_code == 200
    term_at = time.monotonic()
    r.signal(signal.SIGTERM)
    wait_for(lambda: get(port, "/readyz").status_code == 503, timeout=1,
             what="/readyz to turn 503")
    assert time.monotonic() - term_at < 1
    assert get(port, "/readyz").text == "stopping\n"
    assert get(port, "/healthz").status_code == 200
    results = []
    keep_requesting(r.url("/"), term_at + 2.7, results)
    assert [code for _, code in results] == [200] * len(results), results
    assert len(results) > 3 and results[-1][0] > term_at + 2.4, (term_at, results)
    assert r.wait_exit() == 0, r.log()
    took = time.monotonic() - term_at
    assert 3 <= took < 3 + DEADLINE / 2, took
    assert r.events("shutdown-delay"), r.log()
    # The stop came after the delay, not at the TERM.
    log = r.log()
    assert log.index("event=shutdown-delay ") < log.index("event=shutdown ")


def test_a_second_term_ends_the_shutdown_delay(rotor):
    r = rotor(*HELLO, "--metrics-bind", "127.0.0.1:0", "--shutdown-delay", "60")
    port = metrics_port(r)
    r.signal(signal.SIGTERM)
    wait_for(lambda: get(port, "/readyz").status_code == 503, what="/readyz 503")
    assert r.proc.poll() is None
    # A HUP during the delay is ignored, as during any stop: no new generation is rolled out.
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("signals-ignored"), what=f"the HUP ignored\n{r.log()}")
    assert not r.events("reload"), r.log()
    started = time.monotonic()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0, r.log()
    assert time.monotonic() - started < 10
    assert r.events("shutdown-delay-cut"), r.log()


def test_int_skips_the_shutdown_delay(rotor):
    r = rotor(*HELLO, "--shutdown-delay", "60")
    started = time.monotonic()
    r.signal(signal.SIGINT)
    assert r.wait_exit() == 0, r.log()
    assert time.monotonic() - started < 10
    assert not r.events("shutdown-delay"), r.log()


def test_readyz_is_503_until_a_worker_is_ready(rotor, tmp_path):
    (tmp_path / "slow_boot.py").write_text(
        "import time\ntime.sleep(3)\n\n\nasync def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'up'})\n")
    r = rotor("--chdir", str(tmp_path), "--metrics-bind", "127.0.0.1:0", "slow_boot:app",
              wait=False)
    port = metrics_port(r)
    resp = get(port, "/readyz")
    assert resp.status_code == 503 and resp.text == "no worker ready\n"
    assert get(port, "/healthz").status_code == 200  # the master is alive meanwhile
    wait_for(lambda: get(port, "/readyz").status_code == 200, what=f"ready\n{r.log()}")
    assert r.ready_pids()
