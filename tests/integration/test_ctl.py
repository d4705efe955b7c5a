"""`rotor ctl` and `rotor top` against a real master's --control-socket: what they show, what
they change (through the same paths as the signals and a max-requests rotation), and how they
fail: no server, refused permission, bad commands, hostile clients of the socket.
"""
import json
import os
import pty
import select
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import httpx
import pytest

from conftest import BIN, DEADLINE, run_wrk, wait_for


@pytest.fixture
def sock():
    """A control socket path in a short directory (a unix socket path has at most 107 bytes)."""
    d = tempfile.mkdtemp(prefix="rctl")
    os.chmod(d, 0o755)  # others may look in: the socket's own mode is what refuses them
    yield os.path.join(d, "ctl.sock")
    shutil.rmtree(d, ignore_errors=True)


def ctl(sock, *words, as_json=False, prefix=(), timeout=DEADLINE):
    args = list(prefix) + [str(BIN), "ctl", "--socket", str(sock)]
    args += ["--json"] if as_json else []
    return subprocess.run(args + [str(w) for w in words], capture_output=True, text=True,
                          timeout=timeout)


def ask(sock, *words):
    p = ctl(sock, *words, as_json=True)
    assert p.returncode == 0, f"rotor ctl {' '.join(map(str, words))}: {p.returncode} {p.stderr}"
    reply = json.loads(p.stdout)
    assert reply["v"] == 1 and reply["ok"] is True, reply
    return reply


def workers(sock):
    return ask(sock, "workers")["workers"]


def ready_workers(sock):
    return [w for w in workers(sock) if w["state"] == "ready"]


def start(rotor, sock, *args, workers=2):
    return rotor("-k", "hello", "-w", str(workers), "--control-socket", sock, *args,
                 workers=workers)


def refused(p, code, *words):
    """The command failed with `code` and one stderr line naming each of `words`."""
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    first = p.stderr.splitlines()[0]
    for w in words:
        assert w in first, p.stderr
    return first


# --- what it shows -----------------------------------------------------------------------------

def test_ctl_workers_json_lists_each_worker_with_its_fields(rotor, sock):
    r = start(rotor, sock, "--max-requests", "100000")
    for _ in range(20):
        assert httpx.get(r.url("/"), timeout=10).status_code == 200
    ws = workers(sock)
    assert sorted(w["pid"] for w in ws) == sorted(r.ready_pids())
    assert sorted(w["slot"] for w in ws) == [0, 1]
    for w in ws:
        assert w["state"] == "ready" and w["generation"] == 1, w
        assert 100000 <= w["limit"] <= 100000, w
        assert w["rss_mib"] > 0 and w["private_mib"] > 0, w
        assert w["age_s"] >= 0 and w["req_per_s"] >= 0, w
        for key in ("requests", "in_flight", "connections", "mode", "reason"):
            assert key in w, w
    assert sum(w["requests"] for w in ws) == 20


def test_ctl_workers_table_for_people(rotor, sock):
    r = start(rotor, sock)
    p = ctl(sock, "workers")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["PID", "SLOT", "GEN", "STATE", "REQUESTS/LIMIT", "REQ/S",
                                "RSS_MiB", "PRIV_MiB", "AGE"]
    assert sorted(int(l.split()[0]) for l in lines[1:]) == sorted(r.ready_pids())


def test_ctl_status_names_master_generation_listeners_and_config(rotor, sock):
    r = start(rotor, sock, "--max-requests", "500")
    s = ask(sock, "status")["status"]
    assert s["master_pid"] == r.pid
    assert s["generation"] == 1 and s["generation_in_force"] == 1
    assert s["workers"] == 2 and s["desired"] == 2 and s["stopping"] is False
    assert s["listeners"] == [f"http://127.0.0.1:{r.port}"]
    assert s["config"]["worker_class"] == "hello" and s["config"]["max_requests"] == 500
    assert s["uptime_s"] >= 0
    p = ctl(sock, "status")
    assert p.returncode == 0 and f"pid {r.pid}" in p.stdout and "generation  1" in p.stdout, \
        p.stdout


# --- what it changes ---------------------------------------------------------------------------

def test_scale_3_then_workers_shows_3(rotor, sock):
    start(rotor, sock, workers=1)
    assert ask(sock, "scale", "3")["workers"] == 3
    wait_for(lambda: len(ready_workers(sock)) == 3, what="3 ready workers")
    assert ask(sock, "status")["status"]["desired"] == 3
    ask(sock, "scale", "1")
    wait_for(lambda: len(workers(sock)) == 1, what="back to 1 worker")


def test_add_and_remove_by_n(rotor, sock):
    r = start(rotor, sock, workers=1)
    assert ask(sock, "add", "2")["workers"] == 3
    wait_for(lambda: len(ready_workers(sock)) == 3, what="3 ready workers")
    assert ask(sock, "remove")["workers"] == 2
    wait_for(lambda: len(workers(sock)) == 2, what="2 workers")
    assert ask(sock, "add")["workers"] == 3
    assert any(f.get("command") == "add" for f in r.events("scale")), r.log()


def test_rotate_pid_under_load_fails_no_request_and_replaces_the_pid(rotor, sock):
    r = start(rotor, sock)
    victim = r.ready_pids()[0]
    result = {}
    load = threading.Thread(target=lambda: result.update(run_wrk(r.url("/"), duration=4)))
    load.start()
    time.sleep(1)  # let the load reach the victim before it is rotated
    assert ask(sock, "rotate", victim)["rotating"] == [victim]
    assert [int(f["pid"]) for f in r.events("control-rotate")] == [victim]
    load.join()
    assert result["requests"] > 0, result["raw"]
    assert result["errors"] == 0, f"wrk saw errors:\n{result['raw']}\n{r.log()}"
    exit_line = wait_for(lambda: [f for f in r.events("worker-exit") if int(f["pid"]) == victim],
                         what="the rotated worker's exit")[0]
    assert exit_line["reason"] == "rotate" and exit_line["status"] == "exit:0", exit_line
    successor = [f for f in r.events("spawn") if f.get("replaces") == str(victim)]
    assert successor and successor[0]["reason"] == "rotate", r.log()
    ws = wait_for(lambda: len(ready_workers(sock)) == 2 and workers(sock), what="2 workers")
    assert victim not in [w["pid"] for w in ws]
    assert int(successor[0]["pid"]) in [w["pid"] for w in ws]


def test_rotate_all_replaces_every_worker(rotor, sock):
    r = start(rotor, sock)
    before = set(r.ready_pids())
    assert set(ask(sock, "rotate", "all")["rotating"]) == before

    def replaced():
        ws = workers(sock)
        return len(ws) == 2 and all(w["state"] == "ready" for w in ws) and \
            not before & {w["pid"] for w in ws}
    wait_for(replaced, what="both workers replaced")
    reasons = [f["reason"] for f in r.events("worker-exit")]
    assert reasons == ["rotate", "rotate"], r.log()
    assert httpx.get(r.url("/"), timeout=10).status_code == 200


def test_reload_bumps_the_generation(rotor, sock):
    r = start(rotor, sock)
    assert ask(sock, "reload")["generation"] == 2

    def rolled():
        ws = workers(sock)
        return len(ws) == 2 and all(w["generation"] == 2 and w["state"] == "ready" for w in ws)
    wait_for(rolled, what="both workers on generation 2")
    s = ask(sock, "status")["status"]
    assert s["generation"] == 2 and s["generation_in_force"] == 2
    assert all(f["reason"] == "reload" for f in r.events("worker-exit")), r.log()


def test_reopen_reopens_the_logs(rotor, sock, tmp_path):
    err = tmp_path / "error.log"
    r = rotor("-k", "hello", "--control-socket", sock, "--error-logfile", str(err), wait=False)
    wait_for(lambda: err.exists() and "event=worker-ready" in err.read_text(), what="a worker")
    err.rename(tmp_path / "error.log.1")
    ask(sock, "reopen")
    wait_for(lambda: err.exists() and "event=reopen-logs" in err.read_text(),
             what="the master to write to a new error log")
    assert r.proc.poll() is None


def test_stop_is_graceful_and_removes_the_socket(rotor, sock):
    r = start(rotor, sock)
    p = ctl(sock, "stop")
    assert p.returncode == 0 and "graceful" in p.stdout, p.stderr
    assert r.wait_exit() == 0
    assert r.events("shutdown")[0]["mode"] == "graceful"
    assert not os.path.exists(sock)


def test_stop_fast(rotor, sock):
    r = start(rotor, sock)
    assert ask(sock, "stop", "--fast")["mode"] == "fast"
    assert r.wait_exit() == 0
    assert r.events("shutdown")[0]["mode"] == "fast"


# --- rotor top ---------------------------------------------------------------------------------

def run_in_pty(args, timeout=DEADLINE):
    """Runs `args` with a pseudo-terminal as its stdin/stdout; returns (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(args[0], args)
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_top_once_prints_one_frame_through_a_pty(rotor, sock):
    r = start(rotor, sock)
    code, out = run_in_pty([str(BIN), "top", "--socket", sock, "--once"])
    assert code == 0, out
    assert "PID" in out and "REQ/S" in out and f"pid {r.pid}" in out, out
    for pid in r.ready_pids():
        assert str(pid) in out, out
    assert "\x1b[?1049h" not in out  # one frame: no alternate screen to leave


def top_until_key(sock, key):
    """Runs live `rotor top` in a pty until it showed a frame, types `key`; returns
    (exit code, all it wrote)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(BIN), [str(BIN), "top", "--socket", sock])
    out = b""

    def frame_shown():
        nonlocal out
        if select.select([fd], [], [], 0.2)[0]:
            out += os.read(fd, 65536)
        return b"REQUESTS/LIMIT" in out
    wait_for(frame_shown, what="a frame of rotor top")
    os.write(fd, key)
    _, status = os.waitpid(pid, 0)
    try:
        while select.select([fd], [], [], 0.2)[0]:
            out += os.read(fd, 65536)
    except OSError:
        pass
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_top_quits_on_q_or_ctrl_c_and_restores_the_terminal(rotor, sock, key):
    start(rotor, sock, workers=1)
    code, out = top_until_key(sock, key)  # the terminal turns Ctrl-C into SIGINT
    assert code == 0, out
    assert b"\x1b[?1049h" in out  # the alternate screen, left at the end
    assert out.rstrip().endswith(b"\x1b[?25h\x1b[?1049l"), out[-80:]


# --- bad input ---------------------------------------------------------------------------------

def test_no_server_at_the_socket_is_exit_1_with_one_line(sock):
    p = ctl(sock, "status")
    line = refused(p, 1, sock, "no rotor control server")
    assert len(p.stderr.splitlines()) == 1, p.stderr
    # A socket file nobody listens on (a dead rotor's) is the same.
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock)
    s.close()
    refused(ctl(sock, "workers"), 1, sock, "no rotor control server")
    assert "Connection refused" in ctl(sock, "workers").stderr
    assert line


def test_permission_refused_is_exit_1(rotor, sock):
    start(rotor, sock, workers=1)
    if os.geteuid() == 0:
        # root passes any file mode: another user is what the mode refuses.
        p = ctl(sock, "status", prefix=["setpriv", "--reuid=65534", "--regid=65534",
                                         "--clear-groups"])
    else:
        os.chmod(sock, 0)
        p = ctl(sock, "status")
    refused(p, 1, sock, "permission denied")
    assert len(p.stderr.splitlines()) == 1, p.stderr


def test_socket_mode_is_0600_whatever_the_umask(rotor, sock):
    start(rotor, sock, "--umask", "0", workers=1)
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid()


def test_unknown_command_and_bad_arguments_are_exit_2(rotor, sock):
    start(rotor, sock, workers=1)
    p = ctl(sock, "frobnicate")
    refused(p, 2, "unknown command: frobnicate")
    assert p.stderr.splitlines()[1].startswith("usage: rotor ctl"), p.stderr
    refused(ctl(sock), 2, "no command")
    refused(ctl(sock, "scale", "many"), 2, "not a whole number")
    refused(ctl(sock, "rotate"), 2, "rotate takes")
    refused(subprocess.run([str(BIN), "ctl", "--bogus", "status"], capture_output=True,
                           text=True), 2, "unknown option: --bogus")


def test_master_refuses_scale_0_beyond_the_limit_and_rotate_of_a_non_worker(rotor, sock):
    r = start(rotor, sock, workers=1)
    refused(ctl(sock, "scale", "0"), 2, "refused", "scale: at least 1 worker")
    refused(ctl(sock, "scale", "513"), 2, "refused", "at most 512 workers")
    refused(ctl(sock, "remove"), 2, "refused", "keeps at least 1 worker")
    refused(ctl(sock, "rotate", "1"), 2, "refused", "pid 1 is not a worker")
    refused(ctl(sock, "rotate", r.pid), 2, "refused", f"pid {r.pid} is not a worker")
    p = ctl(sock, "scale", "0", as_json=True)
    assert p.returncode == 2 and json.loads(p.stdout)["ok"] is False, p.stdout
    assert ask(sock, "status")["status"]["desired"] == 1
    assert len(r.events("control-refused")) == 6, r.log()


def test_no_socket_given_is_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ROTOR_CONTROL_SOCKET"}
    p = subprocess.run([str(BIN), "ctl", "status"], capture_output=True, text=True, env=env)
    refused(p, 2, "no socket")


def test_socket_from_the_environment(rotor, sock):
    start(rotor, sock, workers=1)
    p = subprocess.run([str(BIN), "ctl", "status"], capture_output=True, text=True,
                       env={**os.environ, "ROTOR_CONTROL_SOCKET": sock})
    assert p.returncode == 0, p.stderr


def test_socket_of_a_live_rotor_is_exit_1(rotor, sock):
    first = start(rotor, sock, workers=1)
    second = rotor("-k", "hello", "--control-socket", sock, wait=False)
    assert second.wait_exit() == 1
    lines = [l for l in second.log().splitlines() if l.strip()]
    assert len(lines) == 1 and "--control-socket" in lines[0] and sock in lines[0] \
        and "another server is listening" in lines[0], lines
    assert ask(sock, "status")["status"]["master_pid"] == first.pid


def test_stale_socket_file_is_replaced(rotor, sock):
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock)
    s.close()
    r = start(rotor, sock, workers=1)
    assert ask(sock, "status")["status"]["master_pid"] == r.pid


def test_socket_path_that_cannot_be_created_is_exit_1(rotor, tmp_path):
    path = str(tmp_path / "missing" / "ctl.sock")
    r = rotor("-k", "hello", "--control-socket", path, wait=False)
    assert r.wait_exit() == 1
    lines = [l for l in r.log().splitlines() if l.strip()]
    assert len(lines) == 1 and "--control-socket" in lines[0] and path in lines[0], lines


def test_hostile_clients_do_not_stall_the_master(rotor, sock):
    r = start(rotor, sock, workers=1)
    idle = []
    for _ in range(20):  # more than the connection cap, none sending anything
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        idle.append(c)
    slow = socket.socket(socket.AF_UNIX)
    slow.connect(sock)
    slow.sendall(b'{"v":1,')  # and never the rest
    t0 = time.monotonic()
    assert ask(sock, "status")["status"]["master_pid"] == r.pid
    assert time.monotonic() - t0 < 5

    def reply_to(data):
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(10)
        c.connect(sock)
        try:
            c.sendall(data)
        except OSError:
            pass
        out = b""
        while not out.endswith(b"\n"):
            chunk = c.recv(4096)
            if not chunk:
                break
            out += chunk
        c.close()
        return json.loads(out)
    garbage = reply_to(b"\x00\xffnot json at all\n")
    assert garbage["ok"] is False and garbage["v"] == 1, garbage
    huge = reply_to(b"x" * 100000)
    assert huge["ok"] is False and "longer than" in huge["error"], huge
    wrong = reply_to(b'{"v":7,"cmd":"status"}\n')
    assert "protocol version" in wrong["error"], wrong
    assert ask(sock, "workers")["workers"]
    assert httpx.get(r.url("/"), timeout=10).status_code == 200
    # The slow client is cut off at the read deadline.
    slow.settimeout(10)
    assert slow.recv(100) == b""
    for c in idle:
        c.close()


def test_socket_is_kept_across_hup_and_removed_at_exit(rotor, sock):
    r = start(rotor, sock, workers=1)
    r.signal(signal.SIGHUP)
    wait_for(lambda: ask(sock, "status")["status"]["generation_in_force"] == 2,
             what="the reload to take effect")
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert not os.path.exists(sock)


def test_workers_do_not_hold_the_control_socket(rotor, sock):
    r = start(rotor, sock, workers=1)
    worker = r.ready_pids()[0]
    inode = os.stat(sock).st_ino
    held = [os.readlink(f"/proc/{worker}/fd/{fd}") for fd in os.listdir(f"/proc/{worker}/fd")]
    master = [os.readlink(f"/proc/{r.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{r.pid}/fd")]
    sockets = {l for l in master if l.startswith("socket:")}
    assert sockets, master
    # The listening control socket is the master's alone: a worker would keep it answering
    # connections (queued forever) after the master died.
    with open("/proc/net/unix") as f:
        ours = [l.split() for l in f if l.rstrip().endswith(sock)]
    assert ours, f"{sock} not in /proc/net/unix"
    listening_inodes = {f"socket:[{cols[6]}]" for cols in ours}
    assert listening_inodes & sockets
    assert not listening_inodes & set(held), (held, listening_inodes)
    assert inode


def test_bash_completion_offers_the_subcommands_and_their_commands():
    from test_generated_docs import complete
    assert complete(["rotor", "c"]) == ["ctl"]
    assert complete(["rotor", "ctl", "re"]) == ["reload", "remove", "reopen"]
    assert complete(["rotor", "ctl", "--json", "sc"]) == ["scale"]
    assert complete(["rotor", "top", "--o"]) == ["--once"]
    assert complete(["rotor", "ctl", "--c"]) == ["--config"]


def test_socket_from_the_config_file_the_server_reads(rotor, sock, tmp_path):
    conf = tmp_path / "rotor.toml"
    conf.write_text(f'worker_class = "hello"\ncontrol_socket = "{sock}"\n')
    r = rotor("-c", str(conf), workers=1)
    env = {k: v for k, v in os.environ.items() if k != "ROTOR_CONTROL_SOCKET"}
    p = subprocess.run([str(BIN), "ctl", "-c", str(conf), "--json", "status"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0 and json.loads(p.stdout)["status"]["master_pid"] == r.pid, p.stderr
    code, out = run_in_pty([str(BIN), "top", "-c", str(conf), "--once"])
    assert code == 0 and f"pid {r.pid}" in out, out
    p = subprocess.run([str(BIN), "ctl", "-c", str(tmp_path / "missing.toml"), "status"],
                       capture_output=True, text=True, env=env)
    refused(p, 2, "missing.toml")



@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_with_user_the_socket_stays_the_starting_users_and_workers_run_as_the_other(rotor, sock):
    start(rotor, sock, "--user", "nobody", workers=1)
    st = os.stat(sock)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
    (w,) = workers(sock)
    with open(f"/proc/{w['pid']}/status") as f:
        uid_line = next(l for l in f if l.startswith("Uid:"))
    assert int(uid_line.split()[1]) == 65534, uid_line
    refused(ctl(sock, "status", prefix=["setpriv", "--reuid=65534", "--regid=65534",
                                        "--clear-groups"]), 1, "permission denied")


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_the_master_waits_instead_of_spinning(rotor, sock):
    import resource
    r = start(rotor, sock, workers=1)
    highest = max(int(fd) for fd in os.listdir(f"/proc/{r.pid}/fd"))
    before = resource.prlimit(r.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(r.pid, resource.RLIMIT_NOFILE, (highest + 1, before[1]))
    try:
        c = socket.socket(socket.AF_UNIX)
        c.settimeout(15)
        c.connect(sock)  # queued: the master cannot accept it
        c.sendall(b'{"v":1,"cmd":"status"}\n')
        wait_for(lambda: r.events("control-accept-failed"), what="the accept failure")
        # An idle master sweeps ten times a second, for well under a millisecond each; a loop
        # polling a socket it cannot accept from would take its whole share of a CPU.
        cpu = _cpu_seconds(r.pid)
        time.sleep(2.0)
        used = _cpu_seconds(r.pid) - cpu
        assert used < 0.05, f"the master spins while accept fails: {used:.2f} s of CPU in 2 s"
    finally:
        resource.prlimit(r.pid, resource.RLIMIT_NOFILE, before)
    # With descriptors again it answers the client that waited.
    reply = json.loads(c.makefile().readline())
    assert reply["ok"] and reply["status"]["master_pid"] == r.pid, reply
    assert len(r.events("control-accept-failed")) == 1, r.log()
    assert httpx.get(r.url("/"), timeout=10).status_code == 200
