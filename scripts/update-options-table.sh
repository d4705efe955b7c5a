#!/usr/bin/env bash
# Rewrites the documents generated from the option table in conf/ (via the built binary): the
# option table in docs/configuration.md, the man page docs/rotor.1 and the bash completion
# deploy/bash-completion/rotor. tests/integration/test_config_cli.py and test_generated_docs.py
# fail while they are stale.
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
mkdir -p deploy/bash-completion
build/rotor --help-man >docs/rotor.1
build/rotor --help-bash-completion >deploy/bash-completion/rotor
