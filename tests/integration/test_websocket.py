"""WebSocket sessions (RFC 6455, ASGI websocket scope) through the real rotor binary, with the
`websockets` client library and raw sockets for what a well-behaved client never sends."""
import asyncio
import base64
import os
import signal
import socket
import struct
import time

import pytest

from conftest import ROOT, wait_for
from rawhttp import wait_until_the_server_is_blocked

websockets = pytest.importorskip("websockets")

APPS = ROOT / "tests" / "apps"
KEY = base64.b64encode(b"0123456789abcdef").decode()
HANDSHAKE = (f"GET /raw/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def serve(rotor, *args, workers=1):
    return rotor("--chdir", str(APPS), "-w", str(workers), *args, "ws_app:app", workers=workers)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def events(r):
    import httpx
    return httpx.get(r.url("/events"), timeout=10).text


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    """A client frame (masked unless told otherwise)."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawClient:
    """A socket after a successful handshake; reads the server's (unmasked) frames."""

    def __init__(self, port, path="/raw/echo"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.s.sendall(HANDSHAKE.replace(b"/raw/echo", path.encode()))
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.head = head

    def _until(self, marker):
        while marker not in self.buf:
            data = self.s.recv(65536)
            assert data, f"closed while waiting for {marker!r}: {self.buf!r}"
            self.buf += data
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _take(self, n):
        while len(self.buf) < n:
            data = self.s.recv(65536)
            assert data, f"closed with {len(self.buf)} of {n} bytes"
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self):
        b0, b1 = self._take(2)
        assert not b1 & 0x80, "server frames are never masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return b0 & 0x0F, bool(b0 & 0x80), self._take(n)

    def close_code(self):
        op, _, payload = self.recv_frame()
        assert op == 8, (op, payload)
        return struct.unpack("!H", payload[:2])[0] if payload else None

    def closed_by_server(self):
        self.s.settimeout(15)
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True


def test_echo_subprotocol_headers_and_scope(rotor):
    r = serve(rotor)

    async def main():
        url = f"ws://127.0.0.1:{r.port}/raw/echo"
        async with websockets.connect(url, subprotocols=["chat.v2", "chat.v1"],
                                      max_size=None) as ws:
            assert ws.subprotocol == "chat.v2"  # the app chose the first offered
            assert ws.response_headers["x-session"].isdigit()
            for text in ("hello", "héllo wörld ✓", ""):
                await ws.send(text)
                assert await ws.recv() == text
            big = os.urandom(3 * 1024 * 1024 + 7)
            await ws.send(big)
            assert await ws.recv() == big
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/raw/scope?x=1") as ws:
            scope = eval(await ws.recv())  # repr of a dict of str/bytes/tuples from the app
            assert scope["scheme"] == "ws" and scope["path"] == "/raw/scope"
            assert scope["query_string"] == b"x=1" and scope["subprotocols"] == []
            assert scope["http_version"] == "1.1" and not scope["has_method"]
            assert scope["client"][0] == "127.0.0.1" and scope["root_path"] == ""
        # Behind a trusted proxy the scheme is wss.
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/raw/scope",
                                      extra_headers={"X-Forwarded-Proto": "https"}) as ws:
            assert eval(await ws.recv())["scheme"] == "wss"

    run(main())
    wait_for(lambda: "('disconnect', 1000)" in events(r), what="the app's disconnect event")


def test_starlette_websocket_route(rotor):
    r = serve(rotor)

    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/chat") as ws:
            await ws.send('{"op": "sum", "values": [1, 2, 39]}')
            assert '"sum": 42' in (await ws.recv()).replace(":42", ": 42")
            await ws.send('{"op": "stream", "n": 500}')
            assert [await ws.recv() for _ in range(500)] == [f"part {i}" for i in range(500)]
            await ws.send('{"op": "close"}')
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.code == 4000
        # The client goes first: Starlette's endpoint sees WebSocketDisconnect with its code.
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/chat") as ws:
            await ws.close(code=4100)

    run(main())
    wait_for(lambda: "('starlette-disconnect', 4100)" in events(r), what="the disconnect")


def test_refused_and_failing_handshakes(rotor):
    r = serve(rotor)

    async def status_of(path):
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            async with websockets.connect(f"ws://127.0.0.1:{r.port}{path}"):
                pass
        return refused.value.status_code

    assert run(status_of("/raw/deny")) == 403
    assert run(status_of("/raw/raise-before")) == 500
    assert run(status_of("/raw/return")) == 500
    log = r.log()
    assert "RuntimeError: refused by raising" in log  # the traceback
    assert "returned without accepting or closing the WebSocket" in log
    # A route Starlette does not have: it closes before accepting, so 403.
    assert run(status_of("/nowhere")) == 403


def test_server_side_close_and_errors_after_accept(rotor):
    r = serve(rotor)

    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/raw/close") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert (closed.value.code, closed.value.reason) == (4001, "bye")
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/raw/raise-after") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.code == 1011

    run(main())
    # After its close the app's receive said disconnect (the client's echoed code).
    wait_for(lambda: "('after-close', {'type': 'websocket.disconnect', 'code': 4001" in events(r),
             what="the disconnect after the app's close")
    assert "RuntimeError: failed after accepting" in r.log()


def test_protocol_violations_close_with_their_codes(rotor):
    r = serve(rotor)
    cases = [
        (frame(0x1, b"unmasked", mask=False), 1002),
        (frame(0x1, b"\xff\xfe"), 1007),                # not UTF-8
        (frame(0x1, b"x", rsv=0x40), 1002),              # an extension bit nobody agreed to
        (frame(0x3), 1002),                              # a reserved opcode
        (frame(0x0, b"orphan"), 1002),                   # continuation without a start
        (frame(0x9, b"x" * 126), 1002),                  # control frame over 125 bytes
        (b"\x82\xff" + struct.pack("!Q", 17 * 1024 * 1024) + b"mask", 1009),  # too big
        # Close frames with codes a client may not send (RFC 6455 section 7.4), a one-byte
        # payload, and a reason that is not UTF-8: never echoed, refused.
        (frame(0x8, struct.pack("!H", 1005)), 1002),
        (frame(0x8, struct.pack("!H", 1006)), 1002),
        (frame(0x8, struct.pack("!H", 999)), 1002),
        (frame(0x8, struct.pack("!H", 5000)), 1002),
        (frame(0x8, b"\x03"), 1002),
        (frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),
    ]
    for data, code in cases:
        c = RawClient(r.port)
        c.s.sendall(data)
        assert c.close_code() == code, data[:16]
        assert c.closed_by_server()
    # The worker lived through all of them.
    assert len(r.ready_pids()) == 1 and not r.events("worker-exit")


def test_ping_fragments_and_close_handshake_on_the_wire(rotor):
    r = serve(rotor)
    c = RawClient(r.port)
    assert b"Sec-WebSocket-Accept: " + base64.b64encode(
        __import__("hashlib").sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
        .digest()) in c.head
    c.s.sendall(frame(0x9, b"are you there"))
    assert c.recv_frame() == (0xA, True, b"are you there")
    # A text message in three fragments with a ping between them, sent byte by byte.
    data = (frame(0x1, "frä".encode()[:3], fin=False) + frame(0x9, b"p") +
            frame(0x0, "frä".encode()[3:], fin=False) + frame(0x0, b"gments"))
    for i in range(len(data)):
        c.s.send(data[i:i + 1])
    assert c.recv_frame() == (0xA, True, b"p")
    assert c.recv_frame() == (0x1, True, "frägments".encode())
    c.s.sendall(frame(0x8, struct.pack("!H", 4321) + b"done"))
    assert c.close_code() == 4321  # echoed
    assert c.closed_by_server()
    wait_for(lambda: "('disconnect', 4321)" in events(r), what="the app's disconnect")


def test_bad_handshakes_get_http_errors(rotor):
    r = serve(rotor)

    def answer(request):
        with socket.create_connection(("127.0.0.1", r.port), timeout=15) as s:
            s.sendall(request)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out

    old = answer(HANDSHAKE.replace(b"Version: 13", b"Version: 8"))
    assert old.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13\r\n" in old, old
    nokey = answer(HANDSHAKE.replace(f"Sec-WebSocket-Key: {KEY}\r\n".encode(), b""))
    assert nokey.startswith(b"HTTP/1.1 400 "), nokey
    badkey = answer(HANDSHAKE.replace(KEY.encode(), b"short"))
    assert badkey.startswith(b"HTTP/1.1 400 "), badkey
    post = answer(HANDSHAKE.replace(b"GET ", b"POST "))
    assert post.startswith(b"HTTP/1.1 400 "), post


def test_client_that_drops_the_connection_is_a_1006_disconnect(rotor):
    r = serve(rotor)
    c = RawClient(r.port)
    c.s.sendall(frame(0x1, b"hi"))
    assert c.recv_frame() == (0x1, True, b"hi")
    c.s.close()
    wait_for(lambda: "('disconnect', 1006)" in events(r), what="the 1006 disconnect")


def test_rotation_and_shutdown_close_sessions_with_1012(rotor):
    r = serve(rotor, "--graceful-timeout", "20")
    c = RawClient(r.port)
    c.s.sendall(frame(0x1, b"before"))
    assert c.recv_frame() == (0x1, True, b"before")
    old = r.ready_pids()
    r.signal(signal.SIGHUP)  # every worker is replaced: the session goes with its worker
    assert c.close_code() == 1012
    c.s.sendall(frame(0x8, struct.pack("!H", 1012)))
    assert c.closed_by_server()
    wait_for(lambda: set(r.ready_pids()) - set(old), what="the new worker")
    wait_for(lambda: any(int(f["pid"]) in old for f in r.events("worker-exit")),
             what="the old worker's exit")

    # A client that never answers the close frame does not hold the stop.
    c = RawClient(r.port)
    r.signal(signal.SIGTERM)
    assert c.close_code() == 1012
    assert r.wait_exit(timeout=30) == 0


def test_a_session_counts_as_one_request_for_max_requests(rotor):
    r = serve(rotor, "--max-requests", "3")

    async def main():
        for _ in range(3):
            async with websockets.connect(f"ws://127.0.0.1:{r.port}/raw/echo") as ws:
                await ws.send("x")
                assert await ws.recv() == "x"

    first = r.ready_pids()
    run(main())
    exit_ = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) in first],
                     what="the rotation after 3 sessions")[0]
    assert exit_["reason"] == "max-requests" and int(exit_["requests"]) >= 3, exit_


def test_keepalive_pings_and_the_ping_timeout(rotor):
    r = serve(rotor, "--ws-ping-interval", "0.3", "--ws-ping-timeout", "1.5")

    async def main():
        # The websockets library answers pings: the session outlives many timeouts.
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/raw/echo",
                                      ping_interval=None) as ws:
            await asyncio.sleep(4)
            await ws.send("still here")
            assert await ws.recv() == "still here"

    run(main())
    # A client that stops answering is closed with 1011 and the app hears of it.
    c = RawClient(r.port)
    op, _, payload = c.recv_frame()
    assert (op, payload) == (0x9, b"rotor")
    c.s.sendall(frame(0xA, payload))
    for _ in range(100):  # pings go unanswered from now on: the close comes within a few
        op, _, payload = c.recv_frame()
        if op == 0x8:
            break
        assert op == 0x9, op
    else:
        raise AssertionError("no close after 100 unanswered pings")
    assert struct.unpack("!H", payload[:2])[0] == 1011 and b"keepalive" in payload
    assert c.closed_by_server()
    wait_for(lambda: "('disconnect', 1011)" in events(r), what="the app's 1011 disconnect")


def test_ws_max_size(rotor):
    r = serve(rotor, "--ws-max-size", "1000")
    c = RawClient(r.port)
    c.s.sendall(frame(0x2, b"x" * 1000))
    assert c.recv_frame() == (0x2, True, b"x" * 1000)
    # Two fragments that add up to one byte too many.
    c.s.sendall(frame(0x2, b"y" * 600, fin=False) + frame(0x0, b"y" * 401))
    assert c.close_code() == 1009
    assert c.closed_by_server()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1]) // 1024


def test_a_flood_of_empty_messages_is_paused_like_a_large_one(rotor):
    r = serve(rotor)
    [worker] = r.ready_pids()
    before = rss_mib(worker)
    c = RawClient(r.port, "/raw/sleep")  # an app that never receives
    c.s.settimeout(3)
    chunk = frame(0x2) * 10000
    sent = 0
    with pytest.raises(socket.timeout):  # the worker stops reading: our sends block
        while sent < 2_000_000:
            c.s.sendall(chunk)
            sent += 10000
    assert rss_mib(worker) - before < 40, (before, rss_mib(worker), sent)


def test_concurrent_senders_all_wake_when_the_client_reads(rotor):
    r = serve(rotor)
    c = RawClient(r.port, "/raw/multi")
    # 16 MiB is more than the socket buffers and the worker's high-water mark together: once
    # the server's writes block on the client, which reads nothing, both senders are paused.
    wait_until_the_server_is_blocked(c.s, r.port)
    assert "multi-done" not in events(r)
    got = 0
    while True:
        op, _, payload = c.recv_frame()
        if op == 0x8:
            break
        got += len(payload)
    assert got == 16 * 1024 * 1024
    assert "('multi-done', ['a', 'b'])" in events(r)


def test_a_slow_reader_of_a_large_message_is_not_taken_for_gone(rotor):
    r = serve(rotor, "--ws-ping-interval", "0.3", "--ws-ping-timeout", "1")
    c = RawClient(r.port, "/raw/big")
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    got, pings = 0, 0
    while got < 4 << 20:  # about 3 s at this pace: several ping timeouts
        data = c.s.recv(65536)
        assert data
        c.buf += data
        got = len(c.buf)
        time.sleep(0.04)
    op, _, payload = c.recv_frame()
    while op == 0x9:  # pings queued behind the message come after it
        pings += 1
        op, _, payload = c.recv_frame()
    assert op == 0x2 and len(payload) == 4 << 20
    c.s.sendall(frame(0xA, b"rotor") + frame(0x1, b"done"))
    wait_for(lambda: "('big-sent', 'websocket.receive')" in events(r), what="the app's receive")
    assert "1011" not in events(r)


def test_normal_ends_are_not_logged_as_app_errors(rotor):
    r = serve(rotor)
    # A close frame sent together with the handshake: the session is over at accept.
    with socket.create_connection(("127.0.0.1", r.port), timeout=15) as s:
        s.sendall(HANDSHAKE.replace(b"/raw/echo", b"/raw/scope") +
                  frame(0x8, struct.pack("!H", 1000)))
        while s.recv(65536):
            pass

    async def stream_until_reload():
        async with websockets.connect(f"ws://127.0.0.1:{r.port}/chat") as ws:
            await ws.send('{"op": "stream", "n": 100000000}')
            await ws.recv()
            r.signal(signal.SIGHUP)  # the worker closes the session (1012) mid-stream
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await ws.recv()
            return closed.value.code

    assert run(stream_until_reload()) == 1012
    wait_for(lambda: r.events("worker-exit"), what="the reloaded worker's exit")
    assert "app-error" not in r.log(), r.log()


def test_an_invalid_close_code_from_the_app_is_refused(rotor):
    r = serve(rotor)
    for code in (1006, 999, 70000):
        c = RawClient(r.port, f"/raw/badcode?{code}")
        assert c.close_code() == 1011  # the app's error, not the code it asked for
        assert c.closed_by_server()
    wait_for(lambda: all(f"invalid WebSocket close code {code}" in r.log()
                         for code in (1006, 999, 70000)), what="the three errors")


@pytest.mark.parametrize("size", [64 * 1024, 4 << 20])
def test_a_client_that_stopped_reading_is_closed_by_the_ping_timeout(rotor, size):
    # The write timeout is off: only the keepalive can find this client. Our own pings pile up
    # behind a message it does not read (in the kernel's buffers, or in ours), and must not
    # count as its progress.
    r = serve(rotor, "--ws-ping-interval", "0.5", "--ws-ping-timeout", "1",
              "--timeout-response-write", "0")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", r.port))
    s.sendall(HANDSHAKE.replace(b"/raw/echo", f"/raw/big?{size}".encode()))
    wait_for(lambda: "('big-sent', 'websocket.disconnect')" in events(r), timeout=20,
             what="the app's disconnect after the ping timeout")
    s.close()
