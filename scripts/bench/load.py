"""Load with wrk: the command line, its figures, idle connections held meanwhile, and the
interleaved runs a table is made of."""
import contextlib
import re
import socket
import subprocess
import sys
from pathlib import Path

from bench.servers import ROOT


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
