"""rotor's benchmark scenarios (run through scripts/bench.sh).

Each scenario starts the servers it compares one after another on the same machine, loads each
with the same wrk command and prints a markdown table with ratios. Servers listen on loopback
only and every load run is bounded in time.
"""
import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROTOR = ROOT / "build" / "rotor"
ARGS = None  # the parsed command line, for the table footers


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


def wrk(url, duration, connections=32, threads=2, extra=(), script=None, script_args=()):
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency",
           *extra]
    shown = list(cmd)  # for the table footer: the script by name, no URL
    if script:
        cmd += ["-s", str(script)]
        shown += ["-s", Path(script).name]
    tail = ["--", *map(str, script_args)] if script_args else []
    shown = " ".join(shown + tail)
    cmd += [url, *tail]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    r = {"cmd": shown, "rps": 0.0, "p99_ms": float("nan"), "errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if m:
        r["p99_ms"] = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["errors"] += int(m.group(1))
    return r


class Server:
    def __init__(self, name, cmd, port, cwd=None, env=None, stop_signal=signal.SIGTERM):
        self.name, self.cmd, self.port = name, cmd, port
        self.cwd, self.env, self.stop_signal = cwd, env, stop_signal

    def __enter__(self):
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port, self.proc)
        return self

    def __exit__(self, *exc):
        try:
            os.killpg(self.proc.pid, self.stop_signal)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


# wrk sends `depth` requests in each write and counts every response.
PIPELINE_LUA = """
init = function(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
"""


class IdleConnections:
    """`n` keep-alive connections that make one request each, then stay open and silent."""

    def __init__(self, port, n):
        self.port, self.n, self.socks = port, n, []

    def __enter__(self):
        for _ in range(self.n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n")
            self.socks.append(s)
        for s in self.socks:
            data = b""
            while b"Hello, world!" not in data:
                b = s.recv(4096)
                if not b:
                    raise RuntimeError("an idle connection was closed before it was idle")
                data += b
        return self

    def still_open(self):
        n = 0
        for s in self.socks:
            s.setblocking(False)
            try:
                if s.recv(1):  # unexpected bytes, but open
                    n += 1
            except BlockingIOError:  # nothing to read: open and idle
                n += 1
            except OSError:
                pass
        return n

    def __exit__(self, *exc):
        for s in self.socks:
            s.close()


class Load:
    """One row of a table: a server under one wrk configuration."""

    def __init__(self, name, server, **wrk_args):
        self.name, self.server, self.wrk_args = name, server, wrk_args


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


def table(title, rows, base_name):
    base = next((r for r in rows if r["name"] == base_name), rows[0])
    print(f"\n### {title}\n")
    print("| server | req/s | ratio | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        ratio = r["rps"] / base["rps"] if base["rps"] else float("nan")
        print(f"| {r['name']} | {r['rps']:.0f} | {ratio:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    cmds = list(dict.fromkeys(r["cmd"] for r in rows))
    print(f"\nratio: against `{base_name}`; median of {ARGS.rounds} interleaved runs of "
          f"{' / '.join(f'`{c}`' for c in cmds)}; errors: summed over all runs")


def measure(servers, args, path="/", loads=None, idle=None):
    """Loads every server (or every Load) in turn, `args.rounds` times (A B A B ...), and keeps
    each one's median run: interleaving spreads the machine's drift over all of them alike.
    `idle` maps a server to the number of idle connections held open on it meanwhile."""
    loads = loads or [Load(s.name, s) for s in servers]
    idle = idle or {}
    holders = {}
    with contextlib.ExitStack() as stack:
        for s in servers:
            stack.enter_context(s)
            if idle.get(s):
                holders[s] = stack.enter_context(IdleConnections(s.port, idle[s]))
            wrk(f"http://127.0.0.1:{s.port}{path}", 1)  # warm-up
        runs = {l.name: [] for l in loads}
        for _ in range(args.rounds):
            for l in loads:
                r = wrk(f"http://127.0.0.1:{l.server.port}{path}", args.duration, **l.wrk_args)
                runs[l.name].append(r)
                print(f"  {l.name}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.2f} ms, "
                      f"errors {r['errors']}", file=sys.stderr)
        for s, h in holders.items():  # the idle connections must have stayed open throughout
            s.idle_left = h.still_open()
    rows = []
    for l in loads:
        ordered = sorted(runs[l.name], key=lambda r: r["rps"])
        r = dict(ordered[len(ordered) // 2])
        r["errors"] = sum(x["errors"] for x in ordered)  # every run's failures count
        r["name"] = l.name
        rows.append(r)
    return rows


def scenario_hello(args):
    """rotor's native hello worker against nginx returning a fixed 200, 2 workers each."""
    with tempfile.TemporaryDirectory() as tmp:
        servers = [rotor_server("rotor -k hello -w 2", free_port(), "-k", "hello", "-w", "2"),
                   nginx_server(free_port(), tmp)]
        rows = measure(servers, args)
    table("hello: rotor native worker vs nginx (2 workers each)", rows, "nginx")


def scenario_rotation(args):
    """Throughput with max-requests rotation as a fraction of throughput without it."""
    servers = [rotor_server("rotor hello, no rotation", free_port(), "-k", "hello", "-w", "2")]
    for limit, jitter in ((10000, 1000), (1000, 100)):
        servers.append(rotor_server(
            f"rotor hello, --max-requests {limit} --max-requests-jitter {jitter}", free_port(),
            "-k", "hello", "-w", "2", "--max-requests", str(limit),
            "--max-requests-jitter", str(jitter)))
    rows = measure(servers, args)
    table("rotation cost: rotor hello, 2 workers", rows, "rotor hello, no rotation")


def scenario_pipelining(args):
    """The hello worker against nginx, each with and without HTTP/1.1 pipelining (wrk sends
    16 requests per write), in the same run."""
    depth = 16
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "pipeline.lua"
        script.write_text(PIPELINE_LUA)
        rotor = rotor_server("rotor -k hello -w 2", free_port(), "-k", "hello", "-w", "2")
        nginx = nginx_server(free_port(), tmp)
        loads = [Load("rotor", rotor), Load("nginx", nginx),
                 Load(f"rotor, pipelined x{depth}", rotor, script=script, script_args=[depth]),
                 Load(f"nginx, pipelined x{depth}", nginx, script=script, script_args=[depth])]
        rows = measure([rotor, nginx], args, loads=loads)
    table(f"pipelining: hello worker vs nginx, without and with {depth} requests per write "
          "(2 workers each)", rows, "nginx")


def scenario_idle(args):
    """Throughput of the hello worker (and nginx) while 300 idle keep-alive connections are
    held open, against the same server without them."""
    n = 300
    with tempfile.TemporaryDirectory() as tmp:
        # Keep-alive longer than the whole scenario: the idle connections must stay open.
        ka = ("--keep-alive", "3600")
        plain = rotor_server("rotor", free_port(), "-k", "hello", "-w", "2", *ka)
        loaded = rotor_server(f"rotor, {n} idle connections", free_port(), "-k", "hello", "-w",
                              "2", *ka)
        nginx_plain = nginx_server(free_port(), tmp, keepalive_timeout=3600)
        nginx_plain.name = "nginx"
        nginx_loaded = nginx_server(free_port(), tmp, keepalive_timeout=3600)
        nginx_loaded.name = f"nginx, {n} idle connections"
        servers = [plain, loaded, nginx_plain, nginx_loaded]
        rows = measure(servers, args, idle={loaded: n, nginx_loaded: n})
    table(f"idle connections: throughput with {n} idle keep-alive connections held open "
          "(2 workers each)", rows, "rotor")
    for s in (loaded, nginx_loaded):
        print(f"{s.name}: {getattr(s, 'idle_left', 0)} of {n} idle connections still open at "
              "the end")


APPS = ROOT / "tests" / "apps"
PY = "/usr/bin/python3"  # Debian's, where gunicorn and uvicorn are installed


def asgi_servers(workers, *rotation):
    """rotor, gunicorn + UvicornWorker and uvicorn --workers serving the same raw ASGI app."""
    return [
        rotor_server("rotor", free_port(), "--chdir", str(APPS), "-w", str(workers), *rotation,
                     "raw_app:app"),
        (lambda port: Server("gunicorn -k uvicorn.workers.UvicornWorker",
                             [PY, "-m", "gunicorn", "-w", str(workers), "-k",
                              "uvicorn.workers.UvicornWorker", "--chdir", str(APPS), "-b",
                              f"127.0.0.1:{port}", *rotation, "raw_app:app"], port))(free_port()),
        (lambda port: Server("uvicorn --workers",
                             [PY, "-m", "uvicorn", "--workers", str(workers), "--app-dir",
                              str(APPS), "--port", str(port), "--no-access-log", "--log-level",
                              "warning", "raw_app:app"], port))(free_port()),
    ]


def scenario_asgi(args):
    """A hello-world ASGI app under rotor and its Python peers, 2 workers each."""
    rows = measure(asgi_servers(2), args)
    table("asgi: hello-world ASGI app, 2 workers each", rows, "gunicorn -k uvicorn.workers.UvicornWorker")


SCENARIOS = {"hello": scenario_hello, "rotation": scenario_rotation,
             "pipelining": scenario_pipelining, "idle": scenario_idle, "asgi": scenario_asgi}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    p.add_argument("--duration", type=int, default=None, help="seconds of load per run")
    p.add_argument("--rounds", type=int, default=None, help="interleaved runs per server")
    args = p.parse_args()
    args.duration = args.duration or (3 if args.quick else 8)
    args.rounds = args.rounds or (1 if args.quick else 3)
    global ARGS
    ARGS = args
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {unknown[0]}; choose from {', '.join(SCENARIOS)}")
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (scripts/install-deps.sh)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"{subprocess.run([str(ROTOR), '--version'], capture_output=True, text=True).stdout.strip()}")
    for name in args.scenarios or SCENARIOS:
        SCENARIOS[name](args)


if __name__ == "__main__":
    main()
