"""Process-level options: socket activation, inherited fds, pid file, user switch, and the
rotation reasons other than max-requests."""
import os
import pwd
import signal
import socket
import subprocess

import pytest

from conftest import BIN, DEADLINE, wait_for


def _get(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                return data
            data += b


def _listening_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s, s.getsockname()[1]


def _start_with_fd3(sock, shell_prefix, args, tmp_path):
    """Starts rotor through sh with `sock` as fd 3 (as systemd or a parent would)."""
    log = open(tmp_path / "fd.log", "wb")
    def to_fd3():
        os.dup2(sock.fileno(), 3)  # dup2 leaves fd 3 inheritable
    cmd = f"{shell_prefix} exec {BIN} {' '.join(args)}"
    proc = subprocess.Popen(["/bin/sh", "-c", cmd], preexec_fn=to_fd3, close_fds=False,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def _stop(proc, log):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=DEADLINE)
    log.close()


@pytest.mark.parametrize("how", ["systemd", "fd"])
def test_inherited_listening_socket(tmp_path, how):
    sock, port = _listening_socket()
    if how == "systemd":
        proc, log = _start_with_fd3(sock, "LISTEN_PID=$$ LISTEN_FDS=1", ["-k", "hello"], tmp_path)
    else:
        proc, log = _start_with_fd3(sock, "", ["-k", "hello", "-b", "fd://3"], tmp_path)
    sock.close()  # rotor holds the only copy now
    try:
        text = lambda: (tmp_path / "fd.log").read_text()
        wait_for(lambda: "event=worker-ready" in text(), what="a ready worker")
        assert f"address=http://127.0.0.1:{port}" in text()
        assert _get(port).startswith(b"HTTP/1.1 200")
        if how == "systemd":
            # --bind's default was not bound in addition to the inherited socket.
            assert "127.0.0.1:8000" not in text()
    finally:
        _stop(proc, log)
    assert proc.returncode == 0


def test_fd_that_is_not_a_socket_is_a_clear_error(rotor):
    r = rotor("-k", "hello", "-b", "fd://0", bind=False, wait=False)
    assert r.wait_exit() == 1
    assert "rotor: error: fd://0: not a socket" in r.log()


def test_pid_file_written_and_removed(rotor, tmp_path):
    pid_file = tmp_path / "rotor.pid"
    r = rotor("-k", "hello", "--pid", str(pid_file))
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()) == str(r.pid)
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert not pid_file.exists()


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_workers_run_as_user(rotor):
    nobody = pwd.getpwnam("nobody")
    r = rotor("-k", "hello", "-w", "1", "--user", "nobody")
    worker = r.ready_pids()[0]
    with open(f"/proc/{worker}/status") as f:
        uids = next(l for l in f if l.startswith("Uid:")).split()[1:]
    assert all(int(u) == nobody.pw_uid for u in uids), uids
    assert _get(r.port).startswith(b"HTTP/1.1 200")
    assert os.stat(f"/proc/{r.pid}").st_uid == 0  # the master keeps its identity


def test_unknown_user_is_a_usage_error(rotor):
    r = rotor("-k", "hello", "--user", "no-such-user-here", wait=False)
    assert r.wait_exit() == 2
    assert "rotor: error: --user: no such user 'no-such-user-here'" in r.log()


def test_max_lifetime_rotates_workers(rotor):
    r = rotor("-k", "hello", "-w", "2", "--max-lifetime", "1", "--max-lifetime-jitter", "0.5")
    wait_for(lambda: len([f for f in r.events("worker-exit") if f["reason"] == "max-lifetime"])
             >= 4, what="four max-lifetime rotations")
    for f in r.events("worker-exit"):
        if f["reason"] == "max-lifetime":
            assert float(f["uptime_s"]) >= 1.0, f
            assert f["status"] == "exit:0", f
    assert _get(r.port).startswith(b"HTTP/1.1 200")


def test_max_rss_rotates_workers(rotor):
    # 1 MiB is below any worker's resident size: every worker is rotated once it is sampled.
    r = rotor("-k", "hello", "-w", "1", "--max-rss", "1")
    wait_for(lambda: len([f for f in r.events("worker-exit") if f["reason"] == "max-rss"]) >= 2,
             what="two max-rss rotations")
    assert _get(r.port).startswith(b"HTTP/1.1 200")


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_first_generation_boot_failure_exits_3_without_a_fork_loop(rotor, tmp_path):
    # The master (root) can open the access log; workers running as nobody cannot, so no
    # worker of the first generation boots.
    access = tmp_path / "access.log"
    access.touch(mode=0o600)
    os.chmod(tmp_path, 0o755)
    r = rotor("-k", "hello", "-w", "2", "--user", "nobody", "--access-logfile", str(access),
              wait=False)
    assert r.wait_exit() == 3, r.log()
    log = r.log()
    assert "event=boot-failed" in log
    assert "Permission denied" in log  # the worker's own error is shown
    assert len(r.events("spawn")) <= 2, "the master kept forking workers that cannot boot"


def test_repeated_crashes_back_off(rotor):
    r = rotor("-k", "hello", "-w", "1")
    # Kill each new worker as soon as it is ready; after the first crash respawns are delayed.
    for _ in range(4):
        pid = wait_for(lambda: r.ready_pids() and r.ready_pids()[0], what="a ready worker")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: any(int(f["pid"]) == pid for f in r.events("worker-exit")),
                 what="the crash to be logged")
    wait_for(lambda: r.events("backoff"), what="a backoff line")
    delays = [int(f["delay_ms"]) for f in r.events("backoff")]
    assert delays == sorted(delays) and delays[0] >= 100, delays
    r.wait_ready(1)  # it does come back after the delay
    assert _get(r.port).startswith(b"HTTP/1.1 200")
