"""The asgi worker class: real apps (raw ASGI, Starlette, FastAPI) under the real binary."""
import json
import os
import signal
import socket

import httpx
import pytest

from conftest import DEADLINE, ROOT, run_wrk, wait_for

APPS = ROOT / "tests" / "apps"


def serve(rotor, app, *args, workers=1, **kw):
    return rotor("--chdir", str(APPS), "-w", str(workers), *args, app, workers=workers, **kw)


def raw_exchange(port, data, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            out += b
        return out


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
    out = raw_exchange(r.port, b"GET /bad-header HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500") and b"Injected" not in out


def test_client_disconnect_is_seen_by_the_app(rotor):
    r = serve(rotor, "raw_app:app")
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"GET /disconnect HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: r.lines("worker-ready"), what="worker")  # request is in the app now
    wait_for(lambda: "rotor-test: saw http.disconnect" in r.log(), what="the app's disconnect")
    # send after the disconnect raises an OSError subclass (ASGI spec)
    wait_for(lambda: "rotor-test: send raised ClientDisconnected" in r.log(),
             what="send to fail after the disconnect")


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


def test_rotation_under_load_with_asgi_app(rotor):
    r = serve(rotor, "raw_app:app", "--max-requests", "1000", "--max-requests-jitter", "100",
              workers=2)
    stats = run_wrk(r.url("/"), duration=5, connections=16)
    assert stats["errors"] == 0, stats["raw"]
    rotations = [f for f in r.events("worker-exit") if f["reason"] == "max-requests"]
    assert len(rotations) >= 3, r.log()


def test_hup_under_load_with_asgi_app(rotor):
    import threading
    r = serve(rotor, "raw_app:app", workers=2)
    before = set(r.ready_pids())
    result = {}
    t = threading.Thread(target=lambda: result.update(run_wrk(r.url("/"), 5, 16)))
    t.start()
    wait_for(lambda: True)
    r.signal(signal.SIGHUP)
    t.join()
    assert result["errors"] == 0, result["raw"]
    exited = {int(f["pid"]) for f in r.events("worker-exit") if f["reason"] == "reload"}
    assert before <= exited, r.log()


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


def _vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM:")).split()[1])


def test_request_body_streams_with_flow_control(rotor):
    r = serve(rotor, "raw_app:app")
    worker = r.ready_pids()[0]
    with httpx.Client(base_url=r.url(), timeout=60) as c:
        # A large body reaches the app in several http.request messages.
        resp = c.post("/echo", content=os.urandom(3 * 1024 * 1024))
        assert int(resp.headers["x-chunks"]) > 1
        before = _vm_hwm_kb(worker)
        # 8 MiB to an app that takes 50 ms per receive: reading pauses at the high-water mark
        # instead of buffering the body (which would take at least 8 MiB more).
        size = 8 * 1024 * 1024

        def gen():
            block = b"x" * (256 * 1024)
            for _ in range(size // len(block)):
                yield block
        assert c.post("/slow-reader?0.05", content=gen()).text == str(size)
    grown_kb = _vm_hwm_kb(worker) - before
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
