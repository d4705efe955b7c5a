"""Scenarios of an ASGI app under rotor, gunicorn + UvicornWorker and uvicorn: hello world,
pinned to one core, streaming, WebSocket echo, and the cost of rotation."""
import contextlib
import os
import statistics
import subprocess
import sys

from bench.load import Load, measure
from bench.procs import tree_cpu_s
from bench.report import (gunicorn_rotations, log_fields, rotor_events, rotor_rotations,
                          rotor_workers, servers_footer, table)
from bench.servers import (APPS, GUNICORN, PY, ROOT, asgi_servers, gunicorn_app, rotation_flags,
                           rotor_app)


def scenario_asgi(args):
    """A hello-world ASGI app under rotor and its Python peers, 2 workers each."""
    rows = measure(asgi_servers(2), args)
    table("asgi: hello-world ASGI app, 2 workers each", rows, GUNICORN, args.rounds)


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
          GUNICORN, args.rounds)


def scenario_streaming(args):
    """A streamed response: the raw ASGI app's /tokens sends 64 server-sent events (chunked, as
    StreamingResponse does), yielding to its loop after every 4, as an app relaying a model's
    tokens as they arrive; 2 workers each."""
    rows = measure(asgi_servers(2), args, path="/tokens?n=64&burst=4")
    table("streaming: 64 server-sent events per response in bursts of 4, 2 workers each", rows,
          GUNICORN, args.rounds)


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
