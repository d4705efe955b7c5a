"""rotor as a container entrypoint: PID 1 of its own PID namespace (unshare, as in a container)."""
import os
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import BIN, DEADLINE, pid_alive, wait_for


def _host_pid_of_init(unshare_pid):
    """The host pid of the process that is PID 1 inside the namespace unshare made."""
    def child():
        try:
            with open(f"/proc/{unshare_pid}/task/{unshare_pid}/children") as f:
                kids = f.read().split()
            return int(kids[0]) if kids else None
        except FileNotFoundError:
            return None
    return wait_for(child, what="rotor under unshare")


@pytest.fixture
def rotor_pid1(tmp_path):
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "--pid", "--fork", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a PID namespace here")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "pid1.log", "wb")
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", str(BIN), "-k", "hello",
                             "-w", "2", "-b", f"127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    init = _host_pid_of_init(proc.pid)
    text = lambda: (tmp_path / "pid1.log").read_text()
    wait_for(lambda: text().count("event=worker-ready") >= 2, what="two ready workers")
    yield proc, init, port, text
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


def test_pid1_serves_reaps_orphans_and_stops_on_term(rotor_pid1):
    proc, init, port, text = rotor_pid1
    assert "role=master pid=1 " in text()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")

    # An orphan inside the namespace: its parent exits at once, so it is reparented to rotor
    # (PID 1), which must reap it when it exits -- no zombie is left behind.
    out = subprocess.run(["nsenter", "-t", str(init), "-p", "--", "/bin/sh", "-c",
                          "sleep 2 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # $! is the pid inside the namespace; find the host pid by its parent (rotor) and name.
    def orphan():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if comm == "sleep" and int(fields[1]) == init:
                return int(pid)
        return None
    found = orphan()
    assert found is not None, "the orphan was not reparented to rotor"
    # A zombie keeps its /proc entry until its parent reaps it.
    wait_for(lambda: not os.path.exists(f"/proc/{found}"), what="the orphan to be reaped")
    assert pid_alive(init), "rotor died reaping an unknown pid"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")

    os.kill(init, signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE) == 0, text()
    assert "event=exit code=0" in text()
