#!/usr/bin/env bash
# Builds rotor_VERSION-1_ARCH.deb from a staging directory that `cmake --install` filled
# (bin/rotor, lib/rotor/rotor-python3.X.so) and deploy/: the binary and Debian python3's plugin, the man page
# and bash completion the binary generates from its option table, the example config it prints,
# the systemd units, copyright and changelog. Depends comes from dpkg-shlibdeps.
# Usage: scripts/package-deb.sh STAGE VERSION OUTDIR (scripts/package.sh calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: package-deb.sh STAGE VERSION OUTDIR}
version=${2:?usage: package-deb.sh STAGE VERSION OUTDIR}
out=${3:?usage: package-deb.sh STAGE VERSION OUTDIR}
for tool in dpkg-deb dpkg-shlibdeps; do
  if ! command -v "$tool" >/dev/null; then
    echo "package-deb: $tool is missing (scripts/install-deps.sh installs dpkg-dev)" >&2
    exit 1
  fi
done

deb_version=$version-1
arch=$(dpkg --print-architecture)
maintainer=$(git log -1 --format='%an <%ae>' 2>/dev/null || true)
maintainer=${maintainer:-rotor maintainers <root@localhost>}
# The last commit's date, so that the same sources give the same changelog.
date=$(git log -1 --format=%cD 2>/dev/null || true)
date=${date:-$(date -R)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
doc=$root/usr/share/doc/rotor
install -d "$root/usr/bin" "$root/usr/share/man/man1" "$root/usr/share/bash-completion/completions" \
  "$doc/examples" "$root/usr/lib/systemd/system" "$root/DEBIAN"
install -m 755 "$stage/bin/rotor" "$root/usr/bin/rotor"
# Only the plugin for Debian's python3: the others link interpreters no Debian package provides
# (they go into the wheels).
debian_python=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
plugin=$stage/lib/rotor/rotor-python$debian_python.so
if [ -e "$plugin" ]; then
  install -d "$root/usr/lib/rotor"
  install -m 644 "$plugin" "$root/usr/lib/rotor/"
fi

rotor=$root/usr/bin/rotor
"$rotor" --help-man | gzip -9n >"$root/usr/share/man/man1/rotor.1.gz"
"$rotor" --help-bash-completion >"$root/usr/share/bash-completion/completions/rotor"
# Every option at its default with its help line, APP a placeholder (as examples/rotor.toml):
# printed where no config, ROTOR_ variable or VIRTUAL_ENV can reach it.
(cd "$work" && env -i PATH=/usr/bin:/bin "$rotor" --print-config backend.main:app) \
  >"$doc/examples/rotor.toml"
# The units name /usr/local/bin/rotor (an installation from source); the package's is /usr/bin.
for unit in deploy/systemd/*; do
  sed 's|/usr/local/bin/rotor|/usr/bin/rotor|g' "$unit" >"$root/usr/lib/systemd/system/$(basename "$unit")"
done
install -m 644 deploy/debian/copyright "$doc/copyright"
printf 'rotor (%s) unstable; urgency=medium\n\n  * Built by scripts/package.sh from the rotor sources%s.\n\n -- %s  %s\n' \
  "$deb_version" "$(git log -1 --format=' at commit %h' 2>/dev/null || true)" "$maintainer" "$date" |
  gzip -9n >"$doc/changelog.Debian.gz"
install -m 755 deploy/debian/postinst "$root/DEBIAN/postinst"

# dpkg-shlibdeps reads debian/control of a source tree; a minimal one stands in for it.
mkdir -p "$work/src/debian"
printf 'Source: rotor\n\nPackage: rotor\nArchitecture: any\n' >"$work/src/debian/control"
objects=("$root/usr/bin/rotor")
if [ -d "$root/usr/lib/rotor" ]; then objects+=("$root"/usr/lib/rotor/*.so); fi
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${objects[@]}" 2>"$work/shlibdeps.log" |
  sed -n 's/^shlibs:Depends=//p') || { cat "$work/shlibdeps.log" >&2; exit 1; }
depends="adduser${shlibs:+, $shlibs}"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$deb_version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
  -e "s|@INSTALLED_SIZE@|$size|" -e "s|@DEPENDS@|$depends|" deploy/debian/control.in \
  >"$root/DEBIAN/control"
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 755 {} +

deb=$out/rotor_${deb_version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
