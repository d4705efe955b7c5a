"""What a scenario prints: markdown tables and footers, and the figures read from servers' logs."""
import re


def table(title, rows, base_name, rounds):
    """One markdown table of `rows` (from measure), with ratios against `base_name`'s row."""
    base = next((r for r in rows if r["name"] == base_name), rows[0])
    print(f"\n### {title}\n")
    print("| server | req/s | ratio | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        ratio = r["rps"] / base["rps"] if base["rps"] else float("nan")
        print(f"| {r['name']} | {r['rps']:.0f} | {ratio:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    cmds = list(dict.fromkeys(r["cmd"] for r in rows))
    print(f"\nratio: against `{base_name}`; median of {rounds} interleaved runs of "
          f"{' / '.join(f'`{c}`' for c in cmds)}; errors: summed over all runs")


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
