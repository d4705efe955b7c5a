"""Which Python rotor runs an app with: an app whose Python (--python, VIRTUAL_ENV) is a CPython
version rotor has no plugin for is refused with one line and exit 4 before anything is bound or
forked; a virtualenv of a version with a plugin serves. The build tree's rotor has the default
Python's plugin only (the other versions' are built apart, see test_python_versions.py). The
other versions come from the pyenv root of the machine's image, where present."""
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import BIN, serve, wait_for

DEBIAN_PYTHON = "/usr/bin/python3"
EMBEDDED = subprocess.run([DEBIAN_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def pyenv_root():
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        if out:
            return Path(out)
    return Path.home() / ".pyenv"


def other_python(minor):
    """The pyenv root's CPython 3.`minor` interpreter, or a skip saying it is absent."""
    for version in sorted((pyenv_root() / "versions").glob(f"3.{minor}.*")):
        exe = version / "bin" / f"python3.{minor}"
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
    pytest.skip(f"no CPython 3.{minor} under {pyenv_root()}/versions (the machine image's pyenv "
                "builds); this test needs one")


def make_venv(python, where):
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(where)], check=True,
                   timeout=120)
    return where


@pytest.fixture
def venv312(tmp_path):
    return make_venv(other_python(12), tmp_path / "venv312")


def marked_app(tmp_path):
    """An app directory whose import leaves a file behind: proof that something imported it."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    marker = tmp_path / "imported"
    (app_dir / "marked.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "async def app(scope, receive, send):\n    pass\n")
    return app_dir, marker


def held_port():
    """A listening socket the test holds: rotor binding it would fail with exit 1, not 4."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def refused(args, env, tmp_path, strace=False, binary=BIN):
    """Runs rotor on the marked app; returns (exit code, output, the syscalls strace saw)."""
    app_dir, marker = marked_app(tmp_path)
    holder = held_port()
    port = holder.getsockname()[1]
    cmd = [str(binary), "--chdir", str(app_dir), "-b", f"127.0.0.1:{port}",
           "--pid", str(tmp_path / "rotor.pid"), *args, "marked:app"]
    trace = tmp_path / "strace.txt"
    if strace:
        cmd = ["strace", "-f", "-qq", "-e", "trace=fork,vfork,clone,clone3,bind", "-o",
               str(trace)] + cmd
    full_env = dict(os.environ, **env)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=30)
    finally:
        holder.close()
    assert not marker.exists(), "the app was imported"
    assert not (tmp_path / "rotor.pid").exists(), "the master got as far as its pid file"
    syscalls = trace.read_text() if strace else ""
    return out.returncode, out.stdout + out.stderr, syscalls


def assert_the_one_line(output, python, how, version):
    lines = output.splitlines()
    assert len(lines) == 1, output
    line = lines[0]
    assert line.startswith(f"rotor: error: the app's Python {python} ({how}) is CPython "
                           f"{version}"), line
    minor = ".".join(version.split(".")[:2])
    assert f"this rotor has no plugin for CPython {minor} (it has {EMBEDDED}, looked in " in line
    assert f'cmake -DROTOR_PYTHONS="{DEBIAN_PYTHON};{python}"' in line, line
    assert "event=" not in line


def test_a_virtualenv_of_another_version_is_refused_before_anything_is_bound_or_forked(
        tmp_path, venv312):
    version = subprocess.run([str(venv312 / "bin" / "python"), "-c",
                              "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    code, output, syscalls = refused([], {"VIRTUAL_ENV": str(venv312)}, tmp_path,
                                     strace=bool(shutil.which("strace")))
    assert code == 4, output
    assert_the_one_line(output, f"{venv312}/bin/python", "VIRTUAL_ENV", version)
    assert f"(per {venv312}/pyvenv.cfg)" in output
    if shutil.which("strace"):
        calls = [l for l in syscalls.splitlines() if "(" in l and "---" not in l]
        assert not any(c for c in calls if "fork(" in c or "clone" in c or "bind(" in c), syscalls


def test_the_python_option_naming_another_versions_virtualenv_is_refused(tmp_path, venv312):
    python = venv312 / "bin" / "python"
    code, output, _ = refused(["--python", str(python)], {}, tmp_path)
    assert code == 4, output
    assert_the_one_line(output, python, "--python", "3.12")


def test_a_bare_interpreter_of_another_version_is_asked_its_version_and_refused(tmp_path):
    python = other_python(12)
    code, output, _ = refused(["--python", str(python)], {}, tmp_path)
    assert code == 4, output
    assert_the_one_line(output, python, "--python", "3.12")
    assert "(asked in a subprocess)" in output


@pytest.mark.parametrize("minor", [9, 10, 13])
def test_every_other_version_present_is_refused(tmp_path, minor):
    if f"3.{minor}" == EMBEDDED:
        pytest.skip("rotor embeds this version")
    venv = make_venv(other_python(minor), tmp_path / f"venv3{minor}")
    code, output, _ = refused([], {"VIRTUAL_ENV": str(venv)}, tmp_path)
    assert code == 4, output
    assert_the_one_line(output, f"{venv}/bin/python", "VIRTUAL_ENV", f"3.{minor}")


def test_check_config_refuses_it_too_with_exit_4(tmp_path, venv312):
    out = subprocess.run([str(BIN), "--check-config", "raw_app:app"], capture_output=True,
                         text=True, env=dict(os.environ, VIRTUAL_ENV=str(venv312)), timeout=30)
    assert out.returncode == 4, out
    assert out.stdout == ""
    assert out.stderr.startswith(f"rotor: error: the app's Python {venv312}/bin/python "
                                 "(VIRTUAL_ENV) is CPython 3.12."), out.stderr
    # The hello worker runs no Python: nothing to refuse.
    out = subprocess.run([str(BIN), "--check-config", "-k", "hello"], capture_output=True,
                         text=True, env=dict(os.environ, VIRTUAL_ENV=str(venv312)), timeout=30)
    assert out.returncode == 0, out


def test_a_virtualenv_of_rotors_own_version_serves(rotor, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(venv)], check=True)
    r = serve(rotor, "raw_app:app", env={"VIRTUAL_ENV": str(venv)})
    info = httpx.get(r.url("/sys")).json()
    assert info["executable"] == str(venv / "bin" / "python")
    assert info["prefix"] == str(venv)


def test_a_virtualenv_without_pyvenv_cfg_is_refused_with_exit_4(tmp_path):
    empty = tmp_path / "not-a-venv"
    empty.mkdir()
    code, output, _ = refused([], {"VIRTUAL_ENV": str(empty)}, tmp_path)
    assert code == 4, output
    assert output == (f"rotor: error: VIRTUAL_ENV={empty} is not a virtualenv: it has neither "
                      "pyvenv.cfg nor bin/python\n")


@pytest.mark.parametrize("cfg", ["home = /usr/bin\ninclude-system-site-packages = false\n",
                                 "version = the latest\n", "\x00\x01garbage\xff"])
def test_a_pyvenv_cfg_without_a_version_is_refused_with_exit_4(tmp_path, cfg):
    venv = tmp_path / "venv"
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "pyvenv.cfg").write_text(cfg, errors="surrogateescape")
    code, output, _ = refused([], {"VIRTUAL_ENV": str(venv)}, tmp_path)
    assert code == 4, output
    assert output == (f"rotor: error: the app's Python {venv}/bin/python (VIRTUAL_ENV): "
                      f"{venv}/pyvenv.cfg records no Python version (no line like "
                      "version = 3.11.2)\n")


def test_a_hup_to_a_version_without_a_plugin_fails_and_the_old_workers_keep_serving(
        rotor, tmp_path, venv312):
    conf = tmp_path / "rotor.toml"
    conf.write_text("")
    r = serve(rotor, "raw_app:app", "-c", str(conf))
    old = set(r.ready_pids())
    starts = len(r.events("template-start")) + len(r.events("spawn"))
    conf.write_text(f'python = "{venv312}/bin/python"\n')
    r.signal(signal.SIGHUP)
    failed = wait_for(lambda: r.events("reload-failed"), what="event=reload-failed")
    assert "is CPython 3.12." in failed[0]["error"], failed
    assert httpx.get(r.url("/sys")).json()["executable"] == DEBIAN_PYTHON
    assert set(r.ready_pids()) == old
    assert len(r.events("template-start")) + len(r.events("spawn")) == starts, r.log()
