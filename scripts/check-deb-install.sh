#!/usr/bin/env bash
# make deb's packages installed on a pristine Debian 12: the chroot of
# make check-fresh (scripts/check-fresh.sh, a copy of its kept debootstrap
# base), a clone of the committed HEAD with build/deb, the test guest and
# QEMU's python/ package (tests/lib uses qemu.machine) copied in, and
# tests/deb/install-test.sh run in it as root: Debian's QEMU installed by
# name, ours over it with apt, a real guest on the installed binary,
# libvirt 11.3 on its default emulator, and back to Debian's.
# Needs root (debootstrap, chroot); about 10 minutes, most of it apt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ls "$top"/build/deb/*.deb >/dev/null 2>&1 ||
    { echo "check-deb-install: no build/deb/*.deb: run make deb first" >&2; exit 1; }
"$top/scripts/deb-inputs.sh" --check
for f in "$top/build/guest/vmlinuz" "$top/build/guest/initrd.img" \
         "$top/build/qemu/python/qemu"; do
    [ -e "$f" ] || { echo "check-deb-install: $f is missing (make qemu, scripts/guest.sh)" >&2; exit 1; }
done
exec "$top/scripts/check-fresh.sh" --copy build/deb --copy build/guest/vmlinuz \
    --copy build/guest/initrd.img --copy build/qemu/python \
    --run tests/deb/install-test.sh
