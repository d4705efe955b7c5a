#!/usr/bin/env bash
# Installs what is missing, builds, and serves on 127.0.0.1:8000 with 2 workers and
# max-requests rotation. Extra arguments go to rotor.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
echo "rotor: serving on http://127.0.0.1:8000 -- try: curl -i http://127.0.0.1:8000/"
exec build/rotor -k hello -w 2 --max-requests 100 --max-requests-jitter 10 -b 127.0.0.1:8000 "$@"
