#!/usr/bin/env bash
# Install every Debian package the project needs (idempotent).
#
# Tools to fetch and build QEMU (Debian's build dependencies of qemu,
# which scripts/build.sh's configuration needs, come from
# scripts/build-deps.sh: make deps runs both), firmware to boot guests and run qtests, and every tool
# that a script in scripts/, tests/ or bench/ calls and that a minimal
# Debian 12 (debootstrap --variant=minbase: the essential and required
# packages, apt) lacks. Scripts check for the tools they call with
# scripts/need.sh (tests/lib/need.py), which names the package.
set -euo pipefail

PKGS=(
    # fetching the base
    dpkg-dev xz-utils git ca-certificates
    # building QEMU
    build-essential pkg-config python3 python3-venv meson ninja-build
    libglib2.0-dev libpixman-1-dev libslirp-dev libfdt-dev zlib1g-dev
    flex bison ccache
    # scripts/checkpatch.pl of the base tree (make check-series)
    perl
    # firmware for qtests and guests
    seabios ipxe-qemu qemu-system-data
    # the real guest of the end-to-end tests (its kernel: scripts/guest.sh;
    # modinfo finds the modules' dependencies for the initramfs)
    busybox-static cpio kmod
    # pgrep (tests/test-libvirt.py), free (bench/run.sh)
    procps
    # leak and memory-error checks; the sanitizer and fuzzing build, and
    # llvm-symbolizer (package llvm): LeakSanitizer's suppressions match
    # function names, which unsymbolized reports do not have
    valgrind clang libclang-rt-dev llvm
    # benchmark plots
    gnuplot-nox
    # Debian's own QEMU 7.2 binary: tests/test-diff-stock.py compares ours
    # (dynamic-memslots off) with it
    qemu-system-x86
    # make check-fresh: a pristine Debian 12 chroot
    debootstrap
    # make deb: dch (Debian's build dependencies of qemu come from
    # scripts/build-deps.sh, apt-get build-dep)
    devscripts libdistro-info-perl
    # scripts/debian-configure-opts.sh runs debian/rules (make, and
    # dh_listpackages from debhelper); tests/test-deb.py reads ELF files
    # (readelf, binutils). Build dependencies of qemu too, but needed
    # before scripts/build-deps.sh installs those
    make debhelper binutils
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
apt=(apt-get -o DPkg::Lock::Timeout=600)
"${apt[@]}" update -qq || true
"${apt[@]}" install -y -q --no-install-recommends "${missing[@]}"
