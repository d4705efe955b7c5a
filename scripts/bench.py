"""rotor's benchmark scenarios (run through scripts/bench.sh).

Each scenario starts the servers it compares one after another on the same machine, loads each
with the same wrk command and prints a markdown table with ratios. Servers listen on loopback
only and every load run is bounded in time.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from bench.asgi import (scenario_asgi, scenario_asgi_1core, scenario_asgi_rotation,
                        scenario_streaming, scenario_websocket)
from bench.flow import scenario_flow_memory, scenario_flow_throughput
from bench.leak import scenario_leak_report
from bench.metrics import scenario_metrics
from bench.native import scenario_hello, scenario_idle, scenario_pipelining, scenario_rotation
from bench.pythons import scenario_pythons
from bench.servers import ROOT, ROTOR


SCENARIOS = {"hello": scenario_hello, "rotation": scenario_rotation,
             "pipelining": scenario_pipelining, "idle": scenario_idle, "asgi": scenario_asgi,
             "asgi-1core": scenario_asgi_1core,
             "flow-memory": scenario_flow_memory, "flow-throughput": scenario_flow_throughput,
             "asgi-rotation": scenario_asgi_rotation, "websocket": scenario_websocket,
             "streaming": scenario_streaming, "metrics": scenario_metrics,
             "leak-report": scenario_leak_report, "pythons": scenario_pythons}


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
