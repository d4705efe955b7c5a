#!/usr/bin/env bash
# Configures and builds rotor into build/ (the binary is build/rotor, the Python plugins beside it).
# ROTOR_PYTHONS="/usr/bin/python3;/path/to/python3.12" builds a plugin for each (default: Debian's).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  ${ROTOR_PYTHONS:+-DROTOR_PYTHONS="$ROTOR_PYTHONS"} >/dev/null
cmake --build "$BUILD_DIR" -j"${JOBS:-2}"
