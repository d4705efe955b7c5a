"""gunicorn's configuration files and GUNICORN_CMD_ARGS, read by the real binary."""
import signal
import subprocess

import httpx

from conftest import BIN, DEADLINE, ROOT, wait_for

APPS = ROOT / "tests" / "apps"

# The shape of the gunicorn_conf.py that FastAPI container images ship: settings computed from
# the environment, a printout of them, and a server hook.
IMAGE_CONF = """
import json
import multiprocessing
import os

cores = multiprocessing.cpu_count()
workers = int(os.environ.get("APP_WORKERS", max(cores, 2)))
bind = os.environ.get("BIND", "0.0.0.0:80")
loglevel = os.environ.get("LOG_LEVEL", "info")
accesslog = "-"
errorlog = "-"
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "120"))
timeout = 120
keepalive = 5
max_requests = 1000
max_requests_jitter = 50

def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s)", worker.pid)

print(json.dumps({"workers": workers, "bind": bind}))
"""


def test_a_gunicorn_conf_py_deployment_starts_unchanged(rotor, tmp_path):
    (tmp_path / "gunicorn_conf.py").write_text(IMAGE_CONF)
    # As a FastAPI image starts it: worker class and config file from gunicorn's command line.
    r = rotor("-k", "uvicorn.workers.UvicornWorker", "-c", "gunicorn_conf.py", "--chdir",
              str(APPS), "starlette_app:app", bind=False, cwd=tmp_path, workers=2,
              env={"APP_WORKERS": "2", "BIND": "127.0.0.1:0"})
    assert r.port  # the file's bind
    assert httpx.get(r.url("/"), timeout=10).text == "Hello, world!"
    log = r.log()
    assert '{"workers": 2, "bind": "127.0.0.1:0"}' in log  # what the file printed
    assert "gunicorn_conf.py: post_fork is a gunicorn server hook" in log
    start = r.events("start")[0]
    assert start["max_requests"] == "1000" and start["jitter"] == "50"
    wait_for(lambda: '"GET / HTTP/1.1" 200' in r.log(), what="the access log on stdout")


def test_gunicorn_conf_py_in_the_working_directory_is_read(rotor, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = 2\n")
    r = rotor("-k", "hello", cwd=tmp_path, workers=2)
    assert len(r.ready_pids()) == 2
    assert "read ./gunicorn.conf.py" in r.log()


def test_gunicorn_cmd_args_are_read(rotor):
    r = rotor("-k", "hello", env={"GUNICORN_CMD_ARGS": "--workers=2 --max-requests 40"},
              workers=2)
    assert r.events("start")[0]["max_requests"] == "40"


def test_a_hup_reads_a_relative_config_file_again_after_chdir(rotor, tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("workers = 1\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = rotor("-k", "hello", "-c", "gunicorn.conf.py", "--chdir", str(elsewhere), cwd=tmp_path)
    conf.write_text("workers = 2\nmax_requests = 30\n")
    r.signal(signal.SIGHUP)
    wait_for(lambda: r.events("config-applied"), what=f"the reloaded config\n{r.log()}")
    assert r.events("config-applied")[0]["workers"] == "2"
    wait_for(lambda: len(r.ready_pids()) == 2, what=f"two workers\n{r.log()}")
    assert not r.events("reload-failed")


def test_a_broken_gunicorn_conf_py_is_one_error_line_and_its_traceback(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("workers = 2\nbind = BIND_FROM_NOWHERE\n")
    p = subprocess.run([str(BIN), "-k", "hello"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=DEADLINE)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert lines[-1] == ("rotor: error: gunicorn.conf.py: line 2: NameError: name "
                         "'BIND_FROM_NOWHERE' is not defined"), p.stderr
    assert "Traceback" in p.stderr and 'File "gunicorn.conf.py", line 2' in p.stderr
