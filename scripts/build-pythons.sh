#!/usr/bin/env bash
# Builds the Python plugins (rotor-python3.X.so) of the other CPythons this machine has, for the
# version suite (tests/integration/test_python_versions.py): one CMake build dir, plugin targets
# only. The interpreters are the pyenv root's 3.9-3.13 builds, where present (or PYTHONS=...).
# Prints the build dir, which holds the plugins (use it as ROTOR_PLUGIN_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${PYTHONS_BUILD_DIR:-build-pythons}
if [ -z "${PYTHONS:-}" ]; then
  root=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
  PYTHONS=""
  for minor in 9 10 11 12 13; do
    exe=$(ls -d "$root"/versions/3."$minor".*/bin/python3."$minor" 2>/dev/null | sort -V | tail -1)
    [ -n "$exe" ] && PYTHONS="$PYTHONS${PYTHONS:+;}$exe"
  done
fi
[ -n "$PYTHONS" ] || { echo "build-pythons: no other CPython found" >&2; exit 0; }
cmake -S . -B "$OUT" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" -DROTOR_PYTHONS="$PYTHONS" \
  >/dev/null
cmake --build "$OUT" --target python-plugins -j"${JOBS:-2}" >&2
echo "$OUT"
