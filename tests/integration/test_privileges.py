"""What runs as root and what does not: with --user, only the master keeps root (to bind and to
create log files); the app's code never runs with it, and the master's own files (the pid file)
cannot be turned against it by the service user."""
import os
import pwd
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import pytest

from conftest import wait_for

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")

# Import-time code of an app: records who imports it, with which capabilities.
RECORDING_APP = '''
import os

def _record():
    with open("/proc/self/status") as f:
        cap_eff = next(l.split()[1] for l in f if l.startswith("CapEff:"))
    with open(os.environ["ROTOR_TEST_IMPORTS"], "a") as out:
        out.write(f"{os.getpid()} {os.getuid()} {os.geteuid()} {os.getgid()} {cap_eff}\\n")

_record()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
'''


@pytest.fixture
def nobody_dir(request):
    """A directory that nobody can enter and write (tmp_path's parents are root's 0700)."""
    d = Path(tempfile.mkdtemp(prefix="rotor-priv-"))
    os.chmod(d, 0o777)
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def _imports(path):
    """(pid, uid, euid, gid, CapEff) of every import of the app so far."""
    if not path.exists():
        return []
    return [tuple(l.split()) for l in path.read_text().splitlines() if l.strip()]


def _start_recording_app(rotor, nobody_dir, *extra):
    (nobody_dir / "recording_app.py").write_text(RECORDING_APP)
    imports = nobody_dir / "imports.txt"
    r = rotor("--chdir", str(nobody_dir), "--user", "nobody", *extra, "recording_app:app",
              env={"ROTOR_TEST_IMPORTS": str(imports)})
    return r, imports


def _assert_unprivileged(records):
    nobody = pwd.getpwnam("nobody")
    for pid, uid, euid, gid, cap_eff in records:
        assert (int(uid), int(euid), int(gid)) == (nobody.pw_uid, nobody.pw_uid, nobody.pw_gid), \
            f"pid {pid} imported the app as uid={uid} euid={euid} gid={gid}"
        assert int(cap_eff, 16) == 0, f"pid {pid} imported the app with capabilities {cap_eff}"


def test_the_template_imports_the_app_as_the_user_at_start_and_on_every_hup(rotor, nobody_dir):
    r, imports = _start_recording_app(rotor, nobody_dir)
    first = int(r.events("template-start")[0]["pid"])
    wait_for(lambda: any(int(rec[0]) == first for rec in _imports(imports)),
             what="the template's import to be recorded")
    _assert_unprivileged(_imports(imports))

    r.signal(signal.SIGHUP)
    wait_for(lambda: len(r.events("template-ready")) >= 2, what=f"the HUP's template\n{r.log()}")
    second = int(r.events("template-start")[-1]["pid"])
    assert second != first
    records = _imports(imports)
    assert any(int(rec[0]) == second for rec in records), records
    _assert_unprivileged(records)
    # The master keeps root: it binds, and creates log files.
    assert os.stat(f"/proc/{r.pid}").st_uid == 0


def test_a_cold_worker_imports_the_app_as_the_user(rotor, nobody_dir):
    r, imports = _start_recording_app(rotor, nobody_dir, "--no-preload")
    (worker,) = r.ready_pids()
    records = _imports(imports)
    assert any(int(rec[0]) == worker for rec in records), records
    _assert_unprivileged(records)


def _socket_inodes(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:"):
            out[target] = int(fd)
    return out


def _shared_sockets(worker, *others):
    """The sockets `worker` holds that one of `others` holds too (created before its fork)."""
    mine = set(_socket_inodes(worker))
    return {s for pid in others for s in _socket_inodes(pid) if s in mine}


@pytest.mark.parametrize("mode", ["template", "cold"])
def test_a_worker_holds_only_the_sockets_it_serves_with(rotor, nobody_dir, mode):
    # Of what the master and the template hold, a worker needs the listening socket and the
    # handoff channel (a socket pair): three sockets for one --bind. Not the template's control
    # socket, either end; what it opens itself (asyncio's self-pipe) is its own.
    extra = ["--no-preload"] if mode == "cold" else []
    r, _ = _start_recording_app(rotor, nobody_dir, *extra)
    (worker,) = r.ready_pids()
    master = set(_socket_inodes(r.pid))
    shared = _shared_sockets(worker, r.pid)
    assert len(shared) == 3, (shared, master)
    if mode == "template":
        template = int(r.events("template-start")[-1]["pid"])
        assert _shared_sockets(worker, template) == shared
        # A HUP's template and the workers it forks, while the old template still exists.
        r.signal(signal.SIGHUP)
        wait_for(lambda: [p for p in r.ready_pids() if p != worker],
                 what=f"a worker of the HUP's template\n{r.log()}")
        new = next(p for p in r.ready_pids() if p != worker)
        templates = [int(f["pid"]) for f in r.events("template-start")]
        alive = [t for t in templates if os.path.exists(f"/proc/{t}/fd")]
        assert _shared_sockets(new, r.pid, *alive) == shared, (templates, alive)


# --pid


def _pid_dir(mode, owner=0):
    d = Path(tempfile.mkdtemp(prefix="rotor-pid-"))
    os.chown(d, owner, -1)
    os.chmod(d, mode)
    return d


@pytest.fixture
def cleanup(request):
    dirs = []
    request.addfinalizer(lambda: [shutil.rmtree(d, ignore_errors=True) for d in dirs])
    return dirs.append


def test_a_symlink_planted_at_the_pid_file_is_replaced_not_followed(rotor, cleanup):
    d = _pid_dir(0o1777)  # /tmp-like: anyone may plant a link here
    cleanup(d)
    victim = d / "victim"
    victim.write_text("precious\n")
    pid_file = d / "rotor.pid"
    os.symlink(victim, pid_file)
    os.lchown(pid_file, pwd.getpwnam("nobody").pw_uid, -1)
    r = rotor("-k", "hello", "--pid", str(pid_file), "--user", "nobody")
    wait_for(lambda: not pid_file.is_symlink(), what=f"the pid file written\n{r.log()}")
    assert pid_file.read_text().strip() == str(r.pid)
    assert victim.read_text() == "precious\n"
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []  # no temporary left
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert not pid_file.exists() and victim.read_text() == "precious\n"


def test_a_symlink_planted_in_a_trusted_directory_is_not_followed_either(rotor, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pid_file = tmp_path / "rotor.pid"
    os.symlink(victim, pid_file)
    r = rotor("-k", "hello", "--pid", str(pid_file))
    wait_for(lambda: not pid_file.is_symlink(), what=f"the pid file written\n{r.log()}")
    assert victim.read_text() == "precious\n"
    assert pid_file.read_text().strip() == str(r.pid)


@pytest.mark.parametrize("how", ["world-writable", "owned-by-the-user", "group-writable",
                                 "sticky-but-the-user's"])
def test_a_pid_file_in_a_directory_others_can_write_is_refused(rotor, cleanup, how):
    nobody = pwd.getpwnam("nobody")
    why = "can be written by other users and is not sticky; they could replace the file"
    if how == "world-writable":
        d = _pid_dir(0o777)
    elif how == "owned-by-the-user":
        d = _pid_dir(0o755, owner=nobody.pw_uid)
    elif how == "sticky-but-the-user's":
        # The sticky bit does not hold back a directory's owner: it may replace root's file.
        d = _pid_dir(0o1777, owner=nobody.pw_uid)
        why = "belongs to another user, who could replace the file"
    else:
        d = _pid_dir(0o775)
        os.chown(d, 0, nobody.pw_gid)
    cleanup(d)
    victim = d / "victim"
    victim.write_text("precious\n")
    pid_file = d / "rotor.pid"
    os.symlink(victim, pid_file)
    r = rotor("-k", "hello", "--pid", str(pid_file), "--user", "nobody", wait=False)
    assert r.wait_exit() == 1
    lines = [l for l in r.log().splitlines() if "error" in l]
    assert lines == [f"rotor: error: --pid: {pid_file}: directory {d} {why}: use a directory "
                     "only root (or rotor's user) can write, such as /run"], r.log()
    assert victim.read_text() == "precious\n"
    assert not r.events("start")


def test_a_pid_file_that_is_no_longer_ours_is_left_at_exit(rotor, tmp_path):
    pid_file = tmp_path / "rotor.pid"
    r = rotor("-k", "hello", "--pid", str(pid_file))
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() == str(r.pid))
    other = tmp_path / "other"
    other.write_text("4242\n")
    os.rename(other, pid_file)  # another master's, written since
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert pid_file.read_text() == "4242\n"


def test_a_fifo_at_the_pid_file_does_not_block_the_start(rotor, tmp_path):
    pid_file = tmp_path / "rotor.pid"
    os.mkfifo(pid_file)
    r = rotor("-k", "hello", "--pid", str(pid_file))
    wait_for(lambda: pid_file.is_file() and pid_file.read_text().strip() == str(r.pid),
             what=f"the pid file in place of the fifo\n{r.log()}")


def test_a_hup_naming_a_pid_file_that_cannot_be_written_keeps_the_one_in_use(rotor, tmp_path,
                                                                             cleanup):
    pid_file = tmp_path / "rotor.pid"
    untrusted = _pid_dir(0o777)
    cleanup(untrusted)
    conf = tmp_path / "rotor.toml"
    conf.write_text(f'worker_class = "hello"\npid_file = "{pid_file}"\n')
    r = rotor("-c", str(conf))
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() == str(r.pid),
             what=f"the pid file written\n{r.log()}")
    conf.write_text(f'worker_class = "hello"\npid_file = "{untrusted / "rotor.pid"}"\n')
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.lines("pid-file-failed"), what=f"the new pid file to fail\n{r.log()}")
    # The master must stay findable (and its pid file claimed against a second start).
    assert pid_file.read_text().strip() == str(r.pid), r.log()
    assert not (untrusted / "rotor.pid").exists()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert not pid_file.exists(), "the pid file in use was left at exit"


def test_a_hup_naming_the_pid_file_of_another_running_master_leaves_it_alone(rotor, tmp_path):
    mine, theirs = tmp_path / "mine.pid", tmp_path / "theirs.pid"
    other = rotor("-k", "hello", "--pid", str(theirs))
    conf = tmp_path / "rotor.toml"
    conf.write_text(f'worker_class = "hello"\npid_file = "{mine}"\n')
    r = rotor("-c", str(conf))
    wait_for(lambda: mine.exists() and theirs.exists(), what=f"both pid files\n{r.log()}")
    conf.write_text(f'worker_class = "hello"\npid_file = "{theirs}"\n')
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.lines("pid-file-failed") or r.lines("config-applied"),
             what=f"the HUP's config\n{r.log()}")
    # Refused as at a start: the other master keeps its file, this one its own.
    assert theirs.read_text().strip() == str(other.pid), r.log()
    assert mine.read_text().strip() == str(r.pid), r.log()
    r.signal(signal.SIGTERM)
    assert r.wait_exit() == 0
    assert theirs.read_text().strip() == str(other.pid)
    assert not mine.exists()


@pytest.mark.parametrize("mode", ["template", "cold"])
def test_an_app_directory_the_user_cannot_read_is_named_as_the_cause(rotor, tmp_path, mode):
    # tmp_path is root's 0700: before the switch to --user it was imported as root; now the
    # user cannot read it, which must be said, not only shown as a module that does not exist.
    (tmp_path / "recording_app.py").write_text(RECORDING_APP)
    extra = ["--no-preload"] if mode == "cold" else []
    r = rotor("--chdir", str(tmp_path), "--user", "nobody", *extra, "recording_app:app",
              env={"ROTOR_TEST_IMPORTS": str(tmp_path / "imports.txt")}, wait=False)
    assert r.wait_exit() == 4, r.log()
    said = r.lines("app-dir-unreadable")
    assert said and f"cannot read {tmp_path} as uid {pwd.getpwnam('nobody').pw_uid}: " \
        "Permission denied" in said[0], r.log()


@pytest.mark.parametrize("name", ["", "a-directory"])
def test_a_pid_file_that_cannot_be_written_at_start_stops_the_start(rotor, tmp_path, name):
    # A trailing slash, or a directory named: a master running without the pid file it was
    # told to keep cannot be found or stopped by what reads it (systemd's PIDFile=, scripts).
    (tmp_path / "a-directory").mkdir()
    path = f"{tmp_path}/{name}"
    r = rotor("-k", "hello", "--pid", path, wait=False)
    assert r.wait_exit() == 1, r.log()
    failed = r.events("pid-file-failed")
    assert failed and failed[0]["path"] == path, r.log()
    assert not r.events("spawn"), r.log()
