#!/usr/bin/env bash
# Benchmarks rotor against its peers on this machine, side by side in one run.
#   scripts/bench.sh                 every scenario
#   scripts/bench.sh hello rotation  chosen scenarios
#   scripts/bench.sh --quick ...     short runs, for smoke tests
# Prints markdown tables; figures are only comparable within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null
exec /usr/bin/python3 scripts/bench.py "$@"
