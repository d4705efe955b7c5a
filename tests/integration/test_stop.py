"""Stopping: what TERM and QUIT do to new connections, to requests in flight and to the
processes, and what becomes of the template and the workers when the master dies."""
import errno
import os
import pwd
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

from conftest import pid_alive, wait_for
from rawhttp import recv_until_closed

# A request that takes ?s= seconds; it touches ?mark= as it starts, so that a test knows it is
# in flight.
SLOW_APP = '''
import asyncio
from urllib.parse import parse_qs


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    q = parse_qs(scope["query_string"].decode())
    if "mark" in q:
        open(q["mark"][0], "w").close()
    await asyncio.sleep(float(q.get("s", ["0"])[0]))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})
'''


def _slow_app_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "slow_app.py").write_text(SLOW_APP)
    return path


def _request_in_flight(port, tmp_path, seconds):
    """A connection whose request is being handled (its handler started) when this returns."""
    mark = tmp_path / f"mark-{time.monotonic_ns()}"
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"GET /?s={seconds}&mark={mark} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    wait_for(mark.exists, what="the slow request to start")
    return s


def _connect_error(family, address):
    """The errno of a new connect() to `address` (0 when it was accepted into a queue)."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(address)
        return 0
    except OSError as e:
        return e.errno
    finally:
        s.close()


def test_after_term_new_connections_are_refused_while_requests_in_flight_complete(rotor,
                                                                                 tmp_path):
    apps = _slow_app_dir(tmp_path / "apps")
    sock_path = tmp_path / "r.sock"
    r = rotor("--chdir", str(apps), "-w", "2", "--graceful-timeout", "30", "-b",
              f"unix:{sock_path}", "slow_app:app")
    assert _connect_error(socket.AF_INET, ("127.0.0.1", r.port)) == 0
    held = _request_in_flight(r.port, tmp_path, 8)
    r.signal(signal.SIGTERM)
    wait_for(lambda: r.lines("shutdown"), what="the stop to begin")
    # Refused, not queued for nobody: clients and balancers go elsewhere at once, long before
    # the request in flight (8 s) lets the master leave.
    wait_for(lambda: _connect_error(socket.AF_INET, ("127.0.0.1", r.port)) == errno.ECONNREFUSED,
             timeout=4, what="TCP connections to be refused")
    wait_for(lambda: _connect_error(socket.AF_UNIX, str(sock_path)) == errno.ECONNREFUSED,
             timeout=4, what="unix socket connections to be refused")
    assert r.proc.poll() is None, "the master left before the request in flight was answered"
    data, closed = recv_until_closed(held, 30)
    held.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"done"), data
    assert r.wait_exit() == 0
    assert "accept-failed" not in r.log()


def test_a_hup_does_not_stop_the_listening_socket(rotor, tmp_path):
    apps = _slow_app_dir(tmp_path / "apps")
    r = rotor("--chdir", str(apps), "-w", "1", "slow_app:app")
    first = r.ready_pids()
    r.signal(signal.SIGHUP)
    wait_for(lambda: len(r.events("template-ready")) >= 2, what="the HUP's template")
    wait_for(lambda: set(r.ready_pids()) - set(first), what="a worker of the new generation")
    s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data, _ = recv_until_closed(s, 10)
    assert data.startswith(b"HTTP/1.1 200"), data
    wait_for(lambda: not any(pid_alive(p) for p in first), what="the old worker to leave")
    assert _connect_error(socket.AF_INET, ("127.0.0.1", r.port)) == 0


def test_quit_is_a_fast_stop_that_does_not_wait_for_requests_in_flight(rotor, tmp_path):
    apps = _slow_app_dir(tmp_path / "apps")
    r = rotor("--chdir", str(apps), "-w", "2", "--graceful-timeout", "60", "slow_app:app")
    workers = r.ready_pids()
    template = int(r.events("template-start")[-1]["pid"])
    held = _request_in_flight(r.port, tmp_path, 60)
    started = time.monotonic()
    r.signal(signal.SIGQUIT)
    assert r.wait_exit(timeout=15) == 0
    # The fast stop gives workers a second, then kills them: far from the 60 s of a drain.
    assert time.monotonic() - started < 10
    assert [f["mode"] for f in r.events("shutdown")] == ["fast"]
    data, closed = recv_until_closed(held, 10)
    held.close()
    assert closed and not data.startswith(b"HTTP/1.1 200"), data
    wait_for(lambda: not any(pid_alive(p) for p in workers + [template]), timeout=10,
             what="the workers and the template to be gone")
    assert _connect_error(socket.AF_INET, ("127.0.0.1", r.port)) == errno.ECONNREFUSED


@pytest.mark.parametrize("user", [None, "nobody"])
def test_the_template_and_the_workers_die_with_a_killed_master(rotor, tmp_path, request, user):
    if user and os.getuid() != 0:
        pytest.skip("switching users needs root")
    # For --user: a directory nobody can enter (tmp_path's parents are root's 0700). The switch
    # of user clears the parent-death signal, which must be set again after it.
    apps = Path(tempfile.mkdtemp(prefix="rotor-stop-"))
    os.chmod(apps, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(apps, ignore_errors=True))
    _slow_app_dir(apps)
    extra = ["--user", user] if user else []
    r = rotor("--chdir", str(apps), "-w", "2", *extra, "slow_app:app")
    workers = r.ready_pids()
    template = int(r.events("template-start")[-1]["pid"])
    assert pid_alive(template)
    if user:
        with open(f"/proc/{template}/status") as f:
            uid = next(l for l in f if l.startswith("Uid:")).split()[1]
        assert int(uid) == pwd.getpwnam(user).pw_uid
    os.kill(r.pid, signal.SIGKILL)
    r.proc.wait()
    wait_for(lambda: not any(pid_alive(p) for p in workers + [template]), timeout=10,
             what="the template and the workers to die with the master")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serves(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data, _ = recv_until_closed(s, 10)
            return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.mark.parametrize("app", ["hello", "asgi"])
def test_a_hup_that_changes_bind_serves_the_new_address_and_stops_the_old(rotor, tmp_path, app):
    old, new = _free_port(), _free_port()
    conf = tmp_path / "rotor.toml"
    apps = _slow_app_dir(tmp_path / "apps")
    target = ['worker_class = "hello"'] if app == "hello" else ['app = "slow_app:app"']
    conf.write_text("\n".join(target + [f'bind = ["127.0.0.1:{old}"]']) + "\n")
    r = rotor("-c", str(conf), "--chdir", str(apps), "-w", "2", bind=False, wait=False)
    r.port = old
    r.wait_ready(2)
    assert _serves(old) and not _serves(new)
    first = r.ready_pids()
    conf.write_text("\n".join(target + [f'bind = ["127.0.0.1:{new}"]']) + "\n")
    r.signal(signal.SIGHUP)
    wait_for(lambda: _serves(new), what=f"the new address to serve\n{r.log()}")
    wait_for(lambda: not any(pid_alive(p) for p in first), what="the old workers to leave")
    wait_for(lambda: _connect_error(socket.AF_INET, ("127.0.0.1", old)) == errno.ECONNREFUSED,
             what=f"the old address to stop\n{r.log()}")
    assert f"address=http://127.0.0.1:{new}" in "".join(r.lines("listening"))
    assert f"address=http://127.0.0.1:{old}" in "".join(r.lines("listener-closed"))
    # Back to the old address (bound again), while the new one is served meanwhile.
    conf.write_text("\n".join(target + [f'bind = ["127.0.0.1:{old}"]']) + "\n")
    r.signal(signal.SIGHUP)
    wait_for(lambda: _serves(old), what=f"the old address to serve again\n{r.log()}")
    wait_for(lambda: _connect_error(socket.AF_INET, ("127.0.0.1", new)) == errno.ECONNREFUSED,
             what=f"the new address to stop\n{r.log()}")


def test_a_hup_whose_new_address_cannot_be_bound_changes_nothing(rotor, tmp_path):
    port = _free_port()
    conf = tmp_path / "rotor.toml"
    conf.write_text(f'worker_class = "hello"\nbind = ["127.0.0.1:{port}"]\n')
    r = rotor("-c", str(conf), bind=False, wait=False)
    r.port = port
    r.wait_ready(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        conf.write_text(f'worker_class = "hello"\nbind = ["127.0.0.1:{busy}"]\nworkers = 2\n')
        r.signal(signal.SIGHUP)
        wait_for(lambda: r.lines("reload-failed"), what="the reload to fail")
    assert "Address already in use" in r.lines("reload-failed")[0]
    assert not r.events("reload")  # no generation started
    assert _serves(port)


def test_a_hup_that_narrows_an_address_on_the_same_port_still_reloads_the_rest(rotor, tmp_path):
    # 0.0.0.0:P cannot be narrowed to 127.0.0.1:P while its socket listens (EADDRINUSE); that
    # must not refuse the code and the rest of the config too: the address stays as it was.
    port = _free_port()
    conf = tmp_path / "rotor.toml"
    conf.write_text(f'worker_class = "hello"\nbind = ["0.0.0.0:{port}"]\n')
    r = rotor("-c", str(conf), bind=False, wait=False)
    r.port = port
    r.wait_ready(1)
    conf.write_text(f'worker_class = "hello"\nbind = ["127.0.0.1:{port}"]\nworkers = 2\n')
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("config-applied"), what=f"the reload to take effect\n{r.log()}")
    r.wait_ready(2)
    assert not r.lines("reload-failed"), r.log()
    warned = r.events("bind-unchanged")
    assert warned and "Address already in use" in warned[0]["error"], r.log()
    assert _serves(port)


@pytest.mark.parametrize("user", [None, "nobody"])
def test_a_template_still_importing_dies_with_a_killed_master(rotor, request, user):
    if user and os.getuid() != 0:
        pytest.skip("switching users needs root")
    # While it imports, only its parent-death signal can end it (it reads no socket yet); the
    # switch to --user clears that signal, so it must be set again after the switch.
    apps = Path(tempfile.mkdtemp(prefix="rotor-stop-"))
    os.chmod(apps, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(apps, ignore_errors=True))
    (apps / "slow_import.py").write_text(
        "import time\ntime.sleep(60)\n\nasync def app(scope, receive, send):\n    pass\n")
    extra = ["--user", user] if user else []
    r = rotor("--chdir", str(apps), *extra, "slow_import:app", wait=False)
    template = int(wait_for(lambda: r.events("template-start"),
                            what="the template to start")[-1]["pid"])
    wait_for(lambda: _importing(template), what="the template to import the app")
    os.kill(r.pid, signal.SIGKILL)
    r.proc.wait()
    wait_for(lambda: not pid_alive(template), timeout=10,
             what="the importing template to die with the master")


def _importing(pid):
    """Whether `pid` is asleep with Python loaded: in the app's import, which sleeps."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/maps") as f:
            python = "libpython" in f.read()
        return state == "S" and python
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_hup_during_a_graceful_stop_binds_nothing_new(rotor, tmp_path):
    old, new = _free_port(), _free_port()
    conf = tmp_path / "rotor.toml"
    apps = _slow_app_dir(tmp_path / "apps")
    conf.write_text(f'app = "slow_app:app"\nbind = ["127.0.0.1:{old}"]\n')
    r = rotor("-c", str(conf), "--chdir", str(apps), "-w", "1", "--graceful-timeout", "30",
              bind=False, wait=False)
    r.port = old
    r.wait_ready(1)
    held = _request_in_flight(old, tmp_path, 8)  # keeps the master stopping for 8 s
    r.signal(signal.SIGTERM)
    wait_for(lambda: r.lines("shutdown"), what="the stop to begin")
    conf.write_text(f'app = "slow_app:app"\nbind = ["127.0.0.1:{new}"]\n')
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.lines("signals-ignored") or r.lines("reload"),
             what="the HUP to be handled")
    # Nobody would serve a connection to the new address: it must be refused, not queued.
    assert _connect_error(socket.AF_INET, ("127.0.0.1", new)) == errno.ECONNREFUSED, r.log()
    assert not r.events("reload")
    assert r.proc.poll() is None
    data, _ = recv_until_closed(held, 30)
    held.close()
    assert data.startswith(b"HTTP/1.1 200"), data
    assert r.wait_exit() == 0


def test_a_ttin_during_a_graceful_stop_does_not_raise_the_worker_target(rotor, tmp_path):
    # A stop wins (nginx's order): scaling a pool that is draining means nothing.
    port = _free_port()
    apps = _slow_app_dir(tmp_path / "apps")
    r = rotor("--chdir", str(apps), "-w", "1", "--graceful-timeout", "30",
              "-b", f"127.0.0.1:{port}", "slow_app:app", bind=False, wait=False)
    r.port = port
    r.wait_ready(1)
    held = _request_in_flight(port, tmp_path, 6)  # keeps the master stopping for 6 s
    r.signal(signal.SIGTERM)
    wait_for(lambda: r.lines("shutdown"), what="the stop to begin")
    r.signal(signal.SIGTTIN)
    wait_for(lambda: r.lines("signals-ignored") or r.lines("scale"),
             what=f"the TTIN to be handled\n{r.log()}")
    assert not r.events("scale"), r.log()
    assert int(r.events("signals-ignored")[0]["count"]) == 1
    data, _ = recv_until_closed(held, 30)
    held.close()
    assert data.startswith(b"HTTP/1.1 200"), data
    assert r.wait_exit() == 0


def test_a_hup_binds_its_new_addresses_with_its_own_umask(rotor, tmp_path):
    old, new = tmp_path / "old.sock", tmp_path / "new.sock"
    conf = tmp_path / "rotor.toml"
    conf.write_text(f'worker_class = "hello"\nbind = ["unix:{old}"]\numask = "0o077"\n')
    r = rotor("-c", str(conf), bind=False, wait=False)
    wait_for(old.exists, what=f"the first socket\n{r.log()}")
    assert old.stat().st_mode & 0o777 == 0o700
    # Moved, and opened to the proxy's group: the new socket must be created as now said.
    conf.write_text(f'worker_class = "hello"\nbind = ["unix:{new}"]\numask = "0o007"\n')
    r.signal(signal.SIGHUP)
    wait_for(new.exists, what=f"the new socket\n{r.log()}")
    assert oct(new.stat().st_mode & 0o777) == oct(0o770), r.log()
