"""HTTP/1.x behaviour of a worker, seen from the client: keep-alive, HTTP/1.0, HEAD, chunked
bodies, request limits and malformed requests."""
import socket
import time

import httpx
import pytest

from rawhttp import (CLOSE_DEADLINE, ResponseReader, read_response, recv_until_closed,
                     send_and_read_until_closed)

# Far longer than any deadline below, so "the server closed" can only mean it chose to.
LIMITS = ("-k", "hello", "-w", "1", "--keep-alive", "30",
          "--limit-request-line", "100", "--limit-request-fields", "5")


def test_keep_alive_reuses_the_connection(rotor):
    r = rotor(*LIMITS)
    with httpx.Client(timeout=10) as client:
        addrs = []
        for _ in range(2):
            resp = client.get(r.url("/"))
            assert resp.status_code == 200
            assert resp.text == "Hello, world!"
            assert resp.headers["content-type"].startswith("text/plain")
            assert resp.headers.get("connection", "").lower() != "close"
            addrs.append(resp.extensions["network_stream"].get_extra_info("client_addr"))
    assert addrs[0] == addrs[1], f"two connections were used: {addrs}"


def test_raw_keep_alive_and_pipelining(rotor):
    r = rotor(*LIMITS)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        reader = ResponseReader(s)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert reader.response()[0] == "HTTP/1.1 200 OK"
        s.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(2):
            status, _, body = reader.response()
            assert status == "HTTP/1.1 200 OK" and body == b"Hello, world!"
        assert reader.buf == b""


def test_http10_connection_is_closed(rotor):
    r = rotor(*LIMITS)
    data, closed = send_and_read_until_closed(r.port, b"GET / HTTP/1.0\r\n\r\n")
    assert closed, f"the server kept an HTTP/1.0 connection open: {data!r}"
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], data
    assert b"keep-alive" not in head.lower(), data
    assert body == b"Hello, world!", data


def test_head_has_length_but_no_body(rotor):
    r = rotor(*LIMITS)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        # A GET right behind the HEAD shows there is no stray body between the two answers.
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data, closed = recv_until_closed(s, CLOSE_DEADLINE)
    assert closed
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    assert b"\r\ncontent-length: 13" in head.lower(), data
    assert rest.startswith(b"HTTP/1.1 200"), f"HEAD answered with a body: {data!r}"
    assert rest.endswith(b"\r\n\r\nHello, world!"), data


def test_chunked_request_body(rotor):
    r = rotor(*LIMITS)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
        status, headers, body = read_response(s)
        assert status == "HTTP/1.1 200 OK", (status, headers, body)
        assert body == b"Hello, world!"
        # The body was consumed exactly: the connection is still in sync.
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s)[0] == "HTTP/1.1 200 OK"


def test_httpx_post_with_streamed_body(rotor):
    r = rotor("-k", "hello", "-w", "1")  # httpx sends more header fields than LIMITS allow

    def gen():
        yield b"a" * 1000
        yield b"b" * 1000
    with httpx.Client(timeout=10) as client:
        resp = client.post(r.url("/"), content=gen())  # sent chunked
        assert resp.status_code == 200
        assert client.get(r.url("/")).status_code == 200


FIELDS_OK = b"".join(b"X-%d: v\r\n" % i for i in range(4))  # + Host = 5 fields
FIELDS_TOO_MANY = b"".join(b"X-%d: v\r\n" % i for i in range(5))  # + Host = 6 fields

ERRORS = {
    "target-too-long": (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    "too-many-fields": (b"GET / HTTP/1.1\r\nHost: t\r\n" + FIELDS_TOO_MANY + b"\r\n", 431),
    "garbage": (b"\x00\x01\x02 this is not http\r\n\r\n", 400),
    "garbage-method": (b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "no-host-on-1.1": (b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400),
    "cl-and-te": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "duplicate-cl": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                     b"Content-Length: 2\r\n\r\nab", 400),
    "bad-chunk-size": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_request_gets_error_and_close(rotor, case):
    request, status = ERRORS[case]
    r = rotor(*LIMITS)
    data, closed = send_and_read_until_closed(r.port, request)
    assert data.startswith(b"HTTP/1.1 %d " % status), data
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert b"\r\nconnection: close" in head, data
    assert closed, f"the connection stayed open after a {status}"
    # The worker survived the bad request.
    assert httpx.get(r.url("/"), timeout=10).status_code == 200


def test_limits_are_inclusive(rotor):
    """At the limit is fine; one past it is not."""
    r = rotor(*LIMITS)
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n" + FIELDS_OK + b"\r\n")  # 5 fields
        assert read_response(s)[0] == "HTTP/1.1 200 OK"
        pad = b"a" * (100 - len(b"GET / HTTP/1.1"))
        s.sendall(b"GET /" + pad + b" HTTP/1.1\r\nHost: t\r\n\r\n")  # 100-byte request line
        assert read_response(s)[0] == "HTTP/1.1 200 OK"
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n" + FIELDS_TOO_MANY + b"\r\n")  # 6 fields
        assert read_response(s)[0].startswith("HTTP/1.1 431")


def test_request_line_limit_counts_the_whole_line(rotor):
    """--limit-request-line is "the size of the HTTP request line" (rotor --help, and gunicorn's
    meaning): method, target and version, without the CRLF."""
    r = rotor(*LIMITS)

    def line(n):
        pad = n - len(b"GET / HTTP/1.1")
        out = b"GET /" + b"a" * pad + b" HTTP/1.1"
        assert len(out) == n
        return out
    tail = b"\r\nHost: t\r\nConnection: close\r\n\r\n"
    ok, _ = send_and_read_until_closed(r.port, line(100) + tail)
    assert ok.startswith(b"HTTP/1.1 200"), ok
    # 101 bytes of request line, only 88 of them target.
    over, closed = send_and_read_until_closed(r.port, line(101) + tail)
    assert over.startswith(b"HTTP/1.1 414"), over
    assert closed


def test_idle_keep_alive_connection_is_closed(rotor):
    r = rotor("-k", "hello", "-w", "1", "--keep-alive", "1")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s)[0] == "HTTP/1.1 200 OK"
        # Still open right after the answer: this is keep-alive, not a close per request.
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s)[0] == "HTTP/1.1 200 OK"
        idle_from = time.monotonic()
        data, closed = recv_until_closed(s, 15)
    assert closed, "the idle keep-alive connection was never closed"
    assert data == b"", f"unsolicited bytes on an idle connection: {data!r}"
    assert time.monotonic() - idle_from >= 0.9, "closed before the keep-alive time"


def _head(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data, _ = recv_until_closed(s, 10)
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return head.split("\r\n")


def test_response_headers_options_apply_to_every_kind_of_answer(rotor):
    # uvicorn's --no-server-header, --no-date-header and --header; the engine's own answers
    # (400) carry them as the handler's do.
    r = rotor("-k", "hello", "--no-server-header", "--no-date-header",
              "--header", "X-Frame-Options: DENY", "--header", "Strict-Transport-Security:max-age=60 ")
    ok = _head(r.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    bad = _head(r.port, b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
    for lines in (ok, bad):
        names = [l.split(":")[0].lower() for l in lines[1:]]
        assert "server" not in names and "date" not in names, lines
        assert "X-Frame-Options: DENY" in lines and "Strict-Transport-Security: max-age=60" in lines
    assert ok[0].startswith("HTTP/1.1 200") and bad[0].startswith("HTTP/1.1 400")
    plain = rotor("-k", "hello")
    lines = _head(plain.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert "Server: rotor" in lines and any(l.startswith("Date: ") for l in lines)
    edge = rotor("-k", "hello", "--header", "Server: edge")  # replaces rotor's, not a second one
    lines = _head(edge.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert [l for l in lines if l.lower().startswith("server:")] == ["Server: edge"], lines
