#!/usr/bin/env bash
# Installs rotor's build and test dependencies from Debian packages (root, apt-get).
# Idempotent: does nothing but a dpkg query when everything is present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang-format clang libclang-rt-14-dev
  libuv1-dev libcli11-dev libtomlplusplus-dev libspdlog-dev doctest-dev node-llhttp
  python3-dev python3-venv python3-pytest python3-httpx wrk curl nginx-light
  python3-starlette python3-fastapi gunicorn python3-uvicorn python3-uvloop python3-httptools
  python3-matplotlib python3-websockets python3-prometheus-client prometheus
  dpkg-dev lintian man-db
)

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
