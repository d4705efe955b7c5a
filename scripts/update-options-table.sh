#!/usr/bin/env bash
# Rewrites the documents generated from the option table in conf/ (via the built binary): the
# option table in docs/configuration.md, the man page docs/rotor.1, the bash completion
# deploy/bash-completion/rotor and the example config examples/rotor.toml (every option at its
# default, APP a placeholder). tests/integration/test_config_cli.py, test_generated_docs.py and test_packages.py
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
# Printed where no config file, ROTOR_ variable or VIRTUAL_ENV can reach it (as package-deb.sh does).
empty=$(mktemp -d)
rotor=$PWD/build/rotor
(cd "$empty" && env -i PATH=/usr/bin:/bin "$rotor" --print-config backend.main:app) >examples/rotor.toml
rmdir "$empty"
