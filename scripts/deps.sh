#!/usr/bin/env bash
# Install every Debian package the project needs (idempotent).
#
# Build dependencies of QEMU's x86_64-softmmu target as configured by
# scripts/build.sh, firmware to boot guests and run qtests, and the tools
# the tests use (a real guest kernel, busybox, cpio).
set -euo pipefail

PKGS=(
    # fetching the base
    dpkg-dev xz-utils git ca-certificates
    # building QEMU
    build-essential pkg-config python3 python3-venv meson ninja-build
    libglib2.0-dev libpixman-1-dev libslirp-dev libfdt-dev zlib1g-dev
    flex bison ccache
    # firmware for qtests and guests
    seabios ipxe-qemu qemu-system-data
    # the real guest of the end-to-end tests (its kernel: scripts/guest.sh)
    busybox-static cpio
    # leak and memory-error checks; the sanitizer and fuzzing build
    valgrind clang libclang-rt-dev
    # benchmark plots
    gnuplot-nox
    # Debian's own QEMU 7.2 binary: tests/test-diff-stock.py compares ours
    # (dynamic-memslots off) with it
    qemu-system-x86
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages: ${missing[*]} (run as root to install)" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -q --no-install-recommends "${missing[@]}"
