"""Responses from an ASGI app: streaming and HEAD, what one pass of the loop sends, the app's
Content-Length and Connection: close, and what failing or slow apps get."""
import socket

import httpx
import pytest

from conftest import DEADLINE, serve, wait_for
from rawhttp import read_response, recv_until_closed, send_and_read_until_closed


def test_streaming_response_and_head(rotor):
    r = serve(rotor, "raw_app:app")
    with httpx.Client(base_url=r.url()) as c:
        resp = c.get("/stream")
        assert resp.headers.get("transfer-encoding") == "chunked"
        assert resp.text == "".join(f"part {i}\n" for i in range(5)) + "end\n"
        head = c.head("/")
        assert head.status_code == 200 and head.content == b""


def test_parts_sent_back_to_back_arrive_whole_and_in_order(rotor):
    # What an app sends in one pass of its loop is written at the pass's end: 64 events, two
    # pipelined responses on one connection, and a close-delimited HTTP/1.0 answer.
    r = serve(rotor, "raw_app:app")
    events = b"".join(b"data: token %d\n\n" % i for i in range(64))
    with httpx.Client(base_url=r.url()) as c:
        for _ in range(3):
            resp = c.get("/tokens", params={"n": 64})
            assert resp.headers["transfer-encoding"] == "chunked"
            assert resp.content == events
    two, _ = send_and_read_until_closed(
        r.port, b"GET /tokens?n=64 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET /tokens?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=10)
    first, _, second = two.partition(b"0\r\n\r\nHTTP/1.1 200")
    assert second, two[-300:]
    assert dechunk(first.split(b"\r\n\r\n", 1)[1] + b"0\r\n\r\n") == events
    assert dechunk(second.split(b"\r\n\r\n", 1)[1]) == events[:events.index(b"data: token 3")]
    old, _ = send_and_read_until_closed(
        r.port, b"GET /tokens?n=64 HTTP/1.0\r\nHost: t\r\n\r\n", timeout=10)
    assert old.split(b"\r\n\r\n", 1)[1] == events


def dechunk(body):
    out = b""
    while True:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return out
        out, body = out + rest[:n], rest[n + 2:]


@pytest.mark.parametrize("declared, parts, sent", [
    ("5", "hello-and-more", b""),          # too long at once: nothing of it is sent
    ("5", "hel,lo-and-more", b"hel"),      # too long later: only what fits was sent
    ("100", "short", b"short"),            # too short: the connection is not reused
    ("100", "sh,or,t", b"short"),          # too short after several parts: the same
    ("5,7", "hello", b""),                 # two different lengths
    ("x5", "hello", b""),                  # not a number
])
def test_the_apps_content_length_is_enforced(rotor, declared, parts, sent):
    r = serve(rotor, "raw_app:app", "--keep-alive", "30")
    request = f"GET /cl?cl={declared}&parts={parts} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        # A second request behind it: it must never be answered on this connection, nor be
        # taken for (or hidden in) the first answer's body.
        s.sendall(request + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        data, closed = recv_until_closed(s, DEADLINE)
    assert closed, data
    assert b"Hello, world!" not in data and data.count(b"HTTP/1.1 ") == 1, data
    head, _, body = data.partition(b"\r\n\r\n")
    if sent:
        assert head.startswith(b"HTTP/1.1 200 ") and body == sent, data
        assert head.lower().count(b"content-length:") == 1, data
    else:
        assert head.startswith(b"HTTP/1.1 500 "), data
    if declared != "100":  # the app's send raised (as uvicorn's does)
        wait_for(lambda: "rotor-test: cl send raised RuntimeError" in r.log(),
                 what="the app's send to raise")


def test_a_repeated_equal_content_length_is_sent_once(rotor):
    r = serve(rotor, "raw_app:app")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET /cl?cl=5,5&parts=hello HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = read_response(s)
        assert status == "HTTP/1.1 200 OK" and body == b"hello"
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # still keep-alive
        assert read_response(s)[2] == b"Hello, world!"


def test_the_apps_connection_close_is_honoured(rotor):
    r = serve(rotor, "raw_app:app", "--keep-alive", "30")
    data, closed = send_and_read_until_closed(
        r.port, b"GET /conn-close HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\nok"), data
    assert data.lower().count(b"connection: close") == 1 and closed, data
    assert b"Hello, world!" not in data, data


def test_app_errors(rotor):
    r = serve(rotor, "raw_app:app")
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/raise-before").status_code == 500
        assert c.get("/no-response").status_code == 500
        assert c.get("/bad-header").status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/raise-after")  # started, then failed: the connection is closed
        assert c.get("/").text == "Hello, world!"  # the worker lives on
    log = r.log()
    assert "RuntimeError: boom before start" in log
    assert "event=app-error" in log
    # the invalid header never reached the wire
    out, _ = send_and_read_until_closed(
        r.port, b"GET /bad-header HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=10)
    assert out.startswith(b"HTTP/1.1 500") and b"Injected" not in out


def test_request_timeout_gives_504_and_the_worker_lives_on(rotor):
    r = serve(rotor, "raw_app:app", "--timeout-request", "0.5")
    with httpx.Client(base_url=r.url(), timeout=20) as c:
        resp = c.get("/sleep", params={"s": "10"})
        assert resp.status_code == 504
        assert c.get("/sleep", params={"s": "0.01"}).text == "slept"
    assert "request timed out after 0.5s" in r.log()
