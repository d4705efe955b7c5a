#!/usr/bin/env bash
# Packs a built rotor: the Debian package (scripts/package-deb.sh) and one wheel per CPython
# version that has a plugin (scripts/wheel.py), from what `cmake --install` puts in a staging
# directory. Run scripts/build.sh first: `scripts/build.sh && scripts/package.sh [--out DIR]`.
# The packages are written to DIR (default dist/); BUILD_DIR (default build) is the build to pack,
# or --stage STAGE packs a copy of a directory laid out as `cmake --install` lays it out. The
# plugins of other CPythons that scripts/build-pythons.sh built (PYTHONS_BUILD_DIR, default
# build-pythons) get their wheels too.
set -euo pipefail
OUT=
STAGE=
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=${2:?package: --out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --stage) STAGE=${2:?package: --stage needs a directory}; shift 2 ;;
    *) echo "package: unknown argument '$1' (usage: scripts/package.sh [--out DIR] [--stage DIR])" >&2
       exit 2 ;;
  esac
done
# --out and --stage are relative to where the script was called from, BUILD_DIR (as for
# build.sh) and the default dist/ to the source tree.
if [ -n "$OUT" ]; then OUT=$(realpath -m "$OUT"); fi
if [ -n "$STAGE" ]; then STAGE=$(realpath -m "$STAGE"); fi
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-$PWD/dist}
if [ -z "$STAGE" ] && [ ! -x "$BUILD_DIR/rotor" ]; then
  echo "package: $BUILD_DIR/rotor is not built; run scripts/build.sh first" >&2
  exit 1
fi
if [ -n "$STAGE" ] && [ ! -x "$STAGE/bin/rotor" ]; then
  echo "package: $STAGE/bin/rotor does not exist" >&2
  exit 1
fi
mkdir -p "$OUT"
# File dates from the last commit: the same sources and build give the same packages.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
if [ -n "$STAGE" ]; then
  cp -a "$STAGE" "$stage"
else
  cmake --install "$BUILD_DIR" --prefix "$stage" >/dev/null
fi
# Debian's dh_strip, by hand: lintian refuses unstripped objects, and a wheel need not carry
# debug information either.
strip --remove-section=.comment --remove-section=.note "$stage/bin/rotor"
# Other CPythons' plugins (scripts/build-pythons.sh), for their wheels; the build's own win.
if [ -z "$STAGE" ]; then
  mkdir -p "$stage/lib/rotor"
  for plugin in "${PYTHONS_BUILD_DIR:-build-pythons}"/rotor-python3.*.so; do
    [ -e "$plugin" ] || continue
    [ -e "$stage/lib/rotor/$(basename "$plugin")" ] || cp "$plugin" "$stage/lib/rotor/"
  done
fi
plugins=()
for plugin in "$stage"/lib/rotor/rotor-python3.*.so; do
  [ -e "$plugin" ] || continue
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$plugin"
  chmod 644 "$plugin"
  plugins+=("$plugin")
done

version=$("$stage/bin/rotor" --version | grep -o '[0-9][0-9.]*' | head -n1)
scripts/package-deb.sh "$stage" "$version" "$OUT"

if [ ${#plugins[@]} -eq 0 ]; then
  echo "package: no Python plugin (rotor-python3.X.so) was built; see ROTOR_PYTHONS" >&2
  exit 1
fi
for plugin in "${plugins[@]}"; do
  python=$(basename "$plugin" .so)
  /usr/bin/python3 scripts/wheel.py --binary "$stage/bin/rotor" --version "$version" \
    --python "${python#rotor-python}" --plugin "$plugin" --out "$OUT"
done
