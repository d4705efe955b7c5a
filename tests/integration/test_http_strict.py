"""The HTTP/1.1 engine under strict judging and abuse, seen from the client: rejections reach
the wire as an error and a close (never the handler), 100-continue, pipelining, HTTP/1.0
keep-alive, the head/body/write timeouts, slowloris, clients that never read, and
--worker-connections. (Every rejection class is also unit-tested byte by byte in
tests/unit/test_http_parse.cpp; here each is seen once through the real sockets.)"""
import contextlib
import importlib.util
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import DEADLINE, wait_for
from rawhttp import (ResponseReader, read_response, recv_until_closed,
                     send_and_read_until_closed)

BASE = ("-k", "hello", "-w", "1", "--keep-alive", "30")
POST = b"POST / HTTP/1.1\r\nHost: t\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

REJECTED = {
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400),
    "empty-name": (b"GET / HTTP/1.1\r\nHost: t\r\n: a\r\n\r\n", 400),
    "bare-lf-request-line": (b"GET / HTTP/1.1\nHost: t\r\n\r\n", 400),
    "bare-lf-end-of-head": (b"GET / HTTP/1.1\r\nHost: t\r\n\n", 400),
    "bare-cr-in-value": (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    "bad-method-token": (b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "bad-name-token": (b"GET / HTTP/1.1\r\nHost: t\r\nX(y): a\r\n\r\n", 400),
    "relative-target": (b"GET index.html HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "fragment-in-target": (b"GET /a#b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "asterisk-with-get": (b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "duplicate-host": (b"GET / HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n", 400),
    "invalid-host": (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    "cl-plus": (POST + b"Content-Length: +1\r\n\r\na", 400),
    "cl-list": (POST + b"Content-Length: 1, 1\r\n\r\na", 400),
    "cl-duplicate": (POST + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\na", 400),
    "content-type-duplicate": (POST + b"Content-Type: text/plain\r\nContent-Type: text/html\r\n"
                               b"Content-Length: 1\r\n\r\na", 400),
    "te-unknown-coding": (POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    "te-not-final-chunked": (POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "chunked-on-http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "bad-chunk-terminator": (CHUNKED + b"5\r\nhelloXX0\r\n\r\n", 400),
    "bad-chunk-extension": (CHUNKED + b"5;\x01\r\nhello\r\n0\r\n\r\n", 400),
    "forbidden-trailer": (CHUNKED + b"0\r\nContent-Length: 5\r\n\r\n", 400),
    "http-2.0": (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    "unsupported-expectation": (POST + b"Expect: x\r\nContent-Length: 1\r\n\r\na", 417),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_rejected_request_never_reaches_the_handler(rotor, case):
    request, status = REJECTED[case]
    r = rotor(*BASE)
    # A valid request first: it is answered, then the bad one gets its error and the close.
    data, closed = send_and_read_until_closed(
        r.port, b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n" + request)
    first, _, rest = data.partition(b"\r\n\r\nHello, world!")
    assert first.startswith(b"HTTP/1.1 200 "), data
    assert rest.startswith(b"HTTP/1.1 %d " % status), data
    assert b"\r\nConnection: close\r\n" in rest, data
    assert b"Hello, world!" not in rest, f"the handler answered the bad request: {data!r}"
    assert closed, "the connection stayed open after the error"


def test_an_error_answer_to_head_has_no_body(rotor):
    r = rotor(*BASE)
    data, closed = send_and_read_until_closed(r.port, b"HEAD / HTTP/1.1\r\nX: no host\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"\r\nContent-Length: " in head, data
    assert body == b"" and closed, data


def test_connect_and_options_asterisk_are_accepted(rotor):
    r = rotor(*BASE)
    data, closed = send_and_read_until_closed(
        r.port, b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 "), data
    # CONNECT switches protocols: answered, then closed (no tunnel in the hello worker).
    data, closed = send_and_read_until_closed(
        r.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ") and closed, data


WSGI_OK = "def app(environ, start_response):\n" \
          "    start_response('200 OK', [('Content-Length', '2')])\n" \
          "    return [b'ok']\n"


def field_line(size):
    """A field line of exactly `size` bytes, its CRLF included."""
    line = b"X-Pad: " + b"v" * (size - len(b"X-Pad: \r\n")) + b"\r\n"
    assert len(line) == size
    return line


def status_for(port, line):
    data, _ = send_and_read_until_closed(
        port, b"GET / HTTP/1.1\r\nHost: t\r\n" + line + b"Connection: close\r\n\r\n")
    return int(data.split(b" ", 2)[1]), data


@contextlib.contextmanager
def gunicorn(tmp_path, *args):
    """A real gunicorn (sync worker, a one-line WSGI app) on a free port; yields the port."""
    (tmp_path / "wsgi_ok.py").write_text(WSGI_OK)
    log_path = tmp_path / f"gunicorn-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:0", "-w", "1",
                                 "--chdir", str(tmp_path), *args, "wsgi_ok:app"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def port():
            assert proc.poll() is None, log_path.read_text(errors="replace")
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)",
                          log_path.read_text(errors="replace"))
            return int(m.group(1)) if m else None
        yield wait_for(port, what="gunicorn's listening line")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=DEADLINE)


@pytest.mark.parametrize("limit", [100, 8190])  # 8190: gunicorn's default and rotor's
def test_field_size_limit_counts_a_field_line_as_gunicorn_does(rotor, tmp_path, limit):
    """--limit-request-field_size counts name, colon, value and the line's CRLF, and a line
    at the limit passes: the same number is the same limit under rotor and under gunicorn."""
    flags = ("--limit-request-field_size", str(limit))
    r = rotor(*BASE, *flags)
    at, over = field_line(limit), field_line(limit + 1)
    assert status_for(r.port, at)[0] == 200
    assert status_for(r.port, over)[0] == 431
    if importlib.util.find_spec("gunicorn") is None:
        pytest.skip("gunicorn is not installed: rotor's side was checked alone")
    with gunicorn(tmp_path, *flags) as port:
        assert status_for(port, at)[0] == 200
        # gunicorn answers its header limits with a 400.
        assert status_for(port, over)[0] == 400, status_for(port, over)[1]


def test_expect_100_continue_is_sent_before_the_body_is_read(rotor):
    r = rotor(*BASE)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(POST + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        reader = ResponseReader(s)
        while b"\r\n\r\n" not in reader.buf:
            reader._more()
        assert reader.buf == b"HTTP/1.1 100 Continue\r\n\r\n", reader.buf
        reader.buf = b""
        s.sendall(b"hello")
        status, _, body = reader.response()
        assert status == "HTTP/1.1 200 OK" and body == b"Hello, world!"
        # Head and body together: the client no longer waits, no 100.
        s.sendall(POST + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
        status, _, _ = reader.response()
        assert status == "HTTP/1.1 200 OK"
        assert reader.buf == b""


def test_no_100_continue_for_a_request_refused_at_its_head(rotor):
    r = rotor(*BASE, "--limit-request-body", "4")
    data, closed = send_and_read_until_closed(
        r.port, POST + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert b"100 Continue" not in data and closed


def test_many_pipelined_requests_in_one_packet_are_answered_in_order(rotor):
    r = rotor(*BASE)
    # GET and HEAD answers differ (a body or none): their order shows on the wire.
    pattern = [b"GET", b"HEAD", b"GET", b"GET", b"HEAD"]
    n = 2000
    methods = [pattern[i % len(pattern)] for i in range(n)]
    payload = b"".join(b"%s /%d HTTP/1.1\r\nHost: t\r\n\r\n" % (m, i) for i, m in enumerate(methods))
    with socket.create_connection(("127.0.0.1", r.port), timeout=30) as s:
        s.sendall(payload)
        reader = ResponseReader(s, timeout=30)
        for i, m in enumerate(methods):
            while b"\r\n\r\n" not in reader.buf:
                reader._more()
            head, _, reader.buf = reader.buf.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK"), (i, head)
            if m == b"GET":
                while len(reader.buf) < 13:
                    reader._more()
                assert reader.buf[:13] == b"Hello, world!", (i, reader.buf[:40])
                reader.buf = reader.buf[13:]
            else:
                assert not reader.buf.startswith(b"Hello"), f"HEAD #{i} answered with a body"
        s.sendall(b"GET /last HTTP/1.1\r\nHost: t\r\n\r\n")
        assert reader.response()[0] == "HTTP/1.1 200 OK"
        assert reader.buf == b""


def test_http10_keep_alive(rotor):
    r = rotor(*BASE)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = read_response(s)
            assert status.endswith(" 200 OK") and headers.get("connection") == "keep-alive"
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data, closed = recv_until_closed(s, 10)
        assert closed and b"Hello, world!" in data


def test_requests_of_a_half_closed_client_are_still_answered(rotor):
    r = rotor(*BASE)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3)
        s.shutdown(socket.SHUT_WR)
        data, closed = recv_until_closed(s, 10)
    assert data.count(b"HTTP/1.1 200 OK") == 3 and closed, data


def test_request_head_timeout_answers_408(rotor):
    r = rotor(*BASE, "--timeout-request-head", "1")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # a complete one first: not timed
        read_response(s)
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        data, closed = recv_until_closed(s, 10)
    waited = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 ") and closed, data
    assert 0.9 <= waited < 5, waited


def test_request_body_timeout_answers_408(rotor):
    r = rotor(*BASE, "--timeout-request-body", "1")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(POST + b"Content-Length: 10\r\n\r\n01234")
        data, closed = recv_until_closed(s, 10)
    waited = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 ") and closed, data
    assert 0.9 <= waited < 5, waited


def worker_pid(r):
    return r.ready_pids()[0]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def flood_without_reading(port, seconds_stuck=1.0, limit=200 << 20):
    """Pipelines requests without reading any answer until the server stops taking them (no
    progress for `seconds_stuck`, or it closed the connection). Returns (socket, bytes sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.setblocking(False)
    chunk = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2000
    sent = 0
    stuck_since = None
    while sent < limit:
        try:
            n = s.send(chunk)
            sent += n
            stuck_since = None
        except (ConnectionResetError, BrokenPipeError):
            break  # the server gave up on us first (a write timeout as short as our patience)
        except BlockingIOError:
            now = time.monotonic()
            stuck_since = stuck_since or now
            if now - stuck_since > seconds_stuck:
                break
            select.select([], [s], [], 0.1)
    return s, sent


def test_a_client_that_never_reads_does_not_grow_the_worker(rotor):
    r = rotor(*BASE, "--timeout-response-write", "60")
    pid = worker_pid(r)
    before = rss_kib(pid)
    s, sent = flood_without_reading(r.port)
    try:
        grown = rss_kib(pid) - before
        # The server stopped taking requests long before 200 MB, and holds little for them.
        assert sent < 100 << 20, f"the server kept reading: {sent} bytes taken"
        assert grown < 16 * 1024, f"worker RSS grew by {grown} KiB for one non-reading client"
        # Still serving others meanwhile.
        data, _ = send_and_read_until_closed(
            r.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 ")
    finally:
        s.close()


def test_write_timeout_closes_a_client_that_never_reads(rotor):
    r = rotor("-k", "hello", "-w", "1", "--keep-alive", "120", "--timeout-response-write", "1")
    s, sent = flood_without_reading(r.port)
    requests_sent = sent // len(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    try:
        # The worker gives up on it (long before any other deadline): no connection left.
        wait_for(lambda: open_connections(r) == 0, timeout=15,
                 what="the stalled connection to be closed")
        s.setblocking(True)
        s.settimeout(10)
        answers = 0
        buf = b""
        while True:
            try:
                b = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not b:
                break
            buf += b
            answers += buf.count(b"HTTP/1.1 200")
            buf = buf[buf.rfind(b"HTTP/1.1 200") + 1:] if b"HTTP/1.1 200" in buf else buf[-16:]
        assert answers < requests_sent, "every request was answered: the connection never closed"
    finally:
        s.close()


def open_connections(r):
    """Sockets the worker holds open to clients (its listening sockets excluded)."""
    pid = worker_pid(r)
    import os
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    established = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[9] in inodes and parts[3] == "01":  # ESTABLISHED
                established += 1
    return established


def test_slowloris_is_cut_off_while_normal_clients_keep_their_latency(rotor):
    head_timeout = 2.0
    r = rotor("-k", "hello", "-w", "1", "--timeout-request-head", str(head_timeout))
    n = 300
    slow = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        slow.append(s)
    started = time.monotonic()
    for s in slow:
        s.setblocking(False)

    latencies = []
    failures = []  # the thread's, raised by the test
    stop = threading.Event()

    def normal_client():
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                with socket.create_connection(("127.0.0.1", r.port), timeout=10) as c:
                    c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    data, _ = recv_until_closed(c, 10)
                if not data.startswith(b"HTTP/1.1 200 "):
                    raise AssertionError(f"a normal request got {data[:100]!r}")
                latencies.append(time.monotonic() - t0)
        except BaseException as exc:  # noqa: B902 - handed to the test
            failures.append(exc)

    t = threading.Thread(target=normal_client)
    t.start()
    closed_at = {}
    answers = {}
    try:
        deadline = started + head_timeout + DEADLINE
        next_trickle = time.monotonic()
        while len(closed_at) < n and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_trickle:  # one more header byte on every open connection
                for i, s in enumerate(slow):
                    if i not in closed_at:
                        try:
                            s.send(b"a")
                        except OSError:
                            pass
                next_trickle = now + 0.2
            readable, _, _ = select.select([s for i, s in enumerate(slow) if i not in closed_at],
                                           [], [], 0.05)
            for s in readable:
                i = slow.index(s)
                try:
                    b = s.recv(4096)
                except OSError:
                    b = b""
                if b:
                    answers[i] = answers.get(i, b"") + b
                else:
                    closed_at[i] = time.monotonic() - started
    finally:
        stop.set()
        t.join(30)
        for s in slow:
            s.close()
    assert not t.is_alive(), "the normal client did not stop"
    if failures:
        raise failures[0]
    assert len(closed_at) == n, f"{n - len(closed_at)} slow connections were never cut off"
    assert min(closed_at.values()) >= head_timeout - 0.3, "cut off before the head timeout"
    assert max(closed_at.values()) < head_timeout + 8, max(closed_at.values())
    # Every slow connection was answered 408 before its close, not just closed.
    unanswered = [i for i in closed_at if not answers.get(i, b"").startswith(b"HTTP/1.1 408 ")]
    assert not unanswered, (f"{len(unanswered)} closed without a 408, "
                            f"e.g. {answers.get(unanswered[0])!r}")
    latencies.sort()
    assert len(latencies) >= 10, "the normal client barely got through"
    median = latencies[len(latencies) // 2]
    assert median < 0.25, f"normal requests slowed down: median {median * 1000:.0f} ms"


def test_worker_connections_stops_accepting_until_one_closes(rotor):
    r = rotor(*BASE, "--worker-connections", "5")
    held = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(s)
        held.append(s)
    extra = socket.create_connection(("127.0.0.1", r.port), timeout=10)  # the kernel queues it
    try:
        extra.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        extra.settimeout(1.0)
        with pytest.raises(socket.timeout):
            extra.recv(100)  # not accepted: the worker is at its limit
        held.pop().close()
        extra.settimeout(DEADLINE)
        assert read_response(extra)[0] == "HTTP/1.1 200 OK"
        wait_for(lambda: "event=accept-paused" in r.log(), what="the accept-paused log line")
    finally:
        extra.close()
        for s in held:
            s.close()
