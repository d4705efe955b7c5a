"""Configuration an operator got wrong: values that would overflow, config files that are not
files or never end, a gunicorn.conf.py that leaves something running. Each is one line and
exit 2, or works, and never hangs."""
import http.client
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, pid_alive, wait_for
from rawhttp import recv_until_closed
from test_stop import _request_in_flight, _slow_app_dir

YEAR = 365 * 24 * 3600


def _run(args, cwd=None, timeout=20):
    """rotor run to completion: (exit code, stdout + stderr, seconds it took)."""
    started = time.monotonic()
    p = subprocess.run([str(BIN)] + list(args), capture_output=True, text=True, cwd=cwd,
                       timeout=timeout)
    return p.returncode, p.stdout + p.stderr, time.monotonic() - started


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag,value", [("--graceful-timeout", "1e10"), ("--keep-alive", "1e17"),
                                        ("--timeout", "9.3e18"), ("--max-lifetime", "1e300")])
def test_a_duration_that_would_overflow_is_one_line_and_exit_2(flag, value):
    for extra in (["--check-config"], ["-k", "hello", "-b", "127.0.0.1:0"]):
        code, out, _ = _run([flag, value] + extra)
        assert code == 2, out
        assert out == (f"rotor: error: {flag}: expected a number of seconds in 0..{YEAR}, "
                       f"got '{value}'\n"), out


@pytest.mark.parametrize("value", ["0.001", "1e-9", "0.5"])
def test_a_heartbeat_timeout_no_worker_can_keep_is_one_line_and_exit_2(value):
    # A worker beats at most every 50 ms: below that every worker was killed and replaced ten
    # times a second, for as long as rotor ran.
    for extra in (["--check-config"], ["-k", "hello", "-b", "127.0.0.1:0"]):
        code, out, _ = _run(["--timeout", value] + extra)
        assert code == 2, out
        assert out == f"rotor: error: --timeout: expected 0 (never) or at least 1 second, " \
            f"got '{value}'\n", out


@pytest.mark.parametrize("value", ["17592186044417", "9223372036854775807"])
def test_a_memory_limit_that_would_overflow_in_bytes_is_one_line_and_exit_2(value):
    # 2^44 + 1 MiB is 1 MiB once in bytes (64 bits): every worker would be over it at once.
    for extra in (["--check-config"], ["-k", "hello", "-b", "127.0.0.1:0"]):
        code, out, _ = _run(["--max-rss", value] + extra)
        assert code == 2, out
        assert out == f"rotor: error: --max-rss: expected an integer in 0..16777216, " \
            f"got '{value}'\n", out


def test_the_longest_graceful_timeout_still_lets_requests_in_flight_finish(rotor, tmp_path):
    apps = _slow_app_dir(tmp_path / "apps")
    r = rotor("--chdir", str(apps), "--graceful-timeout", str(YEAR), "slow_app:app")
    held = _request_in_flight(r.port, tmp_path, 1)
    r.signal(signal.SIGTERM)
    data, _ = recv_until_closed(held, 30)
    held.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"done"), data
    assert r.wait_exit() == 0


def test_the_longest_keep_alive_keeps_connections_open(rotor):
    # --keep-alive 1e17 once overflowed and closed every connection after one response.
    r = rotor("-k", "hello", "--keep-alive", str(YEAR))
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    conn.request("GET", "/")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    assert first.status == 200 and not first.will_close, first.getheaders()
    for _ in range(2):
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and not resp.will_close
    assert conn.sock is sock  # the same connection throughout
    conn.close()


# --- config files -------------------------------------------------------------------------------


def test_a_config_that_is_not_a_regular_file_is_refused_at_once(tmp_path):
    fifo = tmp_path / "rotor.toml"
    os.mkfifo(fifo)  # nobody writes to it: reading would wait forever
    for path, what in (("/dev/zero", "not a regular file"), (str(fifo), "not a regular file"),
                       (str(tmp_path), "not a regular file"),
                       ("/dev/null.py", "No such file or directory")):
        code, out, took = _run(["--check-config", "-c", path])
        assert code == 2, out
        assert out == f"rotor: error: --config: cannot read '{path}': {what}\n", out
        assert took < 5, (path, took)


def test_a_config_file_over_a_mebibyte_is_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * (1 << 17) + "workers = 2\n")  # 1.25 MiB
    code, out, _ = _run(["--check-config", "-c", str(big)])
    assert code == 2, out
    assert out == f"rotor: error: --config: cannot read '{big}': larger than 1 MiB\n", out
    small = tmp_path / "small.toml"
    small.write_text("# padding\n" * 100000 + "workers = 2\n")  # under 1 MiB: fine
    code, out, _ = _run(["--check-config", "-c", str(small)])
    assert code == 0, out


def test_a_gunicorn_conf_py_that_leaves_a_thread_running_does_not_hang(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(1000,)).start()  # not a daemon\n"
        "print('printed by the config')\n"
        "workers = 3\n")
    code, out, took = _run(["--print-config"], cwd=tmp_path, timeout=90)
    assert code == 0, out
    assert "workers = 3" in out
    assert "printed by the config" in out  # not lost by the evaluator's quick exit
    assert took < 10, took


def test_a_gunicorn_conf_py_that_leaves_a_child_running_does_not_hang(tmp_path):
    child_pid = tmp_path / "child.pid"
    (tmp_path / "gunicorn.conf.py").write_text(
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(1000)  # holds the evaluator's output pipe\n"
        "    os._exit(0)\n"
        f"open({str(child_pid)!r}, 'w').write(str(pid))\n"
        "del pid\n"
        "workers = 3\n")
    code, out, took = _run(["--check-config"], cwd=tmp_path, timeout=90)
    assert code == 0, out
    assert took < 10, took
    # What the file started does not outlive its evaluation.
    pid = int(child_pid.read_text())
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the config's child to be killed")
