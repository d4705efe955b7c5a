"""Request bodies into an ASGI app: Content-Length and chunked, 100-continue, full duplex,
body errors and timeouts, and clients that half-close or leave."""
import os
import socket
import struct
import time

import httpx
import pytest

from conftest import DEADLINE, serve, wait_for
from rawhttp import recv_until, recv_until_closed, send_and_read_until_closed


def test_request_bodies_content_length_and_chunked(rotor):
    r = serve(rotor, "raw_app:app")
    big = os.urandom(3 * 1024 * 1024)
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        resp = c.post("/echo", content=big)
        assert resp.status_code == 200 and resp.content == big

        def gen():
            for i in range(50):
                yield bytes([i]) * 10000
        resp = c.post("/echo", content=gen())  # chunked
        assert resp.content == b"".join(bytes([i]) * 10000 for i in range(50))


def test_expect_100_continue(rotor):
    r = serve(rotor, "raw_app:app")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(b"hello")
        data = b""
        while not data.endswith(b"hello"):
            data += s.recv(1000)
        assert data.startswith(b"HTTP/1.1 200")


def test_100_continue_only_when_the_app_reads(rotor):
    r = serve(rotor, "raw_app:app")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        # "/" answers without reading its body: no go-ahead, and the connection then closes.
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        data = b""
        while b"Hello, world!" not in data:
            b = s.recv(1000)
            assert b, data
            data += b
        assert data.startswith(b"HTTP/1.1 200"), data
        assert b"100 Continue" not in data
        assert b"connection: close" in data.lower()


def test_an_app_that_answers_before_reading_gets_the_body(rotor):
    # Full duplex: the response starts (and has gone out) before the client sends its body; the
    # body still reaches the app, whose echo completes, and the connection then closes.
    r = serve(rotor, "raw_app:app")
    for head, parts in [
        (b"POST /duplex HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
         [(b"hello", b"hello"), (b"world", b"world")]),
        (b"POST /duplex HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
         [(b"5\r\nhello\r\n", b"hello"), (b"5\r\nworld\r\n0\r\n\r\n", b"world")]),
    ]:
        with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
            s.sendall(head)
            data = recv_until(s, b"echo:\r\n")
            for part, echoed in parts:  # each part is echoed before the next is sent
                s.sendall(part)
                data += recv_until(s, echoed)
            rest, closed = recv_until_closed(s, DEADLINE)
        data += rest
        assert data.startswith(b"HTTP/1.1 200 ") and closed, data
        assert data.endswith(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"), data


def test_no_100_continue_once_the_response_has_started(rotor):
    r = serve(rotor, "raw_app:app")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"POST /duplex HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        data = recv_until(s, b"echo:\r\n")
        # The app reads its body now: too late for a go-ahead inside the chunked answer (the
        # client sends the body anyway, as RFC 9110 section 10.1.1 lets it).
        s.sendall(b"hello")
        rest, closed = recv_until_closed(s, DEADLINE)
    data += rest
    assert data.startswith(b"HTTP/1.1 200 ") and closed, data
    assert b"100 Continue" not in data, data
    assert data.endswith(b"5\r\necho:\r\n5\r\nhello\r\n0\r\n\r\n"), data


ASGI_BODY_ERRORS = {
    "bad-chunk-size": (b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "chunk-without-crlf": (b"5\r\nhelloXX0\r\n\r\n", 400),
    "forbidden-trailer": (b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", 400),
    "chunked-over-the-limit": (b"8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n", 413),
}


@pytest.mark.parametrize("case", list(ASGI_BODY_ERRORS))
def test_body_errors_after_the_head_get_their_status(rotor, case):
    body, status = ASGI_BODY_ERRORS[case]
    r = serve(rotor, "raw_app:app", "--limit-request-body", "10")
    head = b"POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    data, closed = send_and_read_until_closed(r.port, head % b"/echo" + body)
    assert data.startswith(b"HTTP/1.1 %d " % status) and closed, data
    assert b"\r\nConnection: close\r\n" in data, data
    # Once the app has started its answer, the error can only close the connection.
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(head % b"/duplex")
        data = recv_until(s, b"echo:\r\n")
        s.sendall(body)
        rest, closed = recv_until_closed(s, DEADLINE)
    data += rest
    assert data.startswith(b"HTTP/1.1 200 ") and closed, data
    assert data.count(b"HTTP/1.1 ") == 1 and not data.endswith(b"0\r\n\r\n"), data


def test_request_body_timeout_on_the_asgi_worker(rotor):
    r = serve(rotor, "raw_app:app", "--timeout-request-body", "1")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234")
        data, closed = recv_until_closed(s, DEADLINE)
    waited = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 ") and closed, data
    assert 0.9 <= waited < 10, waited
    # The same stall once the answer has started: only the close is left.
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"POST /duplex HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234")
        data, closed = recv_until_closed(s, DEADLINE)
    assert data.startswith(b"HTTP/1.1 200 ") and closed, data
    assert b"HTTP/1.1 408" not in data and not data.endswith(b"0\r\n\r\n"), data


def test_a_half_closed_client_still_gets_its_answer(rotor):
    # docs/http.md: a client that half-closes still gets its answers; the app sees the disconnect
    # in receive() but its send() still writes.
    r = serve(rotor, "raw_app:app")
    for request, body in [
        (b"GET /sleep?s=0.3 HTTP/1.1\r\nHost: t\r\n\r\n", b"slept"),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
    ]:
        with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
            data, closed = recv_until_closed(s, DEADLINE)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n" + body), data
        assert closed, data
    # A client that half-closes in the middle of its body is gone for the app; no 500 follows.
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        s.shutdown(socket.SHUT_WR)
        data, closed = recv_until_closed(s, DEADLINE)
    assert data == b"" and closed, data


def test_client_disconnect_is_seen_by_the_app(rotor):
    r = serve(rotor, "raw_app:app")
    # A reset: the client is gone for sure.
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET /disconnect-send?id=reset HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: "rotor-test: reset waits" in r.log(), what="the request in the app")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_for(lambda: "rotor-test: reset saw http.disconnect" in r.log(),
             what="the app's disconnect")
    # send after the disconnect raises an OSError subclass (ASGI spec)
    wait_for(lambda: "rotor-test: reset send raised ClientDisconnected" in r.log(),
             what="send to fail after the disconnect")
    # A FIN: the client sends nothing more (receive says so), but it may only have half-closed
    # and still read: the answer is written.
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET /disconnect-send?id=fin HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: "rotor-test: fin waits" in r.log(), what="the request in the app")
        s.shutdown(socket.SHUT_WR)
        data, closed = recv_until_closed(s, DEADLINE)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"after the disconnect"), data
    assert closed, data
    wait_for(lambda: "rotor-test: fin send worked" in r.log(), what="the app's send to return")
