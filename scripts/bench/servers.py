"""The servers a scenario compares, each started in its own session on a free loopback port."""
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import own_cpu_s

ROOT = Path(__file__).resolve().parents[2]
ROTOR = Path(os.environ.get("ROTOR_BIN", ROOT / "build" / "rotor"))  # as in the tests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


class Server:
    """A server process in its own session; its stdout and stderr go to a temporary file
    (`log()`, kept after it stops) so scenarios can read what it logged."""

    def __init__(self, name, cmd, port, cwd=None, env=None, stop_signal=signal.SIGTERM):
        self.name, self.cmd, self.port = name, cmd, port
        self.cwd, self.env, self.stop_signal = cwd, env, stop_signal
        self.log_path, self.log_text = None, ""

    def __enter__(self):
        env = dict(os.environ)
        env.update(self.env or {})
        fd, self.log_path = tempfile.mkstemp(prefix="rotor-bench-", suffix=".log")
        # O_APPEND: the server writes at the end while log() reads from the start.
        with os.fdopen(fd, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_port(self.port, self.proc)
        except RuntimeError as exc:
            self.__exit__()
            raise RuntimeError(f"{self.name}: {exc}\n{self.log_text[-2000:]}") from None
        return self

    def log(self):
        if self.log_path:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        return self.log_text

    def __exit__(self, *exc):
        self.own_cpu_s = own_cpu_s(self.proc.pid)
        try:
            os.killpg(self.proc.pid, self.stop_signal)
            # Not the full graceful timeout: the figures are taken, and gunicorn 20.1 waits out
            # all 30 s when the signal lands while a worker is booting.
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            sig = signal.Signals(self.stop_signal).name
            print(f"  {self.name}: still running 10 s after {sig}, killed", file=sys.stderr)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log_text = self.log()
        os.unlink(self.log_path)
        self.log_path = None

    def shown(self):
        """The command line for table footers: paths relative to the repository, no port."""
        port = str(self.port)
        args = ["PORT" if a == port else a.replace(f":{port}", ":PORT") for a in self.cmd]
        return " ".join(shlex.quote(a.replace(str(ROOT) + "/", "")) for a in args)


def rotor_server(name, port, *args):
    return Server(name, [str(ROTOR), "-b", f"127.0.0.1:{port}", *args], port)


def nginx_server(port, tmp, keepalive_timeout=75):
    conf = Path(tmp) / f"nginx-{port}.conf"
    conf.write_text(f"""
worker_processes 2;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp};
  proxy_temp_path {tmp};
  fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp};
  scgi_temp_path {tmp};
  keepalive_requests 1000000;
  keepalive_timeout {keepalive_timeout}s;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type text/plain; return 200 "Hello, world!"; }}
  }}
}}
""")
    return Server("nginx", ["nginx", "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"], port,
                  stop_signal=signal.SIGQUIT)


APPS = ROOT / "tests" / "apps"
PY = "/usr/bin/python3"  # Debian's, where gunicorn and uvicorn are installed
GUNICORN = "gunicorn -k uvicorn.workers.UvicornWorker"


def rotor_app(name, app_dir, app, workers, *flags, env=None):
    port = free_port()
    return Server(name, [str(ROTOR), "-b", f"127.0.0.1:{port}", "--chdir", str(app_dir), "-w",
                         str(workers), *flags, app], port, env=env)


def gunicorn_app(name, app_dir, app, workers, *flags, env=None):
    port = free_port()
    return Server(name, [PY, "-m", "gunicorn", "-w", str(workers), "-k",
                         "uvicorn.workers.UvicornWorker", "--chdir", str(app_dir), "-b",
                         f"127.0.0.1:{port}", *flags, app], port, env=env)


def uvicorn_app(name, app_dir, app, workers, env=None):
    port = free_port()
    return Server(name, [PY, "-m", "uvicorn", "--workers", str(workers), "--app-dir",
                         str(app_dir), "--port", str(port), "--no-access-log", "--log-level",
                         "warning", app], port, env=env)


def asgi_servers(workers, *rotation):
    """rotor, gunicorn + UvicornWorker and uvicorn --workers serving the same raw ASGI app."""
    return [rotor_app("rotor", APPS, "raw_app:app", workers, *rotation),
            gunicorn_app(GUNICORN, APPS, "raw_app:app", workers, *rotation),
            uvicorn_app("uvicorn --workers", APPS, "raw_app:app", workers)]


def rotation_flags(limit, jitter):
    return ("--max-requests", str(limit), "--max-requests-jitter", str(jitter))
