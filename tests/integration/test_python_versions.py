"""One rotor, any CPython 3.9-3.13: the embedded Python is a plugin per minor version
(rotor-python3.X.so), loaded by the template or a worker, never by the master; the binary links no
libpython. For every CPython the machine image has under the pyenv root, its plugin is built once
(scripts/build-pythons.sh, into build-pythons/) and a virtualenv of it serves a raw ASGI app
(no third-party package exists for those interpreters here): bodies, streaming, lifespan state,
a WebSocket echo, the GC knobs, rotation under load, a HUP, a timeout's traceback."""
import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import BIN, ROOT, run_wrk, serve, wait_for
from test_python_version import DEBIAN_PYTHON, EMBEDDED, make_venv, other_python, refused

MINORS = [9, 10, 11, 12, 13]


@pytest.fixture(scope="session")
def plugin_dir():
    """The build dir of the other CPythons' plugins, built once (a no-op when up to date);
    $ROTOR_TEST_PLUGIN_DIR names one built already."""
    if os.environ.get("ROTOR_TEST_PLUGIN_DIR"):
        return Path(os.environ["ROTOR_TEST_PLUGIN_DIR"])
    out = subprocess.run([str(ROOT / "scripts" / "build-pythons.sh")], capture_output=True,
                         text=True, timeout=1200, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return ROOT / out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module", params=MINORS, ids=[f"3.{m}" for m in MINORS])
def version_venv(request, plugin_dir, tmp_path_factory):
    """(minor, its pyenv interpreter, a virtualenv of it, the plugin dir holding its plugin)."""
    minor = request.param
    python = other_python(minor)
    plugin = plugin_dir / f"rotor-python3.{minor}.so"
    assert plugin.exists(), f"scripts/build-pythons.sh built no {plugin.name}"
    venv = make_venv(python, tmp_path_factory.mktemp(f"venv3{minor}") / "venv")
    return minor, python, venv, plugin_dir


def ws_echo(port, payloads):
    """Raw WebSocket handshake on /, then each payload as a masked text frame, echoed back."""
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall((f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    echoed = []
    for payload in payloads:
        mask = os.urandom(4)
        data = payload.encode()
        assert len(data) < 126
        s.sendall(bytes([0x81, 0x80 | len(data)]) + mask +
                  bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        n = buf[1] & 0x7F
        assert buf[0] == 0x81, buf
        echoed.append(buf[2:2 + n].decode())
        buf = buf[2 + n:]
    s.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack("!H", 1000))
    s.close()
    return echoed


def test_the_binary_links_no_libpython():
    out = subprocess.run(["ldd", str(BIN)], capture_output=True, text=True, check=True).stdout
    assert "libpython" not in out, out
    plugin = BIN.parent / f"rotor-python{EMBEDDED}.so"
    assert plugin.exists(), "the default Python's plugin is built beside the binary"
    assert f"libpython{EMBEDDED}" in subprocess.run(["ldd", str(plugin)], capture_output=True,
                                                    text=True, check=True).stdout


def test_the_master_never_maps_python_the_template_and_workers_do(rotor):
    r = serve(rotor, "raw_app:app", workers=2)
    assert httpx.get(r.url("/")).text == "Hello, world!"

    def mapped(pid):
        return Path(f"/proc/{pid}/maps").read_text()
    master = mapped(r.pid)
    assert "libpython" not in master and "rotor-python" not in master
    for pid in r.ready_pids():
        maps = mapped(pid)
        assert f"rotor-python{EMBEDDED}.so" in maps and "libpython" in maps
    loaded = r.events("python-plugin")
    assert loaded and loaded[0]["path"].endswith(f"rotor-python{EMBEDDED}.so"), r.log()


def test_a_version_without_a_plugin_is_refused_with_one_line_and_nothing_forked(tmp_path):
    """An installed layout (bin/rotor, lib/rotor/) holding the default Python's plugin only."""
    python = other_python(12)
    venv = make_venv(python, tmp_path / "venv312")
    (tmp_path / "inst" / "bin").mkdir(parents=True)
    (tmp_path / "inst" / "lib" / "rotor").mkdir(parents=True)
    binary = tmp_path / "inst" / "bin" / "rotor"
    shutil.copy(BIN, binary)
    shutil.copy(BIN.parent / f"rotor-python{EMBEDDED}.so", tmp_path / "inst" / "lib" / "rotor")
    code, output, syscalls = refused([], {"VIRTUAL_ENV": str(venv)}, tmp_path,
                                     strace=bool(shutil.which("strace")), binary=binary)
    assert code == 4, output
    assert output.count("\n") == 1, output
    assert output.startswith(f"rotor: error: the app's Python {venv}/bin/python (VIRTUAL_ENV) "
                             f"is CPython 3.12."), output
    assert (f"no plugin for CPython 3.12 (it has {EMBEDDED}, looked in "
            f"{tmp_path}/inst/lib/rotor:{tmp_path}/inst/bin") in output, output
    assert f'cmake -DROTOR_PYTHONS="{DEBIAN_PYTHON};{venv}/bin/python"' in output, output
    if shutil.which("strace"):
        calls = [l for l in syscalls.splitlines() if "(" in l and "---" not in l]
        assert not any("fork(" in c or "clone" in c or "bind(" in c for c in calls), syscalls


def test_rotor_plugin_dir_comes_first_and_a_broken_plugin_fails_the_boot(rotor, tmp_path):
    (tmp_path / f"rotor-python{EMBEDDED}.so").write_text("not a shared object\n")
    r = serve(rotor, "raw_app:app", env={"ROTOR_PLUGIN_DIR": str(tmp_path)}, wait=False)
    failed = wait_for(lambda: r.events("boot-failed"), what="event=boot-failed")
    assert f"cannot load the Python plugin {tmp_path}/rotor-python{EMBEDDED}.so" in \
        failed[0]["error"], r.log()
    r.stop()


def test_version_serves_http_lifespan_websocket_gc_rotation_and_hup(rotor, version_venv):
    minor, python, venv, plugins = version_venv
    r = serve(rotor, "raw_app:app", "--max-requests", "40", "--gc-threshold", "1000,20,30",
              "--gc-freeze", "--gc-collect-every", "5", workers=2,
              env={"VIRTUAL_ENV": str(venv), "ROTOR_PLUGIN_DIR": str(plugins)})
    loaded = r.events("python-plugin")
    assert loaded[0]["path"] == f"{plugins}/rotor-python3.{minor}.so", r.log()
    with httpx.Client(base_url=r.url(), timeout=10) as c:
        info = c.get("/sys").json()
        assert info["version"].startswith(f"3.{minor}.")
        assert info["executable"] == f"{venv}/bin/python"
        assert info["prefix"] == str(venv)
        assert info["base_prefix"] == str(python.parent.parent)
        body = os.urandom(300_000)
        echo = c.post("/echo", content=iter([body[:1000], body[1000:]]))
        assert echo.content == body
        assert c.get("/stream").text == "".join(f"part {i}\n" for i in range(5)) + "end\n"
        assert c.get("/scope").json()["state"]["started_by"] > 0  # lifespan's state
        assert c.get("/loop").text == "asyncio"  # no uvloop for these interpreters here
        gc = c.get("/gc").json()
        assert gc["threshold"] == [1000, 20, 30] and gc["frozen"] > 0
    assert ws_echo(r.port, ["hello", "3.%d" % minor]) == ["hello", "3.%d" % minor]

    stats = run_wrk(r.url("/"), duration=2, connections=8)
    assert stats["errors"] == 0 and stats["requests"] > 80, stats["raw"]
    wait_for(lambda: [f for f in r.events("worker-exit") if f["reason"] == "max-requests"],
             what="a rotation")
    r.wait_ready(2)

    before = set(r.ready_pids())
    r.signal(signal.SIGHUP)
    wait_for(lambda: len(set(r.ready_pids()) - before) >= 2 and not before & set(r.ready_pids()),
             what="two new workers after HUP")
    assert httpx.get(r.url("/sys")).json()["version"].startswith(f"3.{minor}.")


def test_version_timeout_dumps_the_traceback(rotor, version_venv):
    minor, _, venv, plugins = version_venv
    r = serve(rotor, "raw_app:app", "--timeout", "2",
              env={"VIRTUAL_ENV": str(venv), "ROTOR_PLUGIN_DIR": str(plugins)})
    blocked = r.ready_pids()[0]
    with pytest.raises(httpx.HTTPError):
        httpx.get(r.url("/block"), timeout=20)
    wait_for(lambda: any(int(f["pid"]) == blocked and f["reason"] == "timeout"
                         for f in r.events("worker-exit")), what="the timeout kill")
    log = r.log()
    assert "raw_app.py" in log and "in app" in log, log
    r.wait_ready(1)
    assert httpx.get(r.url("/")).text == "Hello, world!"


def test_a_python_without_a_shared_libpython_is_a_configure_error(tmp_path):
    """A stand-in interpreter whose sysconfig says its libpython is static."""
    fake = tmp_path / "python3.12"
    fake.write_text("#!/bin/sh\ncase \"$2\" in\n"
                    "  *sysconfig*) echo '3.12;/x/include/python3.12;/x/lib;libpython3.12.a;0;"
                    "cpython' ;;\n"
                    "  *) echo '3;12' ;;\nesac\n")
    fake.chmod(0o755)
    out = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(tmp_path / "build"),
                          f"-DROTOR_PYTHONS={DEBIAN_PYTHON};{fake}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    message = " ".join(out.stderr.split())
    assert (f"ROTOR_PYTHONS: {fake} (CPython 3.12) has no shared libpython "
            "(LDLIBRARY=libpython3.12.a, Py_ENABLE_SHARED=0)") in message, out.stderr


def test_a_plugin_under_another_versions_name_is_refused_at_load(rotor, plugin_dir, tmp_path):
    other = next((p for p in sorted(plugin_dir.glob("rotor-python3.*.so"))
                  if p.name != f"rotor-python{EMBEDDED}.so"), None)
    if other is None:
        pytest.skip("no other CPython's plugin was built (no pyenv CPython present)")
    shutil.copy(other, tmp_path / f"rotor-python{EMBEDDED}.so")
    r = serve(rotor, "raw_app:app", env={"ROTOR_PLUGIN_DIR": str(tmp_path)}, wait=False)
    failed = wait_for(lambda: r.events("boot-failed"), what="event=boot-failed")
    assert "is not a Python plugin of this rotor: it embeds CPython 3." in failed[0]["error"]
    assert "not the version its name says" in failed[0]["error"], r.log()
    r.stop()
