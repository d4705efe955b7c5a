#!/usr/bin/env bash
# Rewrites the README's option table from the option table in conf/ (via the built binary).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
/usr/bin/python3 - <<'PY'
import re, subprocess
table = subprocess.run(["build/rotor", "--help-options-markdown"], capture_output=True, text=True,
                       check=True).stdout.strip()
text = open("README.md").read()
text = re.sub(r"<!-- options:begin -->.*?<!-- options:end -->",
              lambda m: "<!-- options:begin -->\n" + table + "\n<!-- options:end -->", text, flags=re.S)
open("README.md", "w").write(text)
PY
