#!/usr/bin/env bash
# Installs what is missing, builds, and serves the flow-executor example (examples/flow_executor)
# on 127.0.0.1:8000 with 2 workers and max-requests rotation. Extra arguments go to rotor.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cat <<MSG
rotor: serving examples/flow_executor on http://127.0.0.1:8000 -- try:
  curl -s -H 'Content-Type: application/json' --data @examples/flow_executor/flows/chat.json http://127.0.0.1:8000/run
MSG
exec build/rotor -w 2 --max-requests 100 --max-requests-jitter 10 -b 127.0.0.1:8000 \
  --chdir examples/flow_executor app:app "$@"
