#!/usr/bin/env bash
# Installs rotor's build and test dependencies from Debian packages (root, apt-get).
# Idempotent: does nothing but a dpkg query when everything is present.
# --build-only: what building needs and no more (a container's build stage, which brings its own
# Python and names it with ROTOR_PYTHONS).
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake pkg-config
  libuv1-dev libcli11-dev libtomlplusplus-dev libspdlog-dev doctest-dev node-llhttp
)
PACKAGES=(
  "${BUILD_PACKAGES[@]}" clang-format clang libclang-rt-14-dev
  python3-dev python3-venv python3-pytest python3-httpx wrk curl nginx-light
  python3-starlette python3-fastapi gunicorn python3-uvicorn python3-uvloop python3-httptools
  python3-matplotlib python3-websockets python3-prometheus-client prometheus python3-yaml
  dpkg-dev lintian man-db
)
if [ "${1:-}" = "--build-only" ]; then
  PACKAGES=("${BUILD_PACKAGES[@]}")
elif [ $# -gt 0 ]; then
  echo "usage: scripts/install-deps.sh [--build-only]" >&2
  exit 2
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
