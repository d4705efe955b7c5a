"""The bridge between the engine and the app's event loop: requests started at once, context
variables, wake-ups of paused sends and waiting receives, work after the response, SystemExit in
a handler, a client that leaves, and Python logging."""
import re
import signal
import socket
import threading
import time

import httpx
import pytest

from conftest import DEADLINE, parse_fields, serve, wait_for
from rawhttp import read_responses, recv_until_closed, wait_until_the_server_is_blocked


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
