"""Setting up the asgi worker: loading the app, the interpreter and virtualenv, the event loop,
--env, the GC knobs, the access log, and the gunicorn and uvicorn command lines."""
import signal

import httpx
import pytest

from conftest import APPS, serve, wait_for


@pytest.mark.parametrize("app,needle", [
    ("no_such_module:app", "No module named 'no_such_module'"),
    ("raw_app:missing", "has no attribute 'missing'"),
    ("broken_import:app", "ImportError: this module is broken on purpose"),
])
def test_app_load_errors_exit_4(rotor, app, needle):
    r = serve(rotor, app, wait=False)
    assert r.wait_exit() == 4, r.log()
    assert needle in r.log()
    assert len(r.events("spawn")) <= 1, "no fork loop"


def test_bad_python_path_exits_2(rotor):
    r = serve(rotor, "raw_app:app", "--python", "/nonexistent/python", wait=False)
    assert r.wait_exit() == 2
    assert "rotor: error: --python: expected an executable Python interpreter" in r.log()


def test_python_executable_and_virtualenv(rotor, tmp_path):
    import subprocess
    # Default: the interpreter rotor was built against, whatever python3 is first on PATH.
    r = serve(rotor, "raw_app:app")
    info = httpx.get(r.url("/sys")).json()
    assert info["executable"] == "/usr/bin/python3"
    assert info["path0"][0] == str(APPS)  # the working directory (--chdir) comes first
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip",
                    "--system-site-packages", str(venv)], check=True)
    for how in ("--python", "VIRTUAL_ENV"):
        if how == "--python":
            rv = serve(rotor, "raw_app:app", "--python", str(venv / "bin" / "python"))
        else:
            rv = serve(rotor, "raw_app:app", env={"VIRTUAL_ENV": str(venv)})
        info = httpx.get(rv.url("/sys")).json()
        assert info["executable"] == str(venv / "bin" / "python"), (how, info)
        assert info["prefix"] == str(venv), (how, info)


@pytest.mark.parametrize("loop,expected", [("asyncio", "asyncio"), ("uvloop", "uvloop"),
                                           ("auto", "uvloop")])
def test_event_loop_choice(rotor, loop, expected):
    r = serve(rotor, "raw_app:app", "--loop", loop)
    assert httpx.get(r.url("/loop")).text == expected


def test_loop_auto_falls_back_when_uvloop_is_missing(rotor, tmp_path):
    # A module named uvloop that cannot be imported hides Debian's uvloop.
    (tmp_path / "uvloop.py").write_text("raise ImportError('no uvloop here')\n")
    r = serve(rotor, "raw_app:app", "--pythonpath", str(tmp_path))
    assert httpx.get(r.url("/loop")).text == "asyncio"
    r2 = serve(rotor, "raw_app:app", "--pythonpath", str(tmp_path), "--loop", "uvloop", wait=False)
    assert r2.wait_exit() == 3
    assert "no uvloop here" in r2.log()


def test_env_flags_reach_the_import_and_the_workers_and_a_hup_updates_them(rotor, tmp_path):
    conf = tmp_path / "rotor.toml"
    conf.write_text('env = ["FROM_FILE=toml"]\n')
    r = serve(rotor, "raw_app:app", "-c", str(conf), "-e", "GREETING=hello, world", "--env",
              "EMPTY=", "-e", "TWICE=first", "-e", "TWICE=second")
    names = "GREETING&EMPTY&TWICE&FROM_FILE"
    seen = httpx.get(r.url("/env?" + names)).json()
    assert seen == {"GREETING": ["hello, world"] * 2, "EMPTY": [""] * 2,
                    "TWICE": ["second"] * 2, "FROM_FILE": [None, None]}  # the CLI list wins
    # A HUP reads the config again: the file's list now that the command line has none.
    r2 = serve(rotor, "raw_app:app", "-c", str(conf))
    assert httpx.get(r2.url("/env?FROM_FILE")).json() == {"FROM_FILE": ["toml"] * 2}
    conf.write_text('env = ["FROM_FILE=reloaded"]\n')
    old = set(r2.ready_pids())
    r2.signal(signal.SIGHUP)
    wait_for(lambda: r2.ready_pids() and not set(r2.ready_pids()) & old,
             what=f"workers of the reloaded config\n{r2.log()}")
    assert httpx.get(r2.url("/env?FROM_FILE")).json() == {"FROM_FILE": ["reloaded"] * 2}
    # Cold workers too; and a variable dropped from the list is gone from the next generation.
    conf.write_text('env = ["DROPPED=1"]\n')
    r3 = serve(rotor, "raw_app:app", "-c", str(conf), "--no-preload")
    assert httpx.get(r3.url("/env?DROPPED&ADDED")).json() == {"DROPPED": ["1"] * 2,
                                                             "ADDED": [None] * 2}
    conf.write_text('env = ["ADDED=2"]\n')
    old = set(r3.ready_pids())
    r3.signal(signal.SIGHUP)
    wait_for(lambda: r3.ready_pids() and not set(r3.ready_pids()) & old,
             what=f"workers of the reloaded config\n{r3.log()}")
    assert httpx.get(r3.url("/env?DROPPED&ADDED")).json() == {"DROPPED": [None] * 2,
                                                             "ADDED": ["2"] * 2}


def test_gc_knobs(rotor):
    r = serve(rotor, "raw_app:app", "--gc-threshold", "1000,20,30", "--gc-freeze",
              "--gc-collect-every", "5")
    with httpx.Client(base_url=r.url()) as c:
        first = c.get("/gc").json()
        assert first["threshold"] == [1000, 20, 30]
        assert first["frozen"] > 0
        for _ in range(10):
            c.get("/")
        later = c.get("/gc").json()
    # 11 responses since the first /gc: at least two full collections ran.
    assert later["full_collections"] >= first["full_collections"] + 2, (first, later)


def test_access_log_for_asgi_requests(rotor, tmp_path):
    access = tmp_path / "access.log"
    r = serve(rotor, "raw_app:app", "--access-logfile", str(access), "--access-logformat",
              '%(h)s "%(r)s" %(s)s %(b)s %(p)s %(D)s')
    worker = r.ready_pids()[0]
    httpx.get(r.url("/scope?x=1"))
    httpx.get(r.url("/raise-before"))
    lines = wait_for(lambda: len(access.read_text().splitlines()) >= 1 and
                     access.read_text().splitlines(), what="an access log line")
    first = lines[0].split()
    assert first[0] == "127.0.0.1" and first[1:4] == ['"GET', "/scope?x=1", 'HTTP/1.1"']
    assert first[4] == "200" and int(first[5]) > 0 and first[6] == f"<{worker}>"
    assert int(first[7]) >= 0


def test_gunicorn_command_line_works(rotor):
    r = rotor("--chdir", str(APPS), "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
              "--max-requests", "100", "--max-requests-jitter", "10", "--threads", "4",
              "starlette_app:app", workers=2)
    assert httpx.get(r.url("/")).text == "Hello, world!"
    assert "--threads is a gunicorn option rotor ignores" in r.log()


def test_uvicorn_command_line_works(rotor, tmp_path):
    # uvicorn main:app --host ... --port ... --workers 2 ..., with rotor in place of uvicorn.
    r = rotor("--host", "127.0.0.1", "--port", "0", "--workers", "2", "--app-dir", str(APPS),
              "--timeout-keep-alive", "5", "--limit-max-requests", "1000", "--log-level", "trace",
              "--access-log", "--http", "httptools", "starlette_app:app", bind=False, workers=2)
    assert httpx.get(r.url("/")).text == "Hello, world!"
    sock = tmp_path / "r.sock"  # --uds wins over --port, as in uvicorn
    u = rotor("--uds", str(sock), "--port", "1", "--app-dir", str(APPS), "starlette_app:app",
              bind=False, wait=False)
    u.wait_ready(1)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as c:
        assert c.get("http://unix/").text == "Hello, world!"
    wait_for(lambda: '"GET / HTTP/1.1" 200' in r.log(), what=f"access log lines\n{r.log()}")
    assert "--http is a uvicorn option rotor ignores" in r.log()
    spawns = r.events("spawn")
    assert spawns and all(1000 <= int(f["limit"]) for f in spawns)
