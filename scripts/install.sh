#!/usr/bin/env bash
# Install the patched QEMU under PREFIX (optionally staged in DESTDIR).
# Usage: install.sh PREFIX [DESTDIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
destdir=${2:-}
bd="$top/build/qemu-build"
# The prefix is compiled in (data and module paths), so it is set at
# configure time; meson only reconfigures what depends on it.
meson configure "$bd" -Dprefix="$prefix" >/dev/null
ninja -C "$bd" qemu-system-x86_64 >/dev/null
meson install -C "$bd" --no-rebuild --quiet --tags runtime \
    ${destdir:+--destdir "$destdir"}
echo "install: $destdir$prefix/bin/qemu-system-x86_64"
