"""Scenarios of examples/flow_executor under steady POST /run load: worker memory with and
without rotation, and throughput."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.budget import budget_run
from bench.load import Load, measure, parse_wrk, wrk_command
from bench.procs import children, rss_kib
from bench.report import gunicorn_rotations, rotor_rotations, rotor_workers, servers_footer, table
from bench.servers import GUNICORN, ROOT, gunicorn_app, rotation_flags, rotor_app, uvicorn_app

FLOW_APP = ROOT / "examples" / "flow_executor"
FLOW_BODY = FLOW_APP / "flows" / "chat.json"
POST_LUA = ROOT / "scripts" / "bench" / "post.lua"
# The budget run's cgroup: the master, the template and two fresh workers take about 60 MiB, so
# without rotation the leak fills it within a few hundred runs.
BUDGET_CGROUP_MIB = 300


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

    def load_runs(server):
        with WrkRuns(f"http://127.0.0.1:{server.port}/run", runs, FLOW_BODY) as load:
            return load.wait()

    budget_run(args, FLOW_APP, leak_kb, workers, runs, BUDGET_CGROUP_MIB, load_runs,
               wait_ready_workers)


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
          f"{workers} workers each", rows, GUNICORN, args.rounds)
    servers_footer(servers)
