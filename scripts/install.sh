#!/usr/bin/env bash
# Install the patched qemu-system-x86_64 under PREFIX (staged in DESTDIR
# if given): PREFIX/bin/qemu-system-x86_64 and its data files (firmware,
# option ROMs, keymaps, trace events) in PREFIX/share/qemu.
#
# QEMU finds its data relative to the binary's location, so any prefix
# works without reconfiguring (which would rebuild everything).
# Usage: install.sh PREFIX [DESTDIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
dest="${2:-}$prefix"
bd="$top/build/qemu-build"
install -D -m 755 "$bd/qemu-system-x86_64" "$dest/bin/qemu-system-x86_64"
mkdir -p "$dest/share/qemu"
# the build's bundle links to Debian's firmware files: install copies
# (links to files that are only made by a full build are skipped)
for f in "$bd"/qemu-bundle/usr/local/share/qemu/*; do
    if [ -e "$f" ]; then cp -rL "$f" "$dest/share/qemu/"; fi
done
echo "install: $dest/bin/qemu-system-x86_64"
