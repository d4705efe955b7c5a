"""Hostile and careless clients: heads that cost memory, a worker out of file descriptors, and
response framing an app gets wrong (HEAD, 204, 304)."""
import os
import resource
import socket
import subprocess
import time

import httpx
import pytest

from conftest import BIN, DEADLINE, ROOT, wait_for
from rawhttp import ResponseReader, recv_until_closed, send_and_read_until_closed

APPS = ROOT / "tests" / "apps"
HEAD_LIMIT = 65536  # --limit-request-head's default


def head_of(size, target="/"):
    """A complete request head of exactly `size` bytes, its fields within the other limits."""
    start = f"GET {target} HTTP/1.1\r\nHost: t\r\n".encode()
    fields = b""
    left = size - len(start) - 2
    i = 0
    while left > 0:
        name = f"X-{i}: ".encode()
        value = min(8000, left - len(name) - 2)
        assert value >= 1, "no room for a last field: pick another size"
        fields += name + b"v" * value + b"\r\n"
        left -= len(name) + value + 2
        i += 1
    head = start + fields + b"\r\n"
    assert len(head) == size
    return head


def status_of(data):
    return data.split(b"\r\n", 1)[0]


def vm(pid, key):
    """A /proc/<pid>/status figure in KiB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} for {pid}")


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the request head is bounded as a whole ----------------------------------------------------

def test_a_head_at_the_limit_is_served_and_one_byte_more_gets_431_and_a_close(rotor):
    r = rotor("-k", "hello", "-w", "1", "--keep-alive", "30")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        reader = ResponseReader(s)
        for _ in range(2):  # and the connection stays usable
            s.sendall(head_of(HEAD_LIMIT))
            status, _, body = reader.response()
            assert status == "HTTP/1.1 200 OK" and body == b"Hello, world!"
    data, closed = send_and_read_until_closed(r.port, head_of(HEAD_LIMIT + 1))
    assert status_of(data) == b"HTTP/1.1 431 Request Header Fields Too Large", data
    assert closed and b"connection: close" in data.lower(), data


def test_limit_request_head_sets_the_bound_and_bad_values_exit_2(rotor):
    r = rotor("-k", "hello", "-w", "1", "--limit-request-head", "1000")
    data, _ = send_and_read_until_closed(r.port, head_of(1000))
    assert status_of(data) == b"HTTP/1.1 200 OK", data
    data, closed = send_and_read_until_closed(r.port, head_of(1001))
    assert status_of(data).startswith(b"HTTP/1.1 431 ") and closed, data
    env = dict(os.environ, ROTOR_LIMIT_REQUEST_HEAD="2000")
    out = subprocess.run([str(BIN), "--print-config", "-k", "hello"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert "limit_request_head = 2000" in out.stdout, out.stdout + out.stderr
    for bad in ("-1", "abc", "16777217", "1.5"):
        out = subprocess.run([str(BIN), "--check-config", "-k", "hello",
                              "--limit-request-head", bad],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2, (bad, out.stdout, out.stderr)
        lines = (out.stdout + out.stderr).strip().splitlines()
        assert len(lines) == 1 and "limit" in lines[0], (bad, lines)


def test_many_unfinished_heads_cost_at_most_the_head_limit_each(rotor):
    """200 connections hold heads just under the limit; 200 more try 99 fields of 8,190 bytes
    (810 KB, within the per-field limits, as in the report) and are refused at the limit. The
    worker's peak memory grows by about what the limit allows, not by what was sent (over
    160 MB before the head was bounded)."""
    r = rotor("-k", "hello", "-w", "1", "--keep-alive", "60", "--timeout", "60")
    pid = r.ready_pids()[0]
    before = vm(pid, "VmRSS")
    held = []
    try:
        unfinished = head_of(60000)[:-2]  # no empty line: the head never ends
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
            s.sendall(unfinished)
            held.append(s)
        field = b"X-Big: " + b"v" * (8190 - 7) + b"\r\n"
        attack = b"GET / HTTP/1.1\r\nHost: t\r\n" + field * 99
        refused = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
            try:
                s.sendall(attack)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused while sending
            held.append(s)
            refused.append(s)
        answers = [recv_until_closed(s, 15) for s in refused]
        growth_mb = (vm(pid, "VmHWM") - before) / 1024
        assert growth_mb < 40, f"the worker grew by {growth_mb:.0f} MB"
        for data, closed in answers:
            assert status_of(data).startswith(b"HTTP/1.1 431 ") and closed, data[:200]
        assert httpx.get(r.url(), timeout=10).status_code == 200
    finally:
        for s in held:
            s.close()


# --- out of file descriptors: back off, do not spin --------------------------------------------

@pytest.mark.parametrize("kind", ["hello", "asgi"])
def test_a_worker_out_of_descriptors_backs_off_and_serves_again_once_they_are_free(rotor, kind):
    args = ("-k", "hello") if kind == "hello" else ("--chdir", str(APPS), "raw_app:app")
    r = rotor(*args, "-w", "1", "--keep-alive", "60", "--timeout", "60")
    pid = r.ready_pids()[0]
    # Room for a few connections more than the worker holds now.
    limit = len(os.listdir(f"/proc/{pid}/fd")) + 10
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    conns = []
    try:
        for _ in range(150):
            conns.append(socket.create_connection(("127.0.0.1", r.port), timeout=10))
        wait_for(lambda: r.lines("accept-failed"), what="the worker to run out of descriptors")
        lines_before = len(r.lines("accept-failed"))
        cpu_before = cpu_seconds(pid)
        start = time.monotonic()
        # The state under test is how the worker spends this time while accept keeps failing.
        time.sleep(3)
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(pid) - cpu_before
        lines = r.lines("accept-failed")[lines_before:]
        assert cpu < 0.25 * elapsed, f"{cpu:.2f}s of CPU in {elapsed:.1f}s: the worker spins"
        assert len(lines) <= elapsed + 2, f"{len(lines)} accept-failed lines in {elapsed:.1f}s"
        assert all("error=EMFILE" in l and "count=" in l for l in lines), lines
    finally:
        for s in conns:
            s.close()

    def served():
        try:
            return httpx.get(r.url(), timeout=5).status_code == 200
        except httpx.HTTPError:
            return False
    wait_for(served, what="the worker to serve again")


# --- response framing the app gets wrong -------------------------------------------------------

def serve_raw(rotor):
    return rotor("--chdir", str(APPS), "-w", "1", "--keep-alive", "30", "raw_app:app")


def head_and_rest(sock, request):
    """Sends `request` then a pipelined GET /; returns (head of the first answer, what
    followed it): nothing follows a body-less answer but the next response."""
    sock.sendall(request + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    reader = ResponseReader(sock)
    while b"\r\n\r\n" not in reader.buf:
        reader._more()
    head, _, reader.buf = reader.buf.partition(b"\r\n\r\n")
    status, headers, body = reader.response()
    assert status == "HTTP/1.1 200 OK" and body == b"Hello, world!", (head, reader.buf)
    return head.decode("latin-1").lower()


@pytest.mark.parametrize("parts", ["", "a,b,c"])
def test_a_head_answer_without_a_length_from_the_app_gets_none(rotor, parts):
    """RFC 9110 section 9.3.2: a HEAD's Content-Length must be the GET's; an app that sent no
    length (Falcon on a streamed resource) did not say it, so none is sent, nor chunked."""
    r = serve_raw(rotor)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        head = head_and_rest(s, f"HEAD /cl?parts={parts} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert head.startswith("http/1.1 200 "), head
    assert "content-length" not in head and "transfer-encoding" not in head, head


def test_a_head_answer_keeps_the_apps_length_and_a_get_still_gets_one(rotor):
    r = serve_raw(rotor)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        head = head_and_rest(s, b"HEAD /cl?cl=5&parts= HTTP/1.1\r\nHost: t\r\n\r\n")
        assert "\r\ncontent-length: 5" in head, head
        s.sendall(b"GET /cl?parts= HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = ResponseReader(s).response()
        assert headers["content-length"] == "0" and body == b"", headers


def test_a_204_never_carries_the_apps_content_length(rotor):
    """RFC 9110 section 8.6: a server MUST NOT send Content-Length in a 204."""
    r = serve_raw(rotor)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        head = head_and_rest(s, b"GET /cl?status=204&cl=10&parts= HTTP/1.1\r\nHost: t\r\n\r\n")
    assert head.startswith("http/1.1 204 "), head
    assert "content-length" not in head and "transfer-encoding" not in head, head


def test_a_304_keeps_the_apps_content_length_and_has_no_body(rotor):
    """A 304 may carry the 200's length (RFC 9110 section 8.6), which only the app knows."""
    r = serve_raw(rotor)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        head = head_and_rest(s, b"GET /cl?status=304&cl=10&parts= HTTP/1.1\r\nHost: t\r\n\r\n")
    assert head.startswith("http/1.1 304 "), head
    assert head.count("content-length: 10") == 1, head


# --- the head timeout is for the whole head ----------------------------------------------------

def test_a_head_trickled_a_byte_at_a_time_is_cut_at_the_head_timeout(rotor):
    """Each byte arrives well within the timeout; the head as a whole does not."""
    head_timeout = 2.0
    r = rotor("-k", "hello", "-w", "1", "--timeout-request-head", str(head_timeout),
              "--keep-alive", "30")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        s.settimeout(0.5)
        data = b""
        while time.monotonic() - start < head_timeout + 8:
            try:
                s.send(b"a")
                b = s.recv(4096)
            except socket.timeout:
                continue  # nothing yet: one more byte
            except OSError:
                break
            data += b
            if not b or b"\r\n\r\n" in data:
                break
        waited = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 "), (waited, data)
    assert head_timeout - 0.3 <= waited < head_timeout + 4, waited
