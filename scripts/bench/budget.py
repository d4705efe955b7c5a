"""flow-memory's budget run: the leaking flow executor in a memory cgroup (cgroup v1, as root),
rotor with --memory-budget auto against rotor without it and gunicorn with --max-requests: the
cgroup's peak usage, its OOM kills and the failed requests."""
import os
import sys
import time
from pathlib import Path

from bench.report import rotor_events
from bench.servers import GUNICORN, gunicorn_app, rotation_flags, rotor_app


def memory_cgroup_home():
    """This process's directory in the v1 memory hierarchy, or None."""
    ours = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            ours = path
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, fs = line.partition(" - ")
        fields, fs = fields.split(), fs.split()
        if ours and fs[0] == "cgroup" and "memory" in fs[2].split(",") and fields[3] == "/":
            return Path(fields[4] + ours)
    return None


class Cgroup:
    """A fresh memory cgroup of `limit_mib`; `wrap(cmd)` starts cmd inside it (the shell writes
    its own pid to cgroup.procs, then execs the server, so the server and its children are
    charged there)."""

    def __init__(self, home, name, limit_mib):
        self.path = home / name
        self.path.mkdir()
        (self.path / "memory.limit_in_bytes").write_text(str(limit_mib << 20))

    def wrap(self, server):
        server.cmd = ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh",
                      *server.cmd]
        return server

    def oom_kills(self):
        text = (self.path / "memory.oom_control").read_text()
        return int(dict(line.split() for line in text.splitlines()).get("oom_kill", 0))

    def peak_mib(self):
        return int((self.path / "memory.max_usage_in_bytes").read_text()) / (1 << 20)

    def remove(self):
        end = time.monotonic() + 10
        while self.path.exists() and time.monotonic() < end:
            for pid in (self.path / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()
            except OSError:
                time.sleep(0.1)


def budget_run(args, flow_app, leak_kb, workers, runs, limit_mib, load_runs, wait_ready):
    """Prints the budget table; `load_runs(server) -> wrk figures`."""
    home = memory_cgroup_home()
    if os.geteuid() != 0 or home is None:
        print("\nflow-memory budget run skipped: it needs root and a cgroup v1 memory hierarchy")
        return
    env = {"FLOW_LEAK_KB": str(leak_kb)}
    rot = rotation_flags(100, 10)
    configs = [
        ("rotor", rotor_app("rotor --memory-budget auto", flow_app, "app:app", workers,
                            "--memory-budget", "auto", env=env)),
        ("rotor", rotor_app("rotor, no budget", flow_app, "app:app", workers, env=env)),
        ("gunicorn", gunicorn_app(f"{GUNICORN}, {' '.join(rot)}", flow_app, "app:app", workers,
                                  *rot, env=env)),
    ]
    rows = []
    for i, (kind, server) in enumerate(configs):
        cg = Cgroup(home, f"rotor-bench-{os.getpid()}-{i}", limit_mib)
        try:
            with cg.wrap(server):
                wait_ready(server, kind, workers)
                r = load_runs(server)
            log = server.log()
            exits = rotor_events(log, "worker-exit") if kind == "rotor" else []
            rows.append({**r, "name": server.name, "oom": cg.oom_kills(), "peak": cg.peak_mib(),
                         "budget_exits": sum(f.get("reason") == "memory-budget" for f in exits),
                         "budget": next((f for f in rotor_events(log, "memory-budget")
                                         if f.get("source") == "auto"), None)})
            print(f"  {server.name}: {r['requests']} runs, errors {r['errors']}, "
                  f"OOM kills {rows[-1]['oom']}", file=sys.stderr)
        finally:
            cg.remove()
    print(f"\n### flow-memory, budget run: {workers} workers leaking {leak_kb} KiB per run in a "
          f"{limit_mib} MiB memory cgroup (v1), {runs} runs each\n")
    print("| server | runs | req/s | failed | OOM kills | peak cgroup MiB | budget rotations |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['requests']} | {r['rps']:.0f} | {r['errors']} | {r['oom']} "
              f"| {r['peak']:.0f} | {r['budget_exits'] if 'rotor' in r['name'] else '-'} |")
    b = rows[0]["budget"]
    if b:
        print(f"\nrotor's auto budget: {b.get('budget_mib')} MiB of the {b.get('cgroup_limit_mib')}"
              f" MiB limit ({b.get('reserved_mib')} MiB reserved for the master, template and "
              f"kernel, {b.get('successor_mib')} MiB for a successor)")
    print("OOM kills: the cgroup's memory.oom_control oom_kill; peak: memory.max_usage_in_bytes; "
          "failed: non-2xx responses and socket errors (wrk)")
    print("servers: " + "; ".join(f"`{s.shown()}`" for _, s in configs))
