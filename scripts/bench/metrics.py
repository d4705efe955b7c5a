"""The cost of /metrics: hello and ASGI throughput with no metrics listener, with
--metrics-bind, and with a scrape every 100 ms under the load, side by side. Workers count
every request into the scoreboard in all three; ROTOR_BENCH_BASELINE=PATH adds a row for
another rotor binary (one built without the counting) to measure that part too."""
import contextlib
import os
import sys
import threading
import urllib.request

from bench.load import wrk
from bench.report import table
from bench.servers import APPS, ROTOR, Server, free_port

SCRAPE_INTERVAL_S = 0.1


class Scraper:
    """GETs /metrics every 100 ms while the load runs; counts the scrapes."""

    def __init__(self, port):
        self.url, self.count, self.failed = f"http://127.0.0.1:{port}/metrics", 0, 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(SCRAPE_INTERVAL_S):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    resp.read()
                self.count += 1
            except OSError:
                self.failed += 1

    def __enter__(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def rows_for(kind, args):
    """(name, server, metrics port or None, scrape) for one worker kind."""
    app = ["-k", "hello"] if kind == "hello" else ["--chdir", str(APPS), "raw_app:app"]
    binaries = [("rotor", str(ROTOR))]
    if os.environ.get("ROTOR_BENCH_BASELINE"):
        binaries.insert(0, ("baseline binary", os.environ["ROTOR_BENCH_BASELINE"]))
    out = []
    for label, binary in binaries:
        port = free_port()
        out.append((f"{kind}: {label}, no metrics listener",
                    Server(f"{kind} {label}", [binary, "-b", f"127.0.0.1:{port}", "-w", "2",
                                               *app], port), None, False))
    port, mport = free_port(), free_port()
    server = Server(f"{kind} metrics", [str(ROTOR), "-b", f"127.0.0.1:{port}", "-w", "2",
                                        "--metrics-bind", f"127.0.0.1:{mport}", *app], port)
    out.append((f"{kind}: --metrics-bind, not scraped", server, mport, False))
    out.append((f"{kind}: --metrics-bind, scraped every 100 ms", server, mport, True))
    return out


def measure_rows(rows, args):
    """Each row's median run of `args.rounds`, interleaved (A B C A B C ...)."""
    runs = {name: [] for name, *_ in rows}
    scrapes = {}
    with contextlib.ExitStack() as stack:
        for server in dict.fromkeys(s for _, s, _, _ in rows):
            stack.enter_context(server)
            if not args.quick:
                wrk(f"http://127.0.0.1:{server.port}/", 1)
        for _ in range(args.rounds):
            for name, server, mport, scrape in rows:
                with Scraper(mport) if scrape else contextlib.nullcontext() as s:
                    r = wrk(f"http://127.0.0.1:{server.port}/", args.duration)
                if s:
                    scrapes[name] = (scrapes.get(name, (0, 0))[0] + s.count,
                                     scrapes.get(name, (0, 0))[1] + s.failed)
                runs[name].append(r)
                print(f"  {name}: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.2f} ms", file=sys.stderr)
    out = []
    for name, *_ in rows:
        ordered = sorted(runs[name], key=lambda r: r["rps"])
        r = dict(ordered[len(ordered) // 2])
        r["errors"] = sum(x["errors"] for x in ordered)
        r["name"] = name
        out.append(r)
    return out, scrapes


def scenario_metrics(args):
    for kind in ("hello", "asgi"):
        rows = rows_for(kind, args)
        results, scrapes = measure_rows(rows, args)
        table(f"metrics cost: {kind}, 2 workers", results, rows[0][0], args.rounds)
        for name, (count, failed) in scrapes.items():
            print(f"{name}: {count} scrapes, {failed} failed")
