#!/usr/bin/env bash
# Install the build dependencies of Debian's qemu package, the Debian way
# (apt-get build-dep of the unpacked source, architecture-dependent part
# only: the packages an amd64 build of qemu-system-x86 needs), unless
# dpkg-checkbuilddeps finds them all installed already.
#
# Usage: build-deps.sh [SOURCE_DIR]   (default build/base-src)
#
# Both our QEMU build (scripts/build.sh, configured like the package) and
# make deb use them. The pkg.qemu.x86-only profile of packaging/ drops
# binary packages, not build dependencies, so the set is the same with or
# without it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need apt-get apt dpkg-checkbuilddeps dpkg-dev
src=$(cd "${1:-$top/build/base-src}" && pwd)

if (cd "$src" && dpkg-checkbuilddeps -B >/dev/null 2>&1); then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "build-deps: $(cd "$src" && dpkg-checkbuilddeps -B 2>&1)" \
         "(run as root to install them)" >&2
    exit 1
fi
echo "build-deps: installing the build dependencies of $(
    dpkg-parsechangelog -l "$src/debian/changelog" -S Source) (apt-get build-dep)"
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$top/build"
apt-get -o DPkg::Lock::Timeout=600 build-dep -y -q --arch-only \
    --no-install-recommends "$src" >"$top/build/build-deps.log" 2>&1 ||
    { tail -20 "$top/build/build-deps.log" >&2; exit 1; }
(cd "$src" && dpkg-checkbuilddeps -B)
