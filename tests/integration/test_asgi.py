"""The asgi worker class: real apps (raw ASGI, Starlette, FastAPI) under the real binary."""
import hashlib
import json
import os
import re
import signal
import socket
import stat
import struct
import tempfile
import threading
import time

import httpx
import pytest

from conftest import APPS, DEADLINE, parse_fields, pid_alive, run_wrk, serve, wait_for
from rawhttp import (read_response, read_responses, recv_until, recv_until_closed, send_and_read_all,
                     send_and_read_until_closed, wait_until_the_server_is_blocked)

def test_raw_app_hello_and_scope(rotor):
    r = serve(rotor, "raw_app:app")
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/").text == "Hello, world!"
        resp = c.get("/scope/caf%C3%A9%20x?a=1&b=%20", headers={"X-Two": "1"})
        scope = resp.json()
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/café x"
    assert scope["raw_path"] == "/scope/caf%C3%A9%20x"
    assert scope["query_string"] == "a=1&b=%20"
    assert ["x-two", "1"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", r.port]
    assert scope["root_path"] == ""
    # lifespan state reached the request (a copy per request)
    assert scope["state"]["started_by"] == scope["pid"]


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


def test_env_flags_reach_the_import_and_the_workers_and_a_hup_updates_them(rotor, tmp_path):
    conf = tmp_path / "rotor.toml"
    conf.write_text('env = ["FROM_FILE=toml"]\n')
    r = serve(rotor, "raw_app:app", "-c", str(conf), "-e", "GREETING=hello, world", "--env",
              "EMPTY=", "-e", "TWICE=first", "-e", "TWICE=second")
    names = "GREETING&EMPTY&TWICE&FROM_FILE"
    seen = httpx.get(r.url("/env?" + names)).json()
    assert seen == {"GREETING": ["hello, world"] * 2, "EMPTY": [""] * 2,
                    "TWICE": ["second"] * 2, "FROM_FILE": [None, None]}  # the CLI list wins
    # A HUP reads the config again: the file's list now that the command line has none.
    r2 = serve(rotor, "raw_app:app", "-c", str(conf))
    assert httpx.get(r2.url("/env?FROM_FILE")).json() == {"FROM_FILE": ["toml"] * 2}
    conf.write_text('env = ["FROM_FILE=reloaded"]\n')
    old = set(r2.ready_pids())
    r2.signal(signal.SIGHUP)
    wait_for(lambda: r2.ready_pids() and not set(r2.ready_pids()) & old,
             what=f"workers of the reloaded config\n{r2.log()}")
    assert httpx.get(r2.url("/env?FROM_FILE")).json() == {"FROM_FILE": ["reloaded"] * 2}
    # Cold workers too; and a variable dropped from the list is gone from the next generation.
    conf.write_text('env = ["DROPPED=1"]\n')
    r3 = serve(rotor, "raw_app:app", "-c", str(conf), "--no-preload")
    assert httpx.get(r3.url("/env?DROPPED&ADDED")).json() == {"DROPPED": ["1"] * 2,
                                                             "ADDED": [None] * 2}
    conf.write_text('env = ["ADDED=2"]\n')
    old = set(r3.ready_pids())
    r3.signal(signal.SIGHUP)
    wait_for(lambda: r3.ready_pids() and not set(r3.ready_pids()) & old,
             what=f"workers of the reloaded config\n{r3.log()}")
    assert httpx.get(r3.url("/env?DROPPED&ADDED")).json() == {"DROPPED": [None] * 2,
                                                             "ADDED": ["2"] * 2}


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


def test_starlette_app(rotor):
    r = serve(rotor, "starlette_app:app")
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/").text == "Hello, world!"
        item = c.get("/items/42", params={"q": "x y"}).json()
        assert item["id"] == "42" and item["q"] == "x y"
        assert item["greeting"] == "hi from lifespan"
        payload = {"a": [1, 2]}
        assert c.post("/echo", json=payload).json() == {"length": len(json.dumps(payload)),
                                                          "json": payload}
        assert c.get("/stream").text == "chunk 0\nchunk 1\nchunk 2\n"
        assert c.get("/background").text == "ok"
        wait_for(lambda: c.get("/count").json()["background_done"] >= 1,
                 what="the background task")


def test_proxy_headers_from_trusted_peers_set_client_and_scheme(rotor):
    # As uvicorn (and gunicorn + UvicornWorker): by default 127.0.0.1 is a trusted proxy.
    proxied = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto": "https"}
    r = serve(rotor, "starlette_app:app")
    with httpx.Client(base_url=r.url()) as c:
        me = c.get("/whoami", headers=proxied).json()
        assert me["client"] == ["203.0.113.7", 0], me  # the address the proxy appended
        assert me["scheme"] == "https" and me["url_for"].startswith("https://"), me
        plain = c.get("/whoami").json()
        assert plain["client"][0] == "127.0.0.1" and plain["client"][1] > 0, plain
        assert plain["scheme"] == "http", plain
        # A scheme other than http/https is ignored; the client still comes from the header.
        odd = c.get("/whoami", headers={"X-Forwarded-For": "198.51.100.9",
                                        "X-Forwarded-Proto": "gopher"}).json()
        assert odd["client"] == ["198.51.100.9", 0] and odd["scheme"] == "http", odd
        # Several X-Forwarded-For fields are one list, in order.
        raw, _ = send_and_read_until_closed(
            r.port, b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"X-Forwarded-For: 198.51.100.1\r\n"
                    b"X-Forwarded-For: 198.51.100.2\r\n\r\n", timeout=10)
        assert b'"client":["198.51.100.2",0]' in raw, raw
    r.stop()

    # The peer (127.0.0.1) is not in the list: the headers are the client's own claims.
    r = serve(rotor, "starlette_app:app", "--forwarded-allow-ips", "10.0.0.0/8, 192.0.2.1")
    with httpx.Client(base_url=r.url()) as c:
        me = c.get("/whoami", headers=proxied).json()
        assert me["client"][0] == "127.0.0.1" and me["scheme"] == "http", me
    r.stop()

    # Chained proxies: every trusted hop is skipped, from the right.
    r = serve(rotor, "starlette_app:app", env={"FORWARDED_ALLOW_IPS": "127.0.0.1,10.0.0.0/8"})
    with httpx.Client(base_url=r.url()) as c:
        me = c.get("/whoami", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.2, 10.0.0.5"})
        assert me.json()["client"] == ["198.51.100.2", 0], me.text
    r.stop()

    r = serve(rotor, "starlette_app:app", "--no-proxy-headers")
    with httpx.Client(base_url=r.url()) as c:
        me = c.get("/whoami", headers=proxied).json()
        assert me["client"][0] == "127.0.0.1" and me["scheme"] == "http", me


def test_bad_forwarded_allow_ips_is_one_line_exit_2(rotor):
    for value in ("300.1.1.1", "10.0.0.0/33", "localhost"):
        r = serve(rotor, "raw_app:app", "--forwarded-allow-ips", value, wait=False)
        assert r.wait_exit() == 2
        lines = [l for l in r.log().splitlines() if l.strip()]
        assert len(lines) == 1, lines
        assert lines[0].startswith("rotor: error: --forwarded-allow-ips: expected '*' or IP"), lines
        assert f"'{value}'" in lines[0], lines


def test_fastapi_app(rotor):
    r = serve(rotor, "fastapi_app:app")
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/").json() == {"message": "Hello, world!"}
        assert c.get("/items/5", params={"q": "z"}).json()["item_id"] == 5
        assert c.get("/items/notanint").status_code == 422
        resp = c.post("/items", json={"name": "pen", "price": 1.5})
        assert resp.json() == {"name": "pen", "price": 1.5, "double": 3.0}
        assert c.post("/items", json={"name": "pen"}).status_code == 422


def test_asgi2_and_factory(rotor):
    r = serve(rotor, "asgi2_app:app")
    assert httpx.get(r.url("/x")).text == "asgi2 /x"
    r2 = serve(rotor, "factory_app:create_app", "--factory")
    assert httpx.get(r2.url("/")).text == "from factory"


@pytest.mark.parametrize("app,needle", [
    ("no_such_module:app", "No module named 'no_such_module'"),
    ("raw_app:missing", "has no attribute 'missing'"),
    ("broken_import:app", "ImportError: this module is broken on purpose"),
])
def test_app_load_errors_exit_4(rotor, app, needle):
    r = serve(rotor, app, wait=False)
    assert r.wait_exit() == 4, r.log()
    assert needle in r.log()
    assert len(r.events("spawn")) <= 1, "no fork loop"


def test_bad_python_path_exits_2(rotor):
    r = serve(rotor, "raw_app:app", "--python", "/nonexistent/python", wait=False)
    assert r.wait_exit() == 2
    assert "rotor: error: --python: expected an executable Python interpreter" in r.log()


def test_gunicorn_command_line_works(rotor):
    r = rotor("--chdir", str(APPS), "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
              "--max-requests", "100", "--max-requests-jitter", "10", "--threads", "4",
              "starlette_app:app", workers=2)
    assert httpx.get(r.url("/")).text == "Hello, world!"
    assert "--threads is a gunicorn option rotor ignores" in r.log()


def test_uvicorn_command_line_works(rotor, tmp_path):
    # uvicorn main:app --host ... --port ... --workers 2 ..., with rotor in place of uvicorn.
    r = rotor("--host", "127.0.0.1", "--port", "0", "--workers", "2", "--app-dir", str(APPS),
              "--timeout-keep-alive", "5", "--limit-max-requests", "1000", "--log-level", "trace",
              "--access-log", "--http", "httptools", "starlette_app:app", bind=False, workers=2)
    assert httpx.get(r.url("/")).text == "Hello, world!"
    sock = tmp_path / "r.sock"  # --uds wins over --port, as in uvicorn
    u = rotor("--uds", str(sock), "--port", "1", "--app-dir", str(APPS), "starlette_app:app",
              bind=False, wait=False)
    u.wait_ready(1)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as c:
        assert c.get("http://unix/").text == "Hello, world!"
    wait_for(lambda: '"GET / HTTP/1.1" 200' in r.log(), what=f"access log lines\n{r.log()}")
    assert "--http is a uvicorn option rotor ignores" in r.log()
    spawns = r.events("spawn")
    assert spawns and all(1000 <= int(f["limit"]) for f in spawns)


def test_rotation_under_load_with_asgi_app(rotor):
    r = serve(rotor, "raw_app:app", "--max-requests", "1000", "--max-requests-jitter", "100",
              workers=2)
    stats = run_wrk(r.url("/"), duration=5, connections=16)
    assert stats["errors"] == 0, stats["raw"]
    rotations = [f for f in r.events("worker-exit") if f["reason"] == "max-requests"]
    assert len(rotations) >= 3, r.log()


def test_hup_under_load_with_asgi_app(rotor):
    import threading
    from test_supervisor import established
    r = serve(rotor, "raw_app:app", workers=2)
    before = set(r.ready_pids())
    result, errors = {}, []

    def load():
        try:
            result.update(run_wrk(r.url("/"), 8, 16))
        except BaseException as e:  # handed to the test below
            errors.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    # The reload starts once wrk's connections are up, and is over while wrk still runs.
    wait_for(lambda: established(r.port) >= 16 or not t.is_alive(), what="wrk's connections")
    assert t.is_alive(), f"wrk ended before the reload: {errors} {result.get('raw')}"
    r.signal(signal.SIGHUP)

    def reloaded():
        return before <= {int(f["pid"]) for f in r.events("worker-exit")
                          if f["reason"] == "reload"}
    wait_for(lambda: reloaded() or not t.is_alive(), what=f"the reload\n{r.log()}")
    assert reloaded() and t.is_alive(), f"the load did not overlap the reload\n{r.log()}"
    t.join(120)
    if errors:
        raise errors[0]
    assert result["requests"] > 0, result["raw"]
    assert result["errors"] == 0, result["raw"]


def test_blocked_event_loop_is_killed_with_a_python_traceback(rotor):
    r = serve(rotor, "raw_app:app", "--timeout", "2")
    blocked = r.ready_pids()[0]
    with pytest.raises(httpx.HTTPError):
        httpx.get(r.url("/block"), timeout=20)  # the worker is killed under this request
    wait_for(lambda: any(int(f["pid"]) == blocked and f["reason"] == "timeout"
                         for f in r.events("worker-exit")), what="the timeout kill")
    log = r.log()
    # faulthandler's dump on SIGABRT shows where the app was stuck.
    assert "raw_app.py" in log and "in app" in log, log
    r.wait_ready(1)
    assert httpx.get(r.url("/")).text == "Hello, world!"


def test_request_timeout_gives_504_and_the_worker_lives_on(rotor):
    r = serve(rotor, "raw_app:app", "--timeout-request", "0.5")
    with httpx.Client(base_url=r.url(), timeout=20) as c:
        resp = c.get("/sleep", params={"s": "10"})
        assert resp.status_code == 504
        assert c.get("/sleep", params={"s": "0.01"}).text == "slept"
    assert "request timed out after 0.5s" in r.log()


def test_limit_concurrency_stops_accepting(rotor):
    import threading
    import time
    r = serve(rotor, "raw_app:app", "--limit-concurrency", "1")
    done = {}

    def slow():
        httpx.get(r.url("/sleep?s=1.5"), timeout=30)
        done["slow"] = time.monotonic()
    t = threading.Thread(target=slow)
    t.start()
    wait_for(lambda: r.events("accept-paused"), what="the worker to stop accepting")
    # A new connection waits in the shared queue until the request in flight (1.5 s, begun
    # before the pause was logged) is answered; served concurrently it would take milliseconds.
    start = time.monotonic()
    httpx.get(r.url("/"), timeout=30)
    waited = time.monotonic() - start
    t.join()
    assert "slow" in done
    assert waited > 0.5, f"the second connection was served concurrently ({waited:.3f}s)"
    assert r.events("accept-paused")[0]["reason"] == "limit-concurrency"


def test_gc_knobs(rotor):
    r = serve(rotor, "raw_app:app", "--gc-threshold", "1000,20,30", "--gc-freeze",
              "--gc-collect-every", "5")
    with httpx.Client(base_url=r.url()) as c:
        first = c.get("/gc").json()
        assert first["threshold"] == [1000, 20, 30]
        assert first["frozen"] > 0
        for _ in range(10):
            c.get("/")
        later = c.get("/gc").json()
    # 11 responses since the first /gc: at least two full collections ran.
    assert later["full_collections"] >= first["full_collections"] + 2, (first, later)


@pytest.mark.parametrize("loop,expected", [("asyncio", "asyncio"), ("uvloop", "uvloop"),
                                           ("auto", "uvloop")])
def test_event_loop_choice(rotor, loop, expected):
    r = serve(rotor, "raw_app:app", "--loop", loop)
    assert httpx.get(r.url("/loop")).text == expected


def test_loop_auto_falls_back_when_uvloop_is_missing(rotor, tmp_path):
    # A module named uvloop that cannot be imported hides Debian's uvloop.
    (tmp_path / "uvloop.py").write_text("raise ImportError('no uvloop here')\n")
    r = serve(rotor, "raw_app:app", "--pythonpath", str(tmp_path))
    assert httpx.get(r.url("/loop")).text == "asyncio"
    r2 = serve(rotor, "raw_app:app", "--pythonpath", str(tmp_path), "--loop", "uvloop", wait=False)
    assert r2.wait_exit() == 3
    assert "no uvloop here" in r2.log()


def test_python_executable_and_virtualenv(rotor, tmp_path):
    import subprocess
    # Default: the interpreter rotor was built against, whatever python3 is first on PATH.
    r = serve(rotor, "raw_app:app")
    info = httpx.get(r.url("/sys")).json()
    assert info["executable"] == "/usr/bin/python3"
    assert info["path0"][0] == str(APPS)  # the working directory (--chdir) comes first
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip",
                    "--system-site-packages", str(venv)], check=True)
    for how in ("--python", "VIRTUAL_ENV"):
        if how == "--python":
            rv = serve(rotor, "raw_app:app", "--python", str(venv / "bin" / "python"))
        else:
            rv = serve(rotor, "raw_app:app", env={"VIRTUAL_ENV": str(venv)})
        info = httpx.get(rv.url("/sys")).json()
        assert info["executable"] == str(venv / "bin" / "python"), (how, info)
        assert info["prefix"] == str(venv), (how, info)


def test_lifespan_shutdown_runs_in_each_worker_on_term(rotor):
    r = serve(rotor, "raw_app:app", workers=2)
    pids = r.ready_pids()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    for pid in pids:
        assert f"rotor-test: lifespan shutdown in {pid}" in r.log(), r.log()


def test_lifespan_on_with_failing_startup_fails_the_boot(rotor, tmp_path):
    (tmp_path / "failing_lifespan.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        await receive()\n"
        "        await send({'type': 'lifespan.startup.failed', 'message': 'db unreachable'})\n")
    r = rotor("--chdir", str(tmp_path), "--lifespan", "on", "failing_lifespan:app", wait=False)
    assert r.wait_exit() == 3, r.log()
    assert "db unreachable" in r.log()


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
    # README: a client that half-closes still gets its answers; the app sees the disconnect
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


@pytest.mark.parametrize("target, path, query", [
    ("HTTP://other.example/a/b?q=2", "/a/b", "q=2"),
    ("https://other.example/a", "/a", ""),
    ("http://other.example?q=1", "/", "q=1"),
    ("http://other.example", "/", ""),
])
def test_absolute_form_targets_in_the_scope(rotor, target, path, query):
    r = serve(rotor, "raw_app:app")
    request = f"GET {target} HTTP/1.1\r\nHost: t\r\nX-Dump-Scope: 1\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(request)
        status, _, body = read_response(s)
    assert status == "HTTP/1.1 200 OK", body
    assert json.loads(body) == {"path": path, "raw_path": path, "query_string": query}


def test_idle_asgi_worker_does_not_spin(rotor):
    r = serve(rotor, "raw_app:app")
    worker = r.ready_pids()[0]
    assert httpx.get(r.url("/")).status_code == 200

    def cpu_ns():
        with open(f"/proc/{worker}/schedstat") as f:
            return int(f.read().split()[0])
    import time
    start = cpu_ns()
    time.sleep(2)  # measuring an idle interval, not waiting for a condition
    used_ms = (cpu_ns() - start) / 1e6
    assert used_ms < 100, f"an idle worker used {used_ms:.1f} ms of CPU in 2 s"


def test_access_log_for_asgi_requests(rotor, tmp_path):
    access = tmp_path / "access.log"
    r = serve(rotor, "raw_app:app", "--access-logfile", str(access), "--access-logformat",
              '%(h)s "%(r)s" %(s)s %(b)s %(p)s %(D)s')
    worker = r.ready_pids()[0]
    httpx.get(r.url("/scope?x=1"))
    httpx.get(r.url("/raise-before"))
    lines = wait_for(lambda: len(access.read_text().splitlines()) >= 1 and
                     access.read_text().splitlines(), what="an access log line")
    first = lines[0].split()
    assert first[0] == "127.0.0.1" and first[1:4] == ['"GET', "/scope?x=1", 'HTTP/1.1"']
    assert first[4] == "200" and int(first[5]) > 0 and first[6] == f"<{worker}>"
    assert int(first[7]) >= 0


# --- unix sockets ------------------------------------------------------------------------------


def test_unix_socket_bind_serves_the_app_with_spec_server_and_client(rotor, tmp_path):
    access = tmp_path / "access.log"
    # A short directory: sun_path holds 108 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="rotor-", dir="/tmp") as d:
        path = os.path.join(d, "r.sock")
        # The fixture adds -b 127.0.0.1:0 as well: one worker serves both listeners.
        r = serve(rotor, "raw_app:app", "-b", f"unix:{path}", "--access-logfile", str(access),
                  "--access-logformat", '%(h)s "%(r)s" %(s)s')
        assert f"unix:{path}" in [f["address"] for f in r.events("listening")], r.log()
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        with httpx.Client(transport=httpx.HTTPTransport(uds=path),
                          base_url="http://rotor.test", timeout=30) as c:
            assert c.get("/").text == "Hello, world!"
            scope = c.get("/scope/x?y=1").json()
            body = os.urandom(512 * 1024)
            echoed = c.post("/echo", content=body)
            assert echoed.status_code == 200 and echoed.content == body
        # ASGI spec (www 2.2+): `server` of a unix socket is [path, None]; `client` is a host
        # address and port, which a unix peer has not: None ("optional, defaults to None").
        assert scope["server"] == [path, None], scope
        assert scope["client"] is None, scope
        assert scope["path"] == "/scope/x" and scope["query_string"] == "y=1"
        assert ["host", "rotor.test"] in scope["headers"]
        # The same worker on the TCP listener: the scope names the listener the request used.
        tcp = httpx.get(r.url("/scope")).json()
        assert tcp["pid"] == scope["pid"]
        assert tcp["server"] == ["127.0.0.1", r.port] and tcp["client"][0] == "127.0.0.1"

        # A raw AF_UNIX client: keep-alive (two requests on one connection), then HTTP/1.0.
        out = send_and_read_all(path, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                                      b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert out.count(b"HTTP/1.1 200 ") == 2 and out.count(b"Hello, world!") == 2, out
        out = send_and_read_all(path, b"GET / HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"Hello, world!"), out

        # The access log has no address for a unix peer: "-".
        lines = wait_for(lambda: [l for l in access.read_text().splitlines()
                                  if '"GET /scope/x?y=1 HTTP/1.1"' in l], what="the access line")
        assert lines[0].split()[0] == "-", lines

        r.signal(signal.SIGTERM)
        assert r.wait_exit() == 0, r.log()
        assert not os.path.exists(path), "the master left its socket file behind"


# --- write backpressure ------------------------------------------------------------------------

BIG_CHUNK = 64 * 1024


def _proc_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith(field + ":")).split()[1])


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


# --- signals -----------------------------------------------------------------------------------

def _proc_status_mask(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith(field + ":")).split()[1], 16)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_python_installs_no_signal_handlers(rotor, loop):
    r = serve(rotor, "raw_app:app", "--loop", loop)
    worker = r.ready_pids()[0]
    seen = httpx.get(r.url("/signals")).json()
    # rotor's handlers are C handlers (libuv), installed before Python starts; Python, told
    # not to install its own, reports such a handler as None. Python's own SIGINT handler
    # would be <built-in function default_int_handler> (KeyboardInterrupt in the app).
    for name in ("SIGINT", "SIGTERM", "SIGQUIT"):
        assert seen[name] == "None", seen
    assert "default_int_handler" not in json.dumps(seen)
    assert seen["SIGPIPE"] == "<Handlers.SIG_IGN: 1>", seen
    # The kernel's view agrees: the worker catches INT, TERM and QUIT and ignores PIPE.
    caught, ignored = _proc_status_mask(worker, "SigCgt"), _proc_status_mask(worker, "SigIgn")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        assert caught & (1 << (sig - 1)), f"{sig!r} is not caught"
    assert ignored & (1 << (signal.SIGPIPE - 1))


def _hold_request(r, rid):
    """A connection whose request the app holds (never answered); returns the socket."""
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    s.sendall(f"GET /hold?id={rid} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return s


def _assert_no_python_interrupt(log):
    assert "KeyboardInterrupt" not in log, log
    assert "Traceback" not in log, log


def test_sigint_to_a_worker_is_a_fast_stop_and_the_master_replaces_it(rotor):
    r = serve(rotor, "raw_app:app", "--graceful-timeout", "60")
    victim = r.ready_pids()[0]
    s = _hold_request(r, "a")
    try:
        wait_for(lambda: f"rotor-test: holding a in {victim}" in r.log(),
                 what="the request to reach the app")
        t0 = time.monotonic()
        os.kill(victim, signal.SIGINT)
        # A fast stop: the held request (and the 60 s graceful timeout) does not hold it up.
        wait_for(lambda: not pid_alive(victim), 15, what=f"worker {victim} to exit")
        took = time.monotonic() - t0
        data, closed = recv_until_closed(s, 10)
    finally:
        s.close()
    assert took < 10, f"the worker took {took:.1f}s to stop"
    assert closed and data == b"", data
    exit_ = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == victim],
                     what="the worker-exit line")[0]
    # It stopped through rotor's handler (exit 0), not killed by the signal nor by an
    # uncaught KeyboardInterrupt.
    assert exit_["status"] == "exit:0", exit_
    new = wait_for(lambda: [p for p in r.ready_pids() if p != victim],
                   what=f"a replacement worker\n{r.log()}")
    assert r.proc.poll() is None, "the master stopped"
    with httpx.Client(base_url=r.url(), timeout=30) as c:
        assert c.get("/").text == "Hello, world!"
        assert c.get("/scope").json()["pid"] == new[0]
    _assert_no_python_interrupt(r.log())


@pytest.mark.parametrize("target", ["master", "process-group"])
def test_sigint_stops_everything_fast_without_keyboard_interrupt(rotor, target):
    r = serve(rotor, "raw_app:app", "--graceful-timeout", "60", workers=2)
    workers = r.ready_pids()
    # Requests in flight that a graceful stop would wait for (up to 60 s).
    socks = [_hold_request(r, "a"), _hold_request(r, "b")]
    try:
        wait_for(lambda: "rotor-test: holding a in" in r.log() and
                 "rotor-test: holding b in" in r.log(), what="both requests to reach the app")
        t0 = time.monotonic()
        if target == "master":
            r.signal(signal.SIGINT)
        else:
            # Ctrl-C in a terminal: every process of the foreground group gets SIGINT.
            assert all(os.getpgid(p) == r.pid for p in workers)
            os.killpg(r.pid, signal.SIGINT)
        assert r.wait_exit(20) == 0, r.log()
        took = time.monotonic() - t0
        for s in socks:
            data, closed = recv_until_closed(s, 10)
            assert closed and data == b"", data
    finally:
        for s in socks:
            s.close()
    assert took < 10, f"the stop took {took:.1f}s (a graceful one would wait for the requests)"
    assert r.events("shutdown")[0]["mode"] == "fast", r.log()
    for pid in workers:
        wait_for(lambda: not pid_alive(pid), 5, what=f"worker {pid} to be gone")
    # No worker was replaced during the stop.
    assert len(r.events("spawn")) == 2, r.log()
    _assert_no_python_interrupt(r.log())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_asyncio_semantics_hold_for_requests_started_at_once(rotor, loop):
    # Requests without a body are started at once from the engine; what an app sees of
    # asyncio must be what it would see in a task of its own.
    r = serve(rotor, "eager_app:app", "--loop", loop)
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/task").text == "True True asyncio"
        for _ in range(3):  # a context variable never leaks into the next request
            assert c.get("/ctx-sync").text == "unset"
            assert c.get("/ctx-async").text == "unset leaked"
        assert c.get("/anyio").text == "anyio ok"
        assert c.get("/cancel-self").text == "caught"
        for _ in range(3):  # a cancellation requested too late reaches nobody else
            assert c.get("/cancel-sync").text == "cancelled later"
            assert c.get("/task").text == "True True asyncio"
            assert c.get("/").text == "ok"
        assert c.get("/ensure-future").text == "via task"
        resp = c.get("/raise-sync")
        assert resp.status_code == 500
        assert c.get("/").text == "ok"
    # Requests in flight together each have their own task.
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: httpx.get(r.url("/task-id?n=4"), timeout=10).text,
                            range(4)))
    assert len(set(ids)) == 4, ids
    assert "boom before any await" in r.log()
    assert not r.lines("worker-exit")


@pytest.mark.parametrize("app", ["eager_app:app", "eager_app:AwaitableApp"])
def test_what_an_app_leaves_undone_is_answered_however_it_started(rotor, app):
    # After a suspension the request is carried on by a task; a failure, a missing answer or an
    # unfinished body is answered as for a request that started as a task. The second app
    # is a class: calling it gives an awaitable that is no coroutine.
    r = serve(rotor, app)
    with httpx.Client(base_url=r.url()) as c:
        assert c.get("/task").text == "True True asyncio"
        assert c.get("/raise-sync").status_code == 500
        assert c.get("/raise-later").status_code == 500
        assert c.get("/no-answer").status_code == 500
        resp = c.get("/unfinished")
        assert (resp.status_code, resp.content) == (200, b"part")
        assert c.post("/no-answer", content=b"x").status_code == 500  # a body: a task from the start
        assert c.get("/").text == "ok"
    log = r.log()
    assert "boom before any await" in log and "boom after an await" in log
    assert "returned without a response" in log
    assert not r.lines("worker-exit")


def test_a_late_failure_closes_the_connection_at_once(rotor):
    # The 500 for an app that fails after an await says Connection: close; the server must then
    # close its side, not leave the connection open until the keep-alive timeout.
    r = serve(rotor, "eager_app:app", "--keep-alive", "60")
    for path in ("/raise-later", "/raise-sync"):
        with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            started = time.monotonic()
            data, closed = recv_until_closed(s, timeout=10)
            assert data.startswith(b"HTTP/1.1 500 ") and b"connection: close" in data.lower()
            assert closed and time.monotonic() - started < 5, (path, data)


# --- the bridge: contexts, waiters, work after the response, exits, logging --------------------

def _marks(r):
    return [l.split("MARK ", 1)[1] for l in r.log().splitlines() if "MARK " in l]


def test_context_variables_never_pass_from_one_request_to_another(rotor):
    r = serve(rotor, "bridge_app:app")
    # Pipelined on one connection: the second request is read in a loop pass that the first
    # one's send scheduled, yet starts from the worker's context, not from the first request's.
    for first in (b"POST /ctx/set?user=alice HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
                  b"GET /ctx/set?user=alice HTTP/1.1\r\nHost: t\r\n\r\n",
                  b"GET /ctx/stream?user=alice HTTP/1.1\r\nHost: t\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", r.port), timeout=DEADLINE) as s:
            s.sendall(first + b"GET /ctx/get HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            got, closed = recv_until_closed(s, DEADLINE)
            assert closed and got.endswith(b"\r\n\r\nNone"), (first, got[-300:])
    # Concurrent: requests that set the var and stream (scheduling loop passes from their own
    # context) while anonymous requests on other connections must never see it.
    stop = threading.Event()
    failures, streamed = [], [0, 0]

    def alice(i):
        try:
            with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
                while not stop.is_set():
                    resp = c.get("/ctx/stream", params={"user": "alice"})
                    assert resp.status_code == 200 and len(resp.content) == 10000, resp
                    streamed[i] += 1
        except BaseException as exc:  # raised in the test's own thread below
            failures.append(exc)

    threads = [threading.Thread(target=alice, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
            seen = [c.get("/ctx/get").text for _ in range(300)]
        alongside = list(streamed)
    finally:
        stop.set()
        for t in threads:
            t.join()
    if failures:
        raise failures[0]
    assert seen.count("None") == len(seen), f"leaked: {[v for v in seen if v != 'None'][:5]}"
    # Both streaming clients ran while the anonymous requests were made.
    assert all(alongside), alongside


def _late_reader(port, request):
    """A connection with a small receive buffer that has sent `request` and reads nothing
    until the server's writes to it are blocked: its sends pause."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(DEADLINE)
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    wait_until_the_server_is_blocked(s, port)
    return s


def test_a_paused_send_and_a_waiting_receive_each_get_their_wake_up(rotor):
    r = serve(rotor, "bridge_app:app", "--graceful-timeout", "2")
    n = 64  # 4 MiB: send has to pause while the client does not read
    # The listener task is in receive() meanwhile; the sender pauses on the full socket.
    with _late_reader(r.port,
                      f"GET /paused-and-listening?n={n} HTTP/1.1\r\nHost: t\r\n\r\n".encode()) as s:
        assert "sender finished" not in _marks(r)  # its send is paused
        [(status, _, body)] = read_responses(s, 1)
        assert status.startswith("HTTP/1.1 200") and body == b"z" * (n * 65536)
        wait_for(lambda: "sender finished" in _marks(r), what="the sender to finish")
        # The response is complete: the listener's receive() gets http.disconnect.
        wait_for(lambda: "listener got http.disconnect" in _marks(r), what="the listener")


def test_server_sent_events_generator_is_cancelled_when_the_client_leaves(rotor):
    # Starlette's StreamingResponse listens for http.disconnect in receive() while its sender
    # streams; the burst makes that send pause first (the client reads late).
    r = serve(rotor, "starlette_sse_app:app", "--graceful-timeout", "2")
    burst = 64  # 4 MiB
    with _late_reader(r.port, f"GET /sse?burst={burst} HTTP/1.1\r\nHost: t\r\n\r\n".encode()) as s:
        assert "burst sent" not in _marks(r)  # its send is paused
        got, end = 0, time.monotonic() + DEADLINE
        while got < burst * 65544:
            assert time.monotonic() < end, f"{got} bytes of the burst after {DEADLINE}s"
            b = s.recv(1 << 20)
            assert b, "closed during the burst"
            got += len(b)
        wait_for(lambda: "burst sent" in _marks(r), what="the burst to be sent")
    # The client has gone while the stream idles: the generator must be cancelled.
    wait_for(lambda: "generator ended CancelledError" in _marks(r),
             what=f"the generator to be cancelled\n{r.log()[-3000:]}")


@pytest.mark.parametrize("app,path", [("starlette_sse_app:app", "/background"),
                                      ("bridge_app:app", "/after-response")])
def test_work_after_the_response_finishes_before_the_worker_exits_on_term(rotor, app, path):
    r = serve(rotor, app)
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get(path, params={"tag": "term", "seconds": "2"}).text == "accepted"
    wait_for(lambda: "background started term" in _marks(r), what="the background work")
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert "background finished term" in _marks(r), r.log()[-3000:]
    assert r.lines("drain-wait"), r.log()[-3000:]


def test_work_after_the_response_finishes_before_a_rotated_worker_exits(rotor):
    r = serve(rotor, "starlette_sse_app:app", "--max-requests", "1")
    old = r.ready_pids()[0]
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/background", params={"tag": "rot", "seconds": "2"}).text == "accepted"
    exited = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == old],
                      what="the rotated worker to exit")
    assert exited[0]["reason"] == "max-requests" and exited[0]["status"] == "exit:0"
    assert "background finished rot" in _marks(r), r.log()[-3000:]


def test_work_after_the_response_is_bounded_by_the_graceful_timeout(rotor):
    r = serve(rotor, "bridge_app:app", "--graceful-timeout", "2")
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/after-response", params={"tag": "long", "seconds": "600"}).text == \
            "accepted"
    wait_for(lambda: "background started long" in _marks(r), what="the background work")
    t0 = time.monotonic()
    r.signal(signal.SIGTERM)
    r.wait_exit()
    assert time.monotonic() - t0 < 15
    assert "background finished long" not in _marks(r)


def test_sys_exit_or_keyboard_interrupt_in_a_handler_fails_only_that_request(rotor):
    r = serve(rotor, "bridge_app:app", "-t", "10")
    pid = r.ready_pids()[0]
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        # An executor thread alive (as after a FastAPI sync endpoint) must not matter either.
        assert c.get("/thread").text == "thread"
        for path in ("/exit", "/exit-late", "/interrupt-late", "/exit"):
            assert c.get(path).status_code == 500, path
            assert c.get("/ctx/get").text == "None"
    assert r.ready_pids() == [pid] and not r.events("worker-exit"), r.log()[-3000:]
    errors = [f["error"] for f in r.events("app-error")]
    assert errors.count("SystemExit(3)") == 3 and errors.count("KeyboardInterrupt()") == 1, errors


def test_a_client_that_leaves_is_no_app_error(rotor):
    r = serve(rotor, "bridge_app:app")
    with socket.create_connection(("127.0.0.1", r.port), timeout=DEADLINE) as s:
        s.sendall(b"GET /until-gone HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
    wait_for(lambda: "send raised ClientDisconnected" in _marks(r), what="the app to see it")
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/ctx/get").text == "None"  # the worker serves on
    log = r.log()
    assert "level=error" not in log and "Traceback" not in log, log[-3000:]


def test_python_logging_goes_to_the_error_log_unless_the_app_configured_it(rotor):
    r = serve(rotor, "bridge_app:app")
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/log").text == "logged"
    lines = wait_for(lambda: len(r.lines("app-log")) >= 3 and r.lines("app-log"),
                     what="the app's log lines")
    fields = [parse_fields(l) for l in lines]
    assert {"level": "info", "role": "worker", "logger": "uvicorn.error",
            "message": "bridge_app lifespan startup"}.items() <= fields[0].items(), lines
    assert {"level": "info", "logger": "uvicorn.error",
            "message": "info via uvicorn.error"}.items() <= fields[1].items(), lines
    assert {"level": "warning", "logger": "some.library",
            "message": "warning via a library logger"}.items() <= fields[2].items(), lines
    assert not any("debug via" in l for l in lines)  # below --log-level info
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:?\d\d level=", lines[1])

    verbose = serve(rotor, "bridge_app:app", "--log-level", "debug")
    with httpx.Client(base_url=verbose.url(), timeout=DEADLINE) as c:
        assert c.get("/log").text == "logged"
    wait_for(lambda: any("debug via uvicorn.error" in l for l in verbose.lines("app-log")),
             what=f"the debug line\n{verbose.log()[-2000:]}")

    own = serve(rotor, "logging_app:app")
    with httpx.Client(base_url=own.url(), timeout=DEADLINE) as c:
        assert c.get("/").text == "logged"
    wait_for(lambda: "OWNFMT uvicorn.error info via uvicorn.error" in own.log(),
             what="the app's own format")
    assert not own.lines("app-log")


def test_receive_after_the_response_is_complete_says_disconnect(rotor):
    r = serve(rotor, "bridge_app:app")
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.post("/unread-then-receive", content=b"hello").text == "answered"
    wait_for(lambda: [m for m in _marks(r) if m.startswith("after the answer")],
             what="the app's receive")
    assert "after the answer receive gave http.disconnect body=0" in _marks(r)


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
