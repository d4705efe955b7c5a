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
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROTOR = Path(os.environ.get("ROTOR_BIN", ROOT / "build" / "rotor"))  # as in the tests
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


def wrk_command(url, duration, connections=32, threads=2, extra=(), script=None,
                script_args=(), cpu=None):
    """(argv, shown): the wrk command line, and the same without the URL for table footers.
    `cpu`: run wrk on that CPU only (taskset)."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    cmd = [*pin, "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
           "--latency", *extra]
    shown = list(cmd)  # for the table footer: the script by name, no URL
    if script:
        cmd += ["-s", str(script)]
        shown += ["-s", Path(script).name]
    tail = ["--", *map(str, script_args)] if script_args else []
    shown_tail = [a.replace(str(ROOT) + "/", "") for a in tail]
    return cmd + [url, *tail], " ".join(shown + shown_tail)


def wrk(url, duration, **wrk_args):
    cmd, shown = wrk_command(url, duration, **wrk_args)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return parse_wrk(out, shown)


def parse_wrk(out, shown):
    r = {"cmd": shown, "rps": 0.0, "p99_ms": float("nan"), "errors": 0, "requests": 0}
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
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


def own_cpu_s(pid):
    """User + system CPU seconds of `pid` itself (not its children), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
            if not args.quick:  # --quick: no warm-up, to fit the whole suite in two minutes
                # with the first load of this server (the same requests)
                warm = next((l.wrk_args for l in loads if l.server is s), {})
                wrk(f"http://127.0.0.1:{s.port}{path}", 1, **warm)
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
    """Throughput with max-requests rotation as a fraction of throughput without it, then where
    each rotation's CPU goes (from the workers' exit lines and the master's own CPU) against the
    machine's floor: a fork, and the leanest pre-fork server in C rotating at the same limit."""
    base_name = "rotor hello, no rotation"
    servers = [rotor_server(base_name, free_port(), "-k", "hello", "-w", "2")]
    for limit, jitter in ((10000, 1000), (1000, 100)):
        servers.append(rotor_server(
            f"rotor hello, --max-requests {limit} --max-requests-jitter {jitter}", free_port(),
            "-k", "hello", "-w", "2", "--max-requests", str(limit),
            "--max-requests-jitter", str(jitter)))
    with tempfile.TemporaryDirectory() as tmp:
        floor = minifork_servers(tmp, 1000, 100)
        rows = measure(servers + floor, args)
    n = len(servers)
    table("rotation cost: rotor hello, 2 workers", rows[:n], base_name)
    # At 10000 the noise in the per-request cost (a fraction of a microsecond over 10000
    # requests) is as large as a rotation's cost, so only the 1000 row is broken down.
    rotation_breakdown(servers[::2], rows, base_name)
    minifork_table(floor, rows[n:])


MINIFORK = "minifork"


def minifork_servers(tmp, limit, jitter):
    """scripts/bench/minifork.c, built here with cc: without rotation, closing its connections
    at the limit without forking (the reconnects alone), and rotating at the limit."""
    exe = Path(tmp) / "minifork"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "scripts/bench/minifork.c")],
                   check=True)
    rows = [(f"{MINIFORK}, no rotation", []),
            (f"{MINIFORK}, closing its connections at {limit} + jitter {jitter}, no fork",
             [str(limit), str(jitter), "close"]),
            (f"{MINIFORK}, rotating at {limit} + jitter {jitter}", [str(limit), str(jitter)])]
    servers = []
    for name, tail in rows:
        port = free_port()
        servers.append(Server(name, [str(exe), str(port), *tail], port))
    return servers


def minifork_table(servers, rows):
    """The same rotation in the leanest pre-fork server we could write, on the same machine in
    the same run: what any server's rotation costs here, whatever its code."""
    table("the machine's floor: rotation in a 190-line C pre-fork server "
          "(`scripts/bench/minifork.c`, 2 workers, no library)", rows, rows[0]["name"])
    rps = {r["name"]: r["rps"] for r in rows}
    close, rotate = servers[1], servers[2]
    fields = dict(kv.split("=", 1) for kv in rotate.log().split() if "=" in kv)
    if rps[close.name]:
        print(f"\nfork + exit alone (rotating against closing only, both with the same "
              f"reconnects): {rps[rotate.name] / rps[close.name]:.2f}; "
              f"{fields.get('rotations', '?')} rotations, a retired worker's life "
              f"{fields.get('child_cpu_ms', '?')} ms of CPU. rotor hands its connections to the "
              "workers that stay, so it pays no reconnects.")


def rotation_breakdown(servers, rows, base_name):
    """Per rotation: the retired worker's CPU beyond what its requests cost in a long-lived
    worker, plus the master's CPU; and the most a rotation may cost for 0.9 of the throughput."""
    def exits(server, reason):
        return [f for f in rotor_events(server.log(), "worker-exit") if f.get("reason") == reason]

    base = next(s for s in servers if s.name == base_name)
    long_lived = exits(base, "shutdown")
    served = sum(int(f["requests"]) for f in long_lived)
    if not served:
        return
    us_per_request = sum(float(f["cpu_ms"]) for f in long_lived) * 1000 / served
    rps = {r["name"]: r["rps"] for r in rows}
    # Both cores are busy (wrk shares them), so each request costs 2 / rps seconds in all.
    machine_us = os.cpu_count() * 1e6 / rps[base_name]
    print("\n### where a rotation's CPU goes\n")
    print("| server | rotations | requests per retired worker | worker CPU per life ms | "
          "overhead per worker ms | master per rotation ms | rotation ms | budget for 0.9 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in servers:
        retired = exits(s, "max-requests")
        if not retired:
            continue
        n = len(retired)
        requests = sum(int(f["requests"]) for f in retired) / n
        life_ms = sum(float(f["cpu_ms"]) for f in retired) / n
        overhead = life_ms - requests * us_per_request / 1000
        # Less the no-rotation master's CPU (start-up, sweeps), which lived as long.
        master = max(0.0, (s.own_cpu_s or 0) - (base.own_cpu_s or 0)) * 1000 / n
        budget = (1 / 0.9 - 1) * requests * machine_us / 1000
        print(f"| {s.name} | {n} | {requests:.0f} | {life_ms:.1f} | {overhead:.1f} | "
              f"{master:.2f} | {overhead + master:.1f} | {budget:.1f} |")
    floor = fork_floor()
    print(f"\noverhead per worker: its CPU (`cpu_ms` of its worker-exit line) minus its requests "
          f"at {us_per_request:.1f} us each, the cost in the long-lived workers of `{base_name}`; "
          "master: its own CPU over its life, less that of the master without rotation, divided "
          "by the rotations; budget: the CPU a rotation may take for 0.9 of the throughput"
          f", with both cores spending {machine_us:.1f} us per "
          f"request (wrk included) at the no-rotation rate. The machine's floor "
          f"(`scripts/bench/forkcost.c`): fork + exit + wait of an empty child "
          f"{floor.get('fork_exit_us', '?')} us of CPU; each page of inherited memory a child "
          f"reads {floor.get('page_read_us', '?')} us, writes {floor.get('page_write_us', '?')} us")


def fork_floor():
    """key -> value printed by scripts/bench/forkcost.c, built here with cc."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "forkcost"
        build = subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "scripts/bench/forkcost.c")],
                               capture_output=True, text=True)
        if build.returncode != 0:
            print(f"  forkcost.c did not build: {build.stderr.strip()}", file=sys.stderr)
            return {}
        out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120).stdout
    return dict(line.split("=", 1) for line in out.split())


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


def scenario_asgi(args):
    """A hello-world ASGI app under rotor and its Python peers, 2 workers each."""
    rows = measure(asgi_servers(2), args)
    table("asgi: hello-world ASGI app, 2 workers each", rows, GUNICORN)


def scenario_asgi_1core(args):
    """The hello-world ASGI app with one worker each, every server pinned to CPU 1 and wrk to
    CPU 0: the load generator never competes with the server for a core, so throughput and
    latency are the server's own (with both on the same cores, the scheduler's time slices
    dominate the tail)."""
    if (os.cpu_count() or 1) < 2:
        print("\nasgi-1core: needs 2 CPUs, skipped")
        return
    servers = asgi_servers(1)
    for s in servers:
        s.cmd = ["taskset", "-c", "1", *s.cmd]
    loads = [Load(s.name, s, threads=1, connections=16, cpu=0) for s in servers]
    rows = measure(servers, args, loads=loads)
    table("asgi-1core: hello-world ASGI app, 1 worker each on CPU 1, wrk on CPU 0", rows,
          GUNICORN)


def scenario_streaming(args):
    """A streamed response: the raw ASGI app's /tokens sends 64 server-sent events (chunked, as
    StreamingResponse does), yielding to its loop after every 4, as an app relaying a model's
    tokens as they arrive; 2 workers each."""
    rows = measure(asgi_servers(2), args, path="/tokens?n=64&burst=4")
    table("streaming: 64 server-sent events per response in bursts of 4, 2 workers each", rows,
          GUNICORN)


def tree_cpu_s(pid):
    """User + system CPU seconds of `pid` and every process below it."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += own_cpu_s(p) or 0.0
        todo.extend(children(p))
    return total


def scenario_websocket(args):
    """WebSocket echo of small binary messages (scripts/bench/wsload.py: 32 sessions, 16
    messages of 32 bytes in flight each) under rotor and its Python peers, 2 workers each."""
    workers, sessions, inflight, size = 2, 32, 16, 32
    servers = asgi_servers(workers)
    load = [PY, str(ROOT / "scripts" / "bench" / "wsload.py")]
    runs = {s.name: [] for s in servers}
    with contextlib.ExitStack() as stack:
        for s in servers:
            stack.enter_context(s)
        for _ in range(args.rounds):
            for s in servers:
                cmd = load + [str(s.port), "/ws", str(sessions), str(inflight), str(size),
                              str(args.duration)]
                cpu_before = tree_cpu_s(s.proc.pid)
                out = subprocess.run(cmd, capture_output=True, text=True,
                                     timeout=args.duration + 60)
                cpu = tree_cpu_s(s.proc.pid) - cpu_before
                fields = log_fields(out.stdout)
                rate, errors = float(fields.get("msgs_per_s", 0)), int(fields.get("errors", 1))
                total = int(fields.get("total", 0))
                us = cpu * 1e6 / total if total else float("nan")
                if out.returncode != 0:
                    print(f"  {s.name}: wsload failed: {out.stderr.strip()[-300:]}",
                          file=sys.stderr)
                    errors = max(errors, 1)
                runs[s.name].append((rate, us, errors))
                print(f"  {s.name}: {rate:.0f} msg/s, {us:.1f} us of server CPU each, "
                      f"errors {errors}", file=sys.stderr)
    base_name = GUNICORN
    rows = {}
    for name, rs in runs.items():
        mid = sorted(rs)[len(rs) // 2]
        rows[name] = (mid[0], mid[1], sum(e for _, _, e in rs))
    base = rows[base_name]
    print(f"\n### websocket: echo of {size}-byte messages, {workers} workers each\n")
    print("| server | messages/s | ratio | server CPU per message us | CPU ratio | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (rate, us, errors) in rows.items():
        ratio = rate / base[0] if base[0] else float("nan")
        print(f"| {name} | {rate:.0f} | {ratio:.2f} | {us:.1f} | {us / base[1]:.2f} | {errors} |")
    print(f"\nratio: against `{base_name}`; median of {args.rounds} interleaved runs of "
          f"`scripts/bench/wsload.py PORT /ws {sessions} {inflight} {size} {args.duration}` "
          "(one Python client process on the same cores, as wrk is: it needs about a core, so "
          "messages/s is bounded by the client and the server's CPU per message, over all its "
          "processes, is the fairer comparison); errors: sessions that failed")
    servers_footer(servers)


def rotation_flags(limit, jitter):
    return ("--max-requests", str(limit), "--max-requests-jitter", str(jitter))


def servers_footer(servers):
    print("servers: " + "; ".join(f"`{s.shown()}`" for s in servers))


def log_fields(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def rotor_events(log, event):
    return [log_fields(l) for l in log.splitlines() if f" event={event} " in l + " "]


def rotor_workers(log):
    """Pids rotor logged as workers (event=worker-ready) and the spawn_ms of each."""
    return {int(f["pid"]): float(f["spawn_ms"]) for f in rotor_events(log, "worker-ready")}


def rotor_rotations(log):
    return sum(f.get("reason") == "max-requests" for f in rotor_events(log, "worker-exit"))


def gunicorn_rotations(log, workers):
    # gunicorn logs every fork; UvicornWorker logs nothing when it reaches max_requests.
    return log.count("Booting worker with pid") - workers


# --- flow executor: examples/flow_executor under steady POST /run load ---

FLOW_APP = ROOT / "examples" / "flow_executor"
FLOW_BODY = FLOW_APP / "flows" / "chat.json"
POST_LUA = ROOT / "scripts" / "bench" / "post.lua"


def children(pid):
    """Pids whose parent is `pid` (every thread's children list; a /proc scan without it)."""
    kids = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.update(int(x) for x in f.read().split())
        return kids
    except FileNotFoundError:  # no CONFIG_PROC_CHILDREN, or pid is gone
        pass
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.add(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):  # ESRCH while it is being reaped
        pass
    return None


def wait_ready_workers(server, kind, workers, timeout=60):
    """Pids of the first `workers` workers once each has loaded the app."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        log = server.log()
        if kind == "rotor":
            pids = list(rotor_workers(log))
        else:  # uvicorn logs "Application startup complete." once lifespan startup ran
            pids = [int(p) for p in re.findall(r"\[(\d+)\] \[INFO\] Application startup complete",
                                               log)]
        if len(pids) >= workers:
            return pids[:workers]
        time.sleep(0.05)
    raise RuntimeError(f"{server.name}: {workers} workers did not get ready\n{server.log()}")


class WrkRuns:
    """wrk POSTing `body` until about `runs` responses (each thread stops after its share),
    counting responses as they arrive: `served()`."""

    def __init__(self, url, runs, body, connections=32, threads=2, limit_s=600):
        self.url, self.body, self.threads, self.limit_s = url, body, threads, limit_s
        self.share = -(-runs // threads)
        self.connections = connections

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.prefix = Path(self.tmp.name) / "progress"
        self.cmd, shown = wrk_command(self.url, self.limit_s, connections=self.connections,
                                      threads=self.threads, script=POST_LUA,
                                      script_args=[self.body])
        self.shown = f"WRK_STOP_AFTER={self.share} {shown}"
        env = dict(os.environ, WRK_STOP_AFTER=str(self.share), WRK_PROGRESS=str(self.prefix))
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True, env=env)
        return self

    def counts(self):
        out = []
        for i in range(1, self.threads + 1):
            try:
                out.append(os.path.getsize(f"{self.prefix}.{i}"))
            except FileNotFoundError:
                out.append(0)
        return out

    def served(self):
        return sum(self.counts())

    def wait(self):
        end = time.monotonic() + self.limit_s
        while self.proc.poll() is None and time.monotonic() < end:
            if all(n >= self.share for n in self.counts()):
                break
            time.sleep(0.02)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # wrk prints its figures and exits
        return parse_wrk(self.proc.communicate(timeout=60)[0], self.shown)

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.tmp.cleanup()


class RssSampler(threading.Thread):
    """Samples VmRSS of every child of `master` each `interval` seconds, with `count()` at
    that moment: [(count, {pid: KiB})]."""

    def __init__(self, master, count, interval=0.05):
        super().__init__(daemon=True)
        self.master, self.count, self.interval = master, count, interval
        self.samples, self.done = [], threading.Event()

    def run(self):
        while not self.done.is_set():
            sample = {p: k for p in children(self.master) if (k := rss_kib(p))}
            self.samples.append((self.count(), sample))
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.join()


def scenario_flow_memory(args):
    """Worker RSS of the leaking flow executor (FLOW_LEAK_KB=1024) over a fixed number of runs:
    rotor without and with rotation, and gunicorn + UvicornWorker with the same rotation."""
    leak_kb, limit, jitter, workers = 1024, 100, 10, 2
    runs = args.runs or (600 if args.quick else 2000)
    env = {"FLOW_LEAK_KB": str(leak_kb)}
    rot = rotation_flags(limit, jitter)
    rotated = f"rotor, {' '.join(rot)}"
    configs = [("rotor", rotor_app("rotor, no rotation", FLOW_APP, "app:app", workers, env=env)),
               ("rotor", rotor_app(rotated, FLOW_APP, "app:app", workers, *rot, env=env)),
               ("gunicorn", gunicorn_app(f"{GUNICORN}, {' '.join(rot)}", FLOW_APP, "app:app",
                                         workers, *rot, env=env))]
    rows, series = [], []
    for kind, server in configs:
        with server:
            first = wait_ready_workers(server, kind, workers)
            startup = max(rss_kib(p) or 0 for p in first)
            with WrkRuns(f"http://127.0.0.1:{server.port}/run", runs, FLOW_BODY) as load:
                sampler = RssSampler(server.proc.pid, load.served)
                sampler.start()
                r = load.wait()
                sampler.stop()
            print(f"  {server.name}: {r['requests']} runs, {r['rps']:.0f} req/s, "
                  f"errors {r['errors']}", file=sys.stderr)
        log = server.log()
        # Only worker processes count (rotor's master may have other children).
        known = set(rotor_workers(log)) if kind == "rotor" else None
        xs, ys, peak = [], [], {}
        for count, sample in sampler.samples:
            sample = {p: k for p, k in sample.items() if known is None or p in known}
            if not sample:
                continue
            for p, k in sample.items():
                peak[p] = max(peak.get(p, 0), k)
            xs.append(count)
            ys.append(max(sample.values()) / 1024)
        series.append((server.name, xs, ys))
        rows.append({**r, "name": server.name, "kind": kind, "startup": startup, "peak": peak,
                     "rotations": rotor_rotations(log) if kind == "rotor"
                     else gunicorn_rotations(log, workers)})

    base = rows[-1]
    print(f"\n### flow-memory: worker RSS of the flow executor leaking {leak_kb} KiB per run, "
          f"{runs} runs, {workers} workers each\n")
    print("| server | runs | req/s | ratio | failed | start-up RSS MiB | peak worker RSS MiB "
          "| rotations |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = r["rps"] / base["rps"] if base["rps"] else float("nan")
        peak = max(r["peak"].values(), default=0)
        print(f"| {r['name']} | {r['requests']} | {r['rps']:.0f} | {ratio:.2f} | {r['errors']} "
              f"| {r['startup'] / 1024:.0f} | {peak / 1024:.0f} | {r['rotations']} |")
    print(f"\nratio: against `{base['name']}`; one run each of `{rows[0]['cmd']}` with "
          f"FLOW_LEAK_KB={leak_kb} posting flows/{FLOW_BODY.name}; RSS: VmRSS of every worker "
          "(child of the master) sampled every 50 ms; start-up: the larger of the first two "
          "workers' RSS when ready; failed: non-2xx responses and socket errors")
    servers_footer([s for _, s in configs])

    # The claim: rotation bounds each worker by its start-up size plus what it may leak until
    # it is replaced. The slack covers runs served while its successor boots (the old worker
    # keeps serving meanwhile) and allocator overhead.
    r = rows[1]
    budget = r["startup"] + (limit + jitter) * leak_kb
    slack = max(32 * 1024, budget // 4)
    worst = max(r["peak"].values(), default=0)
    ok = worst <= budget + slack and r["errors"] == 0 and r["rotations"] > 0
    print(f"\ncheck: `{rotated}` kept every worker (of {len(r['peak'])}) within start-up "
          f"{r['startup'] / 1024:.0f} MiB + ({limit} + {jitter}) x {leak_kb} KiB + slack "
          f"{slack / 1024:.0f} MiB = {(budget + slack) / 1024:.0f} MiB: largest "
          f"{worst / 1024:.0f} MiB, {r['rotations']} rotations, {r['errors']} failed requests: "
          f"{'PASS' if ok else 'FAIL'}")

    plot_dir = Path(args.plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = plot_dir / "flow-memory.png"
    plot_memory(path, series, (budget + slack) / 1024, leak_kb, workers)
    print(f"plot: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def plot_memory(path, series, bound_mib, leak_kb, workers):
    import matplotlib
    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, xs, ys in series:
        ax.plot(xs, ys, label=name, linewidth=1.4)
    ax.axhline(bound_mib, color="gray", linestyle="--", linewidth=1,
               label="check bound for rotor with rotation")
    ax.set_xlabel("runs served (responses received by wrk)")
    ax.set_ylabel("largest worker RSS (MiB)")
    ax.set_title(f"flow executor leaking {leak_kb} KiB per run, {workers} workers")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def scenario_flow_throughput(args):
    """POST /run of the flow executor (flows/chat.json) under rotor and its Python peers,
    without and with rotation, 2 workers each."""
    workers, rot = 2, rotation_flags(100, 10)
    servers = [rotor_app("rotor", FLOW_APP, "app:app", workers),
               gunicorn_app(GUNICORN, FLOW_APP, "app:app", workers),
               uvicorn_app("uvicorn --workers", FLOW_APP, "app:app", workers),
               rotor_app(f"rotor, {' '.join(rot)}", FLOW_APP, "app:app", workers, *rot),
               gunicorn_app(f"{GUNICORN}, {' '.join(rot)}", FLOW_APP, "app:app", workers, *rot)]
    loads = [Load(s.name, s, script=POST_LUA, script_args=[FLOW_BODY]) for s in servers]
    rows = measure(servers, args, path="/run", loads=loads)
    table(f"flow-throughput: POST /run of the flow executor (flows/{FLOW_BODY.name}), "
          f"{workers} workers each", rows, GUNICORN)
    servers_footer(servers)


def scenario_asgi_rotation(args):
    """Rotation cost for the hello-world ASGI app: rotor and gunicorn + UvicornWorker, each
    against itself without rotation, in the same run."""
    workers, settings = 2, [None, (1000, 100), (100, 10)]
    servers = []
    for kind, make, label in (("rotor", rotor_app, "rotor"), ("gunicorn", gunicorn_app, GUNICORN)):
        for setting in settings:
            flags = rotation_flags(*setting) if setting else ()
            s = make(f"{label}, {' '.join(flags) or 'no rotation'}", APPS, "raw_app:app", workers,
                     *flags)
            s.kind, s.base = kind, f"{label}, no rotation"
            servers.append(s)
    rows = measure(servers, args)
    by_name = {r["name"]: r for r in rows}
    print(f"\n### asgi-rotation: rotation cost, hello-world ASGI app, {workers} workers each\n")
    print("| server | req/s | vs no rotation | p99 ms | failed | rotations | most served by a "
          "retired worker | spawn_ms median | spawn_ms max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in servers:
        r, base = by_name[s.name], by_name[s.base]
        ratio = r["rps"] / base["rps"] if base["rps"] else float("nan")
        log = s.log()
        if s.kind == "rotor":
            rotations = rotor_rotations(log)
            served = [int(f["requests"]) for f in rotor_events(log, "worker-exit")
                      if f.get("reason") == "max-requests"]
            replacements = {int(f["pid"]) for f in rotor_events(log, "spawn")
                            if f.get("reason") == "max-requests"}
            spawn = [ms for pid, ms in rotor_workers(log).items() if pid in replacements]
            extra = (f"{max(served) if served else '-'} | "
                     + (f"{statistics.median(spawn):.1f} | {max(spawn):.1f}" if spawn else "- | -"))
        else:
            rotations, extra = gunicorn_rotations(log, workers), "- | - | -"
        print(f"| {s.name} | {r['rps']:.0f} | {ratio:.2f} | {r['p99_ms']:.2f} | {r['errors']} "
              f"| {rotations} | {extra} |")
    print(f"\nvs no rotation: against the same server without rotation; median of {args.rounds} "
          f"interleaved runs of `{rows[0]['cmd']}`; failed: non-2xx responses and socket errors, "
          "summed over all runs; rotations: over the server's life (warm-up included), from its "
          "log (rotor: worker-exit reason=max-requests; gunicorn: forks after the first "
          f"{workers}); most served: the largest requests= of rotor's worker-exit lines (a worker "
          "keeps serving past its limit until its successor is ready); spawn_ms: rotor's "
          "worker-ready lines of replacement workers")
    servers_footer(servers)


SCENARIOS = {"hello": scenario_hello, "rotation": scenario_rotation,
             "pipelining": scenario_pipelining, "idle": scenario_idle, "asgi": scenario_asgi,
             "asgi-1core": scenario_asgi_1core,
             "flow-memory": scenario_flow_memory, "flow-throughput": scenario_flow_throughput,
             "asgi-rotation": scenario_asgi_rotation, "websocket": scenario_websocket,
             "streaming": scenario_streaming}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    p.add_argument("--duration", type=int, default=None, help="seconds of load per run")
    p.add_argument("--rounds", type=int, default=None, help="interleaved runs per server")
    p.add_argument("--runs", type=int, default=None,
                   help="flow-memory: runs per server (default 2000, 600 with --quick)")
    p.add_argument("--plot-dir", default=None,
                   help="where flow-memory writes flow-memory.png (default: docs/bench; with "
                        "--quick the temporary directory, so a smoke run leaves the committed "
                        "plot alone)")
    args = p.parse_args()
    args.duration = args.duration or (1 if args.quick else 8)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.plot_dir = args.plot_dir or (tempfile.gettempdir() if args.quick
                                      else str(ROOT / "docs" / "bench"))
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
        start = time.monotonic()
        SCENARIOS[name](args)
        print(f"  ({name}: {time.monotonic() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
