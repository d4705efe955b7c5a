#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (doctest units and pytest integration
# tests against the real binary) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# The other CPythons' plugins, for the version suite (test_python_versions.py): built here, once,
# so that pytest's time is the tests'.
scripts/build-pythons.sh >/dev/null
cd "${BUILD_DIR:-build}"
ctest --output-on-failure "$@"
