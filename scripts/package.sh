#!/usr/bin/env bash
# Packs a built rotor: the Debian package (scripts/package-deb.sh) and one wheel per CPython
# version that has a plugin (scripts/wheel.py), from what `cmake --install` puts in a staging
# directory. Run scripts/build.sh first: `scripts/build.sh && scripts/package.sh [--out DIR]`.
# The packages are written to DIR (default dist/); BUILD_DIR (default build) is the build to pack.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=dist
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=${2:?package: --out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    *) echo "package: unknown argument '$1' (usage: scripts/package.sh [--out DIR])" >&2; exit 2 ;;
  esac
done
if [ ! -x "$BUILD_DIR/rotor" ]; then
  echo "package: $BUILD_DIR/rotor is not built; run scripts/build.sh first" >&2
  exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
cmake --install "$BUILD_DIR" --prefix "$stage" >/dev/null
# Debian's dh_strip, by hand: lintian refuses unstripped objects, and a wheel need not carry
# debug information either.
strip --remove-section=.comment --remove-section=.note "$stage/bin/rotor"
plugins=()
for plugin in "$stage"/lib/rotor/rotor-python3.*.so; do
  [ -e "$plugin" ] || continue
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$plugin"
  chmod 644 "$plugin"
  plugins+=("$plugin")
done

version=$("$stage/bin/rotor" --version | grep -o '[0-9][0-9.]*' | head -n1)
scripts/package-deb.sh "$stage" "$version" "$OUT"

if [ ${#plugins[@]} -gt 0 ]; then
  for plugin in "${plugins[@]}"; do
    python=$(basename "$plugin" .so)
    /usr/bin/python3 scripts/wheel.py --binary "$stage/bin/rotor" --version "$version" \
      --python "${python#rotor-python}" --plugin "$plugin" --out "$OUT"
  done
else
  # No plugins: the binary embeds the libpython it links, and serves that version alone.
  python=$(readelf -d "$stage/bin/rotor" | sed -n 's/.*Shared library: \[libpython\(3\.[0-9]*\)\..*/\1/p')
  if [ -z "$python" ]; then
    echo "package: $BUILD_DIR/rotor links no libpython and no plugin was installed" >&2
    exit 1
  fi
  /usr/bin/python3 scripts/wheel.py --binary "$stage/bin/rotor" --version "$version" \
    --python "$python" --out "$OUT"
fi
