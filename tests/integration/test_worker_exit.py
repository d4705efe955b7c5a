"""A worker leaves as a Python process ends: at every rotation and on TERM it waits for the
app's non-daemon threads and executor jobs (bounded by --graceful-timeout), runs atexit
handlers and flushes stdio, and says in the log what it waited for."""
import base64
import os
import signal
import socket
import struct
import time

import httpx
import pytest

from conftest import DEADLINE, ROOT, pid_alive, wait_for

APPS = ROOT / "tests" / "apps"
MODES = ["--preload", "--no-preload"]  # workers forked from the template, and cold ones


def serve(rotor, marks, *args, workers=1):
    return rotor("--chdir", str(APPS), "-w", str(workers), *args, "exit_app:app",
                 env={"EXIT_APP_FILE": str(marks)}, workers=workers)


def read_marks(marks):
    return marks.read_text().splitlines() if marks.exists() else []


def get(r, path, **params):
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        resp = c.get(path, params=params)
    assert resp.status_code == 200, resp.text
    return int(resp.text.split()[-1])  # the pid that answered


def exit_of(r, pid):
    found = [f for f in r.events("python-exit") if int(f["pid"]) == pid]
    return found[0] if found else None


@pytest.mark.parametrize("mode", MODES)
def test_a_rotated_worker_finishes_its_threads_and_runs_atexit(rotor, tmp_path, mode):
    # The reproduction: two requests each start a thread that writes 2 s later; the
    # second reaches --max-requests and the worker rotates.
    marks = tmp_path / "marks"
    r = serve(rotor, marks, mode, "--max-requests", "2")
    old = r.ready_pids()[0]
    # One connection: its worker's successor, started ahead of the limit, takes no part.
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        for tag in "ab":
            resp = c.get("/thread", params={"tag": tag, "seconds": "2"})
            assert resp.text == f"/thread {old}", resp.text
    exited = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == old],
                      what=f"the rotated worker to exit\n{r.log()}")
    assert exited[0]["reason"] == "max-requests" and exited[0]["status"] == "exit:0", exited
    assert {"thread a", "thread b", f"atexit {old}"} <= set(read_marks(marks)), r.log()
    # Exit handlers run after the threads, as in Python's own exit.
    assert read_marks(marks).index(f"atexit {old}") > read_marks(marks).index("thread b")
    line = exit_of(r, old)
    assert line and int(line["threads"]) >= 2 and int(line["atexit"]) >= 1, r.log()
    assert f"unflushed print at exit {old}" in r.log()
    assert not r.events("python-exit-timeout"), r.log()


@pytest.mark.parametrize("mode", MODES)
def test_term_waits_for_threads_executor_jobs_and_atexit(rotor, tmp_path, mode):
    marks = tmp_path / "marks"
    r = serve(rotor, marks, mode, "--graceful-timeout", "20")
    pid = r.ready_pids()[0]
    get(r, "/thread", tag="t", seconds="2")
    get(r, "/executor", tag="e1", seconds="2")
    get(r, "/executor", tag="e2", seconds="1")
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0, r.log()
    assert {"thread t", "executor e1", "executor e2", f"atexit {pid}"} <= set(read_marks(marks)), \
        r.log()
    line = exit_of(r, pid)
    # The job's thread, and the executor's two.
    assert line and int(line["threads"]) == 3, r.log()
    assert f"unflushed print at exit {pid}" in r.log()
    assert not r.events("python-exit-timeout") and not r.events("worker-kill"), r.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_asyncio_tasks_the_app_left_pending_are_cancelled_and_their_cleanup_runs(
        rotor, tmp_path, sig):
    # As asyncio.run ends (uvicorn's way out): a task still pending is cancelled and awaited.
    marks = tmp_path / "marks"
    r = serve(rotor, marks, "--graceful-timeout", "20")
    pid = r.ready_pids()[0]
    get(r, "/task", tag="k")
    r.signal(sig)  # TERM: a stop; HUP: the worker is rotated onto a new one
    exited = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == pid],
                      what=f"the worker to exit\n{r.log()}")
    assert exited[0]["status"] == "exit:0", r.log()
    # The cleanup, before the exit handlers (as asyncio.run ends before Python does).
    assert read_marks(marks)[:2] == ["task cleanup k", f"atexit {pid}"], r.log()


def test_a_lifespan_that_still_receives_after_its_shutdown_is_ended_without_an_error(
        rotor, tmp_path):
    # Its task is still pending at the exit (it awaits receive() again): cancelled quietly.
    marks = tmp_path / "marks"
    r = rotor("--chdir", str(APPS), "-w", "1", "slow_shutdown_app:app",
              env={"EXIT_APP_FILE": str(marks), "SLOW_SHUTDOWN_S": "0",
                   "SHUTDOWN_THEN_RECEIVE": "1"})
    pid = r.ready_pids()[0]
    r.stop()
    assert read_marks(marks)[:3] == [f"shutdown {pid}", f"lifespan cancelled {pid}",
                                     f"atexit {pid}"], r.log()
    assert "Traceback" not in r.log() and "CancelledError" not in r.log(), r.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_starlette_apps_thread_pool_ends_with_the_worker_at_once(rotor, sig):
    # Sync work (a BackgroundTask of a plain function, FastAPI's `def` endpoints) runs in
    # anyio's worker threads: non-daemon threads that idle until anyio's root task ends, as
    # asyncio.run's main task does in uvicorn. The worker's exit must end it, not wait for the
    # threads until the graceful timeout.
    r = rotor("--chdir", str(APPS), "-w", "1", "--graceful-timeout", "10", "starlette_app:app")
    pid = r.ready_pids()[0]
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/background").text == "ok"
        wait_for(lambda: c.get("/count").json()["background_done"] >= 1,
                 what="the background task to run in anyio's thread pool")
    t0 = time.monotonic()
    r.signal(sig)  # TERM: a stop; HUP: the worker is rotated onto a new one
    exited = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == pid],
                      what=f"the worker to exit\n{r.log()}")
    took = time.monotonic() - t0
    assert exited[0]["status"] == "exit:0", r.log()
    assert took < 5, f"{took:.1f}s\n{r.log()}"
    assert not r.events("python-exit-timeout"), r.log()


def test_a_task_that_will_not_end_is_bounded_by_the_graceful_timeout(rotor, tmp_path):
    marks = tmp_path / "marks"
    r = serve(rotor, marks, "--graceful-timeout", "3")
    pid = r.ready_pids()[0]
    get(r, "/stubborn-task", tag="s")
    t0 = time.monotonic()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0, r.log()
    assert time.monotonic() - t0 < 3 + 1, r.log()
    # Cancelled (its cleanup ran once), not waited for past the bound; the exit handlers still
    # ran, and the worker left by itself.
    assert read_marks(marks)[:2] == ["task cleanup s", f"atexit {pid}"], r.log()
    assert not r.events("worker-kill"), r.log()
    gave_up = [f for f in r.events("python-exit-timeout") if int(f["pid"]) == pid]
    assert gave_up and gave_up[0]["phase"] == "tasks" and gave_up[0]["tasks"] == "1", r.log()


@pytest.mark.parametrize("mode", MODES)
def test_a_thread_that_never_ends_is_bounded_by_the_graceful_timeout(rotor, tmp_path, mode):
    marks = tmp_path / "marks"
    # -t 1: the wait is no stall the heartbeat would abort.
    r = serve(rotor, marks, mode, "--graceful-timeout", "3", "-t", "1")
    pid = r.ready_pids()[0]
    get(r, "/forever")
    get(r, "/thread", tag="quick", seconds="0.5")
    t0 = time.monotonic()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0, r.log()
    took = time.monotonic() - t0
    # Waited for the thread, gave up at the graceful timeout, and left by itself (no kill).
    assert 2 <= took < 3 + 1, f"{took:.2f}s\n{r.log()}"
    gave_up = [f for f in r.events("python-exit-timeout") if int(f["pid"]) == pid]
    assert gave_up and gave_up[0]["threads"] == "1" and "never-ends" in gave_up[0]["names"], \
        r.log()
    assert not r.events("worker-kill") and not r.events("worker-timeout"), r.log()
    # The exit handlers still ran, and the thread that did end was waited for.
    assert {"thread quick", f"atexit {pid}"} <= set(read_marks(marks)), r.log()
    assert not pid_alive(pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_lifespan_shutdown_longer_than_the_timeout_is_no_stall(rotor, tmp_path, sig):
    # -t 1 and a shutdown of 3 s within a graceful timeout of 20: the worker still beats, so
    # the master does not abort its shutdown (and the exit handlers after it) as a stall.
    marks = tmp_path / "marks"
    r = rotor("--chdir", str(APPS), "-w", "1", "-t", "1", "--graceful-timeout", "20",
              "slow_shutdown_app:app", env={"EXIT_APP_FILE": str(marks), "SLOW_SHUTDOWN_S": "3"})
    pid = r.ready_pids()[0]
    r.signal(sig)  # TERM: a stop; HUP: the worker is rotated onto a new one
    if sig == signal.SIGTERM:
        assert r.wait_exit() == 0, r.log()
    exited = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == pid],
                      what=f"the worker to exit\n{r.log()}")
    assert exited[0]["status"] == "exit:0", r.log()
    assert not r.events("worker-timeout") and "Fatal Python error" not in r.log(), r.log()
    assert read_marks(marks)[:2] == [f"shutdown {pid}", f"atexit {pid}"], r.log()


def test_an_atexit_handler_that_hangs_is_bounded_by_the_graceful_timeout(rotor, tmp_path):
    marks = tmp_path / "marks"
    r = serve(rotor, marks, "--graceful-timeout", "2")
    pid = r.ready_pids()[0]
    get(r, "/hang-at-exit")
    t0 = time.monotonic()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0, r.log()
    assert time.monotonic() - t0 < 2 + 1, r.log()
    gave_up = [f for f in r.events("python-exit-timeout") if int(f["pid"]) == pid]
    assert gave_up and gave_up[0]["phase"] == "atexit", r.log()
    assert not r.events("worker-kill"), r.log()
    assert "hang at exit started" in read_marks(marks)


def test_a_worker_that_cannot_end_by_itself_is_killed_after_the_graceful_timeout_and_logged(
        rotor, tmp_path):
    # An exit handler stuck in C code that keeps the GIL: the worker's own bound cannot act,
    # the master's kill a second after the graceful timeout does, and says so.
    marks = tmp_path / "marks"
    r = serve(rotor, marks, "--graceful-timeout", "2")
    pid = r.ready_pids()[0]
    get(r, "/hang-at-exit-holding-the-gil")
    t0 = time.monotonic()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0, r.log()
    assert time.monotonic() - t0 < 2 + 1 + 2, r.log()
    assert "hang at exit started" in read_marks(marks)
    killed = [f for f in r.events("worker-kill") if int(f["pid"]) == pid]
    assert killed and killed[0]["reason"] == "shutdown", r.log()
    exited = [f for f in r.events("worker-exit") if int(f["pid"]) == pid]
    assert exited and exited[0]["status"] == "signal:KILL", r.log()


def test_a_worker_stopped_on_its_own_whose_exit_cannot_end_is_aborted_at_the_timeout(
        rotor, tmp_path):
    # TERM to the worker itself (the master did not ask: it has no graceful deadline for it)
    # and an exit handler stuck in C code that keeps the GIL: the worker's beat must stop at
    # its own exit deadline, so that the master's --timeout ends it and replaces it.
    marks = tmp_path / "marks"
    r = serve(rotor, marks, "--graceful-timeout", "2", "-t", "2")
    pid = r.ready_pids()[0]
    get(r, "/hang-at-exit-holding-the-gil")
    os.kill(pid, signal.SIGTERM)
    exited = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == pid],
                      what=f"the stuck worker to be ended\n{r.log()}")
    assert exited[0]["status"] in ("signal:ABRT", "signal:KILL"), r.log()
    # Ended by the master: at its graceful deadline (it saw the drain) or at --timeout.
    assert [f for f in r.events("worker-timeout") + r.events("worker-kill")
            if int(f["pid"]) == pid], r.log()
    wait_for(lambda: [p for p in r.ready_pids() if p != pid], what=f"a successor\n{r.log()}")
    assert get(r, "/") != pid


def test_a_worker_told_to_drain_by_someone_else_is_replaced_while_it_finishes(rotor, tmp_path):
    # An operator's kill -TERM to one worker: it drains and waits for its app's thread; the
    # master sees the drain in the scoreboard and fills the place at once, not when it exits.
    marks = tmp_path / "marks"
    r = serve(rotor, marks, "--graceful-timeout", "30")
    pid = r.ready_pids()[0]
    get(r, "/thread", tag="slow", seconds="8")
    os.kill(pid, signal.SIGTERM)
    other = wait_for(lambda: [p for p in r.ready_pids() if p != pid], 6,
                     what=f"a replacement while the old worker finishes\n{r.log()}")
    assert pid_alive(pid) and "thread slow" not in read_marks(marks), r.log()
    assert get(r, "/") == other[0]
    line = [f for f in r.events("worker-drain-unasked") if int(f["pid"]) == pid]
    assert line and line[0]["action"] == "replace", r.log()
    exited = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == pid],
                      what=f"the old worker to exit\n{r.log()}")
    assert exited[0]["status"] == "exit:0" and exited[0]["reason"] == "signal", exited
    assert "thread slow" in read_marks(marks), r.log()


# --- Python logging: only what no handler of the app took -----------------------------------

def test_records_a_handler_of_the_app_took_are_not_logged_again(rotor):
    r = rotor("--chdir", str(APPS), "-w", "1", "own_logger_app:app")
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/fail").text == "logged"
    wait_for(lambda: "OWNLOG myapp.views ERROR handled by the app's own handler" in r.log()
             and len(r.lines("app-log")) >= 2, what=f"the app's log lines\n{r.log()}")
    r.stop()  # every worker has left: nothing it logs can still be on its way
    log = r.log()
    assert log.count("ValueError: own-logger-boom") == 1, log  # one traceback, the app's
    by_logger = {(f["logger"], f["message"]) for f in r.events("app-log")}
    assert ("myapp.views", "handled by the app's own handler") not in by_logger, log
    # What the app's handler did not take (below its level, or no handler at all) still
    # reaches rotor's log.
    assert ("myapp.views", "below the app handler's level") in by_logger, log
    assert ("other.library", "no handler of the app") in by_logger, log


def test_records_of_a_library_with_a_null_handler_are_still_logged(rotor):
    # A NullHandler (what a library adds so that it prints nothing unless configured) writes
    # nothing: the record is no app handler's, and rotor's root handler logs it.
    r = rotor("--chdir", str(APPS), "-w", "1", "own_logger_app:app")
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/").text == "logged"
    r.stop()  # every worker has left: nothing it logs can still be on its way
    by_logger = {(f["logger"], f["message"]) for f in r.events("app-log")}
    assert ("quietlib.pool", "a library's NullHandler takes nothing") in by_logger, r.log()


# --- lifespan -------------------------------------------------------------------------------

def test_a_lifespan_the_app_does_not_support_is_said_at_info_with_the_error_at_debug(rotor):
    r = rotor("--chdir", str(APPS), "-w", "1", "no_lifespan_app:app")
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/").text == "served"
    said = r.events("lifespan-unsupported")
    assert len(said) == 1 and said[0]["level"] == "info", r.log()
    assert "appears unsupported" in said[0]["detail"], said
    assert "no-lifespan-app cannot handle" not in r.log()  # the error only at debug

    verbose = rotor("--chdir", str(APPS), "-w", "1", "--log-level", "debug", "no_lifespan_app:app")
    said = verbose.events("lifespan-unsupported")
    assert len(said) == 2 and "ValueError('no-lifespan-app cannot handle lifespan')" in \
        [f.get("error") for f in said], verbose.log()
    assert "Traceback" in verbose.log()

    # --lifespan off: nothing is tried, nothing said.
    off = rotor("--chdir", str(APPS), "-w", "1", "--lifespan", "off", "no_lifespan_app:app")
    assert not off.events("lifespan-unsupported")


# --- proxy headers --------------------------------------------------------------------------

def test_a_forwarded_for_that_is_not_an_address_leaves_the_peer_as_the_client(rotor):
    r = rotor("--chdir", str(APPS), "-w", "1", "starlette_app:app")  # 127.0.0.1 is trusted
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        for claim in ("not-an-ip", "203.0.113.7, not-an-ip", "<script>"):
            me = c.get("/whoami", headers={"X-Forwarded-For": claim,
                                           "X-Forwarded-Proto": "https"}).json()
            assert me["client"][0] == "127.0.0.1" and me["client"][1] > 0, (claim, me)
            assert me["scheme"] == "https", me  # the proxy's other header still counts
        me = c.get("/whoami", headers={"X-Forwarded-For": "not-an-ip, 203.0.113.7"}).json()
        assert me["client"] == ["203.0.113.7", 0], me


def test_a_lifespan_startup_that_never_finishes_ends_the_first_generation_with_exit_3(
        rotor, tmp_path):
    flag = tmp_path / "hang"
    flag.touch()
    r = rotor("--chdir", str(APPS), "-w", "2", "-t", "3", "hang_lifespan_app:app",
              env={"HANG_LIFESPAN_FILE": str(flag)}, wait=False)
    assert r.wait_exit() == 3, r.log()
    said = r.events("lifespan-timeout")
    assert said and said[0]["level"] == "error" and said[0]["timeout_s"] == "3", r.log()
    assert "asyncio.Event().wait()" in r.log()  # where the startup waits
    # Said by the worker itself, not found by the heartbeat: no abort, no dump, no retry.
    assert "Fatal Python error" not in r.log() and not r.events("worker-timeout"), r.log()
    assert len(r.events("spawn")) == 2, r.log()
    assert r.events("boot-failed")[-1]["code"] == "3", r.log()


def test_a_lifespan_startup_that_blocks_the_loop_ends_the_first_generation_with_exit_3(
        rotor, tmp_path):
    flag = tmp_path / "hang"
    flag.touch()
    r = rotor("--chdir", str(APPS), "-w", "1", "-t", "2", "hang_lifespan_app:app",
              env={"HANG_LIFESPAN_FILE": str(flag), "HANG_LIFESPAN_MODE": "sync"}, wait=False)
    # The loop is blocked: only the heartbeat finds it; aborted once, then the master leaves.
    assert r.wait_exit() == 3, r.log()
    timeouts = r.events("worker-timeout")
    assert len(timeouts) == 1 and timeouts[0]["phase"] == "boot", r.log()
    assert r.log().count("Fatal Python error") == 1, r.log()


def test_a_lifespan_startup_that_hangs_after_a_reload_is_backed_off_while_the_old_serve(
        rotor, tmp_path):
    flag = tmp_path / "hang"
    r = rotor("--chdir", str(APPS), "-w", "1", "-t", "2", "hang_lifespan_app:app",
              env={"HANG_LIFESPAN_FILE": str(flag)})
    old = r.ready_pids()
    flag.touch()
    r.signal(signal.SIGHUP)
    wait_for(lambda: len(r.events("lifespan-timeout")) >= 2 and r.events("backoff"),
             what=f"two failed successors and a backoff\n{r.log()}")
    # The running worker serves on; the master stays up and does not abort anyone.
    with httpx.Client(base_url=r.url(), timeout=DEADLINE) as c:
        assert c.get("/").text == f"up {old[0]}"
    assert r.proc.poll() is None and r.ready_pids() == old, r.log()
    assert "Fatal Python error" not in r.log() and not r.events("worker-timeout"), r.log()
    flag.unlink()
    wait_for(lambda: r.ready_pids() and old[0] not in r.ready_pids(),
             what=f"the fixed startup to roll the worker\n{r.log()}")


# --- WebSocket sessions and the drain -------------------------------------------------------

def _ws_handshake(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    return s


def _read_exactly(s, n, buf):
    while len(buf) < n:
        data = s.recv(65536)
        assert data, f"closed after {buf!r}"
        buf += data
    return buf


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_session_accepted_while_its_worker_drains_is_closed_with_1012(rotor, tmp_path, sig):
    marks, flag = tmp_path / "marks", tmp_path / "accept"
    r = rotor("--chdir", str(APPS), "-w", "1", "--graceful-timeout", "20", "ws_drain_app:app")
    old = r.ready_pids()[0]
    s = _ws_handshake(r.port, f"/?marks={marks}&flag={flag}")
    try:
        wait_for(lambda: f"handshake {old}" in read_marks(marks), what="the app to see it")
        r.signal(sig)  # TERM: a stop; HUP: the worker is rotated onto a new one
        wait_for(lambda: [f for f in r.events("drain") if int(f["pid"]) == old],
                 what=f"the worker to drain\n{r.log()}")
        t0 = time.monotonic()
        flag.touch()  # the app accepts now
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf = _read_exactly(s, len(buf) + 1, buf)
        head, buf = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        buf = _read_exactly(s, 4, buf)
        assert buf[0] == 0x88, buf  # a close frame, at once: not at the graceful timeout
        assert struct.unpack("!H", buf[2:4])[0] == 1012, buf
        assert time.monotonic() - t0 < 10
        s.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack("!H", 1012))
        wait_for(lambda: "disconnect 1012" in read_marks(marks), what="the app's disconnect")
    finally:
        s.close()
    wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == old],
             what=f"the drained worker to exit\n{r.log()}")
