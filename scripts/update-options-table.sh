#!/usr/bin/env bash
# Rewrites the option table in docs/configuration.md from the option table in conf/ (via the
# built binary); tests/integration/test_config_cli.py fails while it is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
/usr/bin/python3 - <<'PY'
import re, subprocess
table = subprocess.run(["build/rotor", "--help-options-markdown"], capture_output=True, text=True,
                       check=True).stdout.strip()
path = "docs/configuration.md"
text = open(path).read()
text, n = re.subn(r"<!-- options:begin -->.*?<!-- options:end -->",
                  lambda m: "<!-- options:begin -->\n" + table + "\n<!-- options:end -->", text,
                  flags=re.S)
if n != 1:
    raise SystemExit(f"{path}: expected one pair of options markers, found {n}")
open(path, "w").write(text)
PY
