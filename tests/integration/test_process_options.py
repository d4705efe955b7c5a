"""Process-level options: socket activation, inherited fds, pid file, user switch, and the
rotation reasons other than max-requests."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BIN, DEADLINE, ROOT, pid_alive, wait_for
from rawhttp import send_and_read_all


def _get(port):
    return send_and_read_all(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")


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
    # Above the 2 s minimum age a worker lives before memory or age may retire it.
    r = rotor("-k", "hello", "-w", "2", "--max-lifetime", "2.5", "--max-lifetime-jitter", "0.5")
    wait_for(lambda: len([f for f in r.events("worker-exit") if f["reason"] == "max-lifetime"])
             >= 4, what="four max-lifetime rotations")
    for f in r.events("worker-exit"):
        if f["reason"] == "max-lifetime":
            assert float(f["uptime_s"]) >= 2.5, f
            assert f["status"] == "exit:0", f
    assert not r.events("limit-below-new-worker"), r.log()
    assert _get(r.port).startswith(b"HTTP/1.1 200")


def test_max_rss_rotates_workers(rotor):
    # 1 MiB is below any worker's resident size: each worker is rotated once it has served for
    # the minimum age. Workers do not stay long (each rotation replaces one), so the test waits
    # on the rotations, not on a worker that stays ready.
    r = rotor("-k", "hello", "-w", "1", "--max-rss", "1", wait=False)
    r.wait_listening()
    rotated = wait_for(
        lambda: len([f for f in r.events("worker-exit") if f["reason"] == "max-rss"]) >= 2 and
        [f for f in r.events("worker-exit") if f["reason"] == "max-rss"],
        what=f"two max-rss rotations\n{r.log()}")
    assert all(f["status"] == "exit:0" and float(f["uptime_s"]) >= 2.0 for f in rotated), rotated
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
    # (Idle and just ready, each counts as a failure to boot; a worker that served is replaced at
    # once: test_storms.py.)
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


def _request_in_background(port, path):
    """Sends a request and does not wait for its answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return s


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_a_worker_running_as_user_dies_with_its_master(rotor):
    # Switching user clears the parent-death signal: it must be set after the switch. The
    # worker is stuck in a blocking handler, so only that signal can end it.
    r = rotor("--chdir", str(ROOT / "tests" / "apps"), "--user", "nobody", "--timeout", "0",
              "blocking_app:app")
    (worker,) = r.ready_pids()
    held = _request_in_background(r.port, "/?s=60")
    wait_for(lambda: _state(worker) == "S", what="the worker in its blocking handler")
    os.kill(r.pid, signal.SIGKILL)
    r.proc.wait()
    wait_for(lambda: not pid_alive(worker), timeout=10, what="the worker to die with the master")
    held.close()


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_workers_running_as_user_reopen_logs_the_master_created(rotor, request):
    # Not under tmp_path, whose parents nobody cannot enter; root's and 0755: workers running
    # as nobody cannot create files in it.
    logs = Path(tempfile.mkdtemp(prefix="rotor-logs-"))
    os.chmod(logs, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(logs, ignore_errors=True))
    error, access = logs / "error.log", logs / "access.log"
    r = rotor("-k", "hello", "--user", "nobody", "--error-logfile", str(error),
              "--access-logfile", str(access), wait=False)
    r.log_path = error
    wait_for(error.exists)
    r.start()
    nobody = pwd.getpwnam("nobody").pw_uid
    assert os.stat(error).st_uid == nobody and os.stat(access).st_uid == nobody
    _get(r.port)
    wait_for(lambda: access.read_text().count("GET /") == 1, what="the first access line")
    # logrotate: move both away, then USR1.
    os.rename(error, logs / "error.log.1")
    os.rename(access, logs / "access.log.1")
    r.signal(signal.SIGUSR1)
    wait_for(lambda: error.exists() and "event=reopen-logs" in error.read_text(),
             what="the master's reopen")
    assert os.stat(access).st_uid == nobody
    # Each worker reopens both on its own USR1; then its lines go to the new files.
    wait_for(lambda: _get(r.port) and "GET /" in access.read_text(), what="a new access line")
    assert "log-reopen-failed" not in error.read_text() + (logs / "error.log.1").read_text()


def test_a_unix_socket_gets_the_umask_option_not_the_inherited_one(rotor, tmp_path):
    sock = tmp_path / "r.sock"
    before = os.umask(0o077)  # what rotor inherits
    try:
        rotor("-k", "hello", "-b", f"unix:{sock}", bind=False, wait=False)
        rotor("-k", "hello", "-b", f"unix:{tmp_path}/b.sock", "--umask", "0o027", bind=False,
              wait=False)
    finally:
        os.umask(before)
    wait_for(lambda: sock.exists() and (tmp_path / "b.sock").exists(), what="both sockets")
    mode = os.stat(sock).st_mode & 0o777
    mode_027 = os.stat(tmp_path / "b.sock").st_mode & 0o777
    assert mode == 0o777  # the default --umask 0, as gunicorn: a proxy of another user connects
    assert mode_027 == 0o750


def test_a_pid_file_of_a_running_process_is_refused(rotor, tmp_path):
    pid_file = tmp_path / "rotor.pid"
    first = rotor("-k", "hello", "--pid", str(pid_file))
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() == str(first.pid))
    second = rotor("-k", "hello", "--pid", str(pid_file), wait=False)
    assert second.wait_exit() == 1
    assert f"names pid {first.pid}, which is running" in second.log()
    assert pid_file.read_text().strip() == str(first.pid)  # untouched
    # A stale file (its process is gone) is replaced.
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    pid_file.write_text(f"{first.pid}\n")
    third = rotor("-k", "hello", "--pid", str(pid_file))
    wait_for(lambda: pid_file.read_text().strip() == str(third.pid))


def test_a_hup_that_moves_the_pid_file_writes_the_new_one_and_removes_the_old(rotor, tmp_path):
    old, new = tmp_path / "old.pid", tmp_path / "new.pid"
    conf = tmp_path / "rotor.toml"
    conf.write_text(f'pid_file = "{old}"\n')
    r = rotor("-k", "hello", "-c", str(conf))
    wait_for(old.exists)
    conf.write_text(f'pid_file = "{new}"\n')
    r.signal(signal.SIGHUP)
    wait_for(lambda: new.exists() and new.read_text().strip() == str(r.pid),
             what=f"the new pid file\n{r.log()}")
    assert not old.exists()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert not new.exists()


def test_relative_log_paths_are_relative_to_chdir_at_start_and_reopen(rotor, tmp_path):
    srv = tmp_path / "srv"
    (srv / "logs").mkdir(parents=True)
    r = rotor("-k", "hello", "--chdir", str(srv), "--error-logfile", "logs/error.log",
              cwd=tmp_path, wait=False)
    error = srv / "logs" / "error.log"
    r.log_path = error
    wait_for(error.exists, what="the error log under --chdir")
    r.start()
    assert "event=start" in error.read_text()
    os.rename(error, srv / "logs" / "error.log.1")
    r.signal(signal.SIGUSR1)
    wait_for(lambda: error.exists() and "event=reopen-logs" in error.read_text(),
             what="the log reopened at the same path")
    assert not (tmp_path / "logs").exists()
