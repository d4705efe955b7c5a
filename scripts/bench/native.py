"""Scenarios of rotor's native hello worker: against nginx, with rotation (and the machine's
floor for it), with pipelining, and with idle connections held open."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.load import PIPELINE_LUA, Load, measure
from bench.report import rotor_events, table
from bench.servers import ROOT, Server, free_port, nginx_server, rotor_server


def scenario_hello(args):
    """rotor's native hello worker against nginx returning a fixed 200, 2 workers each."""
    with tempfile.TemporaryDirectory() as tmp:
        servers = [rotor_server("rotor -k hello -w 2", free_port(), "-k", "hello", "-w", "2"),
                   nginx_server(free_port(), tmp)]
        rows = measure(servers, args)
    table("hello: rotor native worker vs nginx (2 workers each)", rows, "nginx", args.rounds)


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
    table("rotation cost: rotor hello, 2 workers", rows[:n], base_name, args.rounds)
    # At 10000 the noise in the per-request cost (a fraction of a microsecond over 10000
    # requests) is as large as a rotation's cost, so only the 1000 row is broken down.
    rotation_breakdown(servers[::2], rows, base_name)
    minifork_table(floor, rows[n:], args.rounds)


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


def minifork_table(servers, rows, rounds):
    """The same rotation in the leanest pre-fork server we could write, on the same machine in
    the same run: what any server's rotation costs here, whatever its code."""
    table("the machine's floor: rotation in a 190-line C pre-fork server "
          "(`scripts/bench/minifork.c`, 2 workers, no library)", rows, rows[0]["name"],
          rounds)
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
          "(2 workers each)", rows, "nginx", args.rounds)


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
          "(2 workers each)", rows, "rotor", args.rounds)
    for s in (loaded, nginx_loaded):
        print(f"{s.name}: {getattr(s, 'idle_left', 0)} of {n} idle connections still open at "
              "the end")
