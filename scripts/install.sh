#!/usr/bin/env bash
# Install the patched qemu-system-x86_64 under PREFIX (staged in DESTDIR
# if given): PREFIX/bin/qemu-system-x86_64, its data files (firmware,
# option ROMs, keymaps, trace events) in PREFIX/share/qemu and its modules
# (TCG, devices, UIs: Debian's configuration builds them as modules) in
# PREFIX/lib/<multiarch>/qemu, where the build's own prefix has them.
#
# QEMU finds its data and modules relative to the binary's location, so
# any prefix works without reconfiguring (which would rebuild everything).
# For a system-wide install that replaces Debian's QEMU, use make deb's
# packages instead (docs/packaging.md).
# Usage: install.sh PREFIX [DESTDIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
dest="${2:-}$prefix"
bd="$top/build/qemu-build"
config() { # the build's value of a CONFIG_ string
    sed -n "s/^#define $1 \"\\(.*\\)\"\$/\\1/p" "$bd/config-host.h"
}
build_prefix=$(config CONFIG_PREFIX)
install -D -m 755 "$bd/qemu-system-x86_64" "$dest/bin/qemu-system-x86_64"
for dir in "$(config CONFIG_QEMU_DATADIR)" "$(config CONFIG_QEMU_MODDIR)"; do
    to="$dest${dir#"$build_prefix"}"
    mkdir -p "$to"
    # the build's bundle links to Debian's firmware files and to the
    # modules: install copies (links to files that only a full build makes
    # are skipped)
    for f in "$bd/qemu-bundle$dir"/*; do
        if [ -e "$f" ]; then cp -rL "$f" "$to/"; fi
    done
done
echo "install: $dest/bin/qemu-system-x86_64"
