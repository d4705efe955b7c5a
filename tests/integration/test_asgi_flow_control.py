"""Flow control both ways: a request body streams to a slow app and a response waits for a
slow client, and neither grows the worker."""
import hashlib
import os
import socket
import struct
import time

import httpx

from conftest import DEADLINE, serve, wait_for


def _proc_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith(field + ":")).split()[1])


def test_request_body_streams_with_flow_control(rotor):
    r = serve(rotor, "raw_app:app")
    worker = r.ready_pids()[0]
    with httpx.Client(base_url=r.url(), timeout=60) as c:
        # A large body reaches the app in several http.request messages.
        resp = c.post("/echo", content=os.urandom(3 * 1024 * 1024))
        assert int(resp.headers["x-chunks"]) > 1
        before = _proc_kib(worker, "VmHWM")
        # 8 MiB to an app that takes 50 ms per receive: reading pauses at the high-water mark
        # instead of buffering the body (which would take at least 8 MiB more).
        size = 8 * 1024 * 1024

        def gen():
            block = b"x" * (256 * 1024)
            for _ in range(size // len(block)):
                yield block
        assert c.post("/slow-reader?0.05", content=gen()).text == str(size)
    grown_kb = _proc_kib(worker, "VmHWM") - before
    assert grown_kb < 4 * 1024, f"the worker buffered the body: peak grew {grown_kb} KiB"


def test_tiny_request_body_chunks_do_not_multiply_memory(rotor):
    # Chunked bodies in 2-byte chunks to an app that reads one message a minute: what each
    # connection holds stays near the 256 KiB pause mark, not one Python object per chunk.
    r = serve(rotor, "raw_app:app", "--graceful-timeout", "1")
    worker = r.ready_pids()[0]
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.post("/slow-reader?0", content=b"x" * 1000).text == "1000"
    baseline = _proc_kib(worker, "VmRSS")
    n, payload = 4, (b"2\r\nxx\r\n" * 150_000)  # 300 kB of body each
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", r.port), timeout=DEADLINE)
            s.sendall(b"POST /slow-reader?60 HTTP/1.1\r\nHost: t\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            socks.append(s)
        for s in socks:
            # Until the body is in or the worker stops reading (the pause) for 2 s.
            s.settimeout(2)
            sent = 0
            try:
                while sent < len(payload):
                    sent += s.send(payload[sent:sent + 65536])
            except socket.timeout:
                pass
        # The worker reads on after the sends return: measure once its RSS has settled (the
        # same three times, 0.5 s apart; a measuring interval, retried until it holds).
        samples = []

        def settled():
            samples.append(_proc_kib(worker, "VmRSS"))
            time.sleep(0.5)
            return len(samples) >= 3 and len(set(samples[-3:])) == 1
        wait_for(settled, what="the worker's RSS to settle", interval=0)
        grown = samples[-1] - baseline
        assert grown < n * 1536, f"worker RSS grew {grown} KiB for {n} connections"
    finally:
        for s in socks:
            s.close()


BIG_CHUNK = 64 * 1024


class SendNeverResumed(AssertionError):
    """The client has every byte the app gave to send(), yet the app stays suspended."""


def _big_progress(client, rid):
    return client.get("/big-progress", params={"id": rid}).json()


def _read_big(sock, client, rid, n, size=BIG_CHUNK, idle=3.0):
    """Reads the whole /big answer from `sock` and checks it chunk by chunk; returns its body.

    Waits as long as data keeps coming (up to DEADLINE overall). When nothing has come for
    `idle` seconds although the client holds every byte the app gave to send() and the app has
    not moved, the app's send() was never resumed: raises SendNeverResumed at once instead of
    waiting for a deadline."""
    total = n * size
    end = time.monotonic() + DEADLINE
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(DEADLINE)
        b = sock.recv(65536)
        assert b, f"closed before the end of the head: {buf!r}"
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert f"content-length: {total}".encode() in head.lower(), head
    data = bytearray(rest)
    while len(data) < total:
        assert time.monotonic() < end, f"{len(data)} of {total} bytes after {DEADLINE}s"
        sock.settimeout(idle)
        try:
            b = sock.recv(1 << 20)
        except socket.timeout:
            p = _big_progress(client, rid)
            handed = min(n, p["sent"] + 1) * size  # the chunk send() is suspended in is queued
            if not p["done"] and len(data) == handed:
                raise SendNeverResumed(
                    f"the client has all {len(data)} bytes the app sent and has read for "
                    f"{idle}s, but the app's send() is still suspended after {p['sent']} of {n} "
                    f"chunks: the drain never woke it")
            continue
        assert b, f"closed after {len(data)} of {total} bytes"
        data += b
    view = memoryview(data)
    for i in range(n):
        if view[i * size:(i + 1) * size] != struct.pack(">I", i) * (size // 4):
            raise AssertionError(f"chunk {i} is not what the app sent")
    return data


def test_send_backpressure_suspends_the_app_while_the_client_does_not_read(rotor):
    n, size = 1024, BIG_CHUNK  # 64 MiB
    r = serve(rotor, "raw_app:app", "--timeout-response-write", "60", "--graceful-timeout", "2")
    worker = r.ready_pids()[0]
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        # Warm the paths up (a small /big, read at once), then take the baseline.
        assert len(c.get("/big", params={"n": "16", "id": "warm"}).content) == 16 * size
        baseline = _proc_kib(worker, "VmRSS")

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A small receive window, so that the kernel holds little of the answer either.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(30)
        s.connect(("127.0.0.1", r.port))
        try:
            s.sendall(f"GET /big?n={n}&id=stall HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            wait_for(lambda: (_big_progress(c, "stall") or {}).get("sent", 0) > 0,
                     what="the app to start sending")

            # The client reads nothing: the app's send() must stop returning. Settled means
            # the same count twice, 0.5 s apart (a measuring interval; the loop retries until
            # it holds).
            def settled():
                before = _big_progress(c, "stall")["sent"]
                time.sleep(0.5)
                after = _big_progress(c, "stall")["sent"]
                return after if after == before else None
            stalled_at = wait_for(settled, what="the app's send() to be suspended", interval=0)
            assert stalled_at < n // 4, (
                f"send() went on for {stalled_at} of {n} chunks with a client that reads nothing")
            assert not _big_progress(c, "stall")["done"]
            grown = _proc_kib(worker, "VmRSS") - baseline
            assert grown < 16 * 1024, f"the worker buffered the answer: RSS grew {grown} KiB"
            # The loop is not blocked: the same worker answers other requests meanwhile (the
            # progress queries above came through too), and the suspended app does not move.
            for _ in range(5):
                assert c.get("/").text == "Hello, world!"
            assert c.get("/scope").json()["pid"] == worker
            assert _big_progress(c, "stall")["sent"] == stalled_at

            # Now the client reads everything: every byte arrives, in order, and the app's
            # send() loop runs to its end.
            data = _read_big(s, c, "stall", n)
        finally:
            s.close()
        done = wait_for(lambda: _big_progress(c, "stall")["done"] and _big_progress(c, "stall"),
                        what="the app to finish")
        assert done["sent"] == n
        assert done["sha256"] == hashlib.sha256(data).hexdigest()
    # The peak over the whole transfer, stall and catch-up, stayed near the baseline.
    peak = _proc_kib(worker, "VmHWM") - baseline
    assert peak < 16 * 1024, f"peak RSS {peak} KiB over the baseline"


def test_large_streamed_response_to_a_client_reading_at_full_speed(rotor):
    n = 256  # 16 MiB: several times the socket buffers, so send() has to pause and resume
    r = serve(rotor, "raw_app:app", "--graceful-timeout", "2")
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        with socket.create_connection(("127.0.0.1", r.port), timeout=30) as s:
            s.sendall(f"GET /big?n={n}&id=fast HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            data = _read_big(s, c, "fast", n)
        done = wait_for(lambda: _big_progress(c, "fast")["done"] and _big_progress(c, "fast"),
                        what="the app to finish")
    assert done["sent"] == n and done["sha256"] == hashlib.sha256(data).hexdigest()
