#!/usr/bin/env bash
# Configure (once) and build qemu-system-x86_64 and its modules from the
# work tree in build/qemu-build, out of tree so that re-applying the series
# keeps it.
#
# Usage: build.sh [extra ninja targets...]
#
# The configuration (QEMU_CONFIG):
# - debian (the default): the binary we test is the binary make deb ships.
#   Debian's configure options for its amd64 package, as the tree's
#   debian/rules expands them (scripts/debian-configure-opts.sh: seccomp,
#   NUMA, spice, usb-redir, io_uring, modules...), with Debian's build
#   dependencies (scripts/build-deps.sh), for the x86_64-softmmu target
#   alone (the package also has i386-softmmu), and a version string of ours;
# - minimal: QEMU's defaults (the sanitizer and fuzzing build).
# QEMU_BUILD_DIR, QEMU_CC/QEMU_CXX (default cc/c++) and QEMU_CONFIGURE_EXTRA
# select another build of the same work tree (check-asan.sh uses them).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
case ${QEMU_CC:-cc} in clang*) ccpkg=clang ;; *) ccpkg=build-essential ;; esac
need "${QEMU_CC:-cc}" "$ccpkg" ninja ninja-build meson meson \
     pkg-config pkg-config flex flex bison bison python3 python3
wt="${QEMU_SOURCE_DIR:-$top/build/qemu}"
bd="${QEMU_BUILD_DIR:-$top/build/qemu-build}"
read -r -a cfg_extra <<<"${QEMU_CONFIGURE_EXTRA:-}"
# QEMU's configure hands meson an explicit compiler, so meson would not
# add ccache by itself: name it as part of the compiler.
qcc=${QEMU_CC:-cc} qcxx=${QEMU_CXX:-c++}
if command -v ccache >/dev/null; then
    qcc="ccache $qcc" qcxx="ccache $qcxx"
fi
cfg_extra=(--cc="$qcc" --cxx="$qcxx" "${cfg_extra[@]}")
. "$top/scripts/base.conf"
config=${QEMU_CONFIG:-debian}
case $config in
debian)
    "$top/scripts/build-deps.sh" "$wt"
    # not a process substitution: set -e must see it fail
    opts=$("$top/scripts/debian-configure-opts.sh" "$wt")
    case $'\n'$opts$'\n' in
    *$'\n'--enable-modules$'\n'*) ;;
    *)
        echo "build: debian/rules gave no Debian configuration" \
             "(no --enable-modules in: ${opts//$'\n'/ })" >&2
        exit 1
        ;;
    esac
    cfg_base=()
    while IFS= read -r opt; do
        case $opt in
        # ours says what it is; user mode is not built here
        --with-pkgversion=*|--enable-linux-user) ;;
        *) cfg_base+=("$opt") ;;
        esac
    done <<<"$opts"
    . "$top/scripts/deb.conf"
    read -r -a pins <<<"$DEB_CONFIGURE_OPTIONS"
    cfg_base+=("${pins[@]}"
               "--with-pkgversion=Debian $BASE_VERSION with virtio-mem dynamic memslots")
    ;;
minimal)
    cfg_base=(--disable-docs --disable-install-blobs)
    ;;
*)
    echo "build: QEMU_CONFIG=$config: debian or minimal" >&2
    exit 2
    ;;
esac
cfg_id="$config x86_64-softmmu ${cfg_base[*]} ${cfg_extra[*]}"

# ccache's own per-user cache, shared by every clone of this user (CI's
# clean clones among them; make check-fresh's chroot has its own)
# (build/ccache where there is no home); its size is the user's setting
cache_home=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}
export CCACHE_DIR="${CCACHE_DIR:-${cache_home:-$top/build}/ccache}"
# Compile-time macros such as __DATE__ are not used by QEMU's objects;
# paths relative to build/ let other trees laid out alike share objects
export CCACHE_SLOPPINESS=time_macros,include_file_mtime,include_file_ctime
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$top/build}"
# and the build folder's own path (debug info) is left out of the hash
export CCACHE_NOHASHDIR=1

mkdir -p "$bd"
if [ ! -f "$bd/build.ninja" ] || [ "$(cat "$bd/.configured" 2>/dev/null)" != "$cfg_id" ]; then
    (cd "$bd" && "$wt/configure" --target-list=x86_64-softmmu \
        --meson=/usr/bin/meson "${cfg_base[@]}" \
        "${cfg_extra[@]}" >configure.log 2>&1) ||
        { tail -30 "$bd/configure.log" >&2; exit 1; }
    echo "$cfg_id" > "$bd/.configured"
fi

# Firmware for qtests and guests, linked where an uninstalled QEMU looks
# for its data files (the data directory in the build's qemu-bundle):
# Debian's seabios and ipxe-qemu, and the option ROMs (linuxboot_dma.bin
# for -kernel, kvmvapic.bin) that Debian builds from the same 7.2 source
# into qemu-system-data.
datadir=$(sed -n 's/^#define CONFIG_QEMU_DATADIR "\(.*\)"$/\1/p' "$bd/config-host.h")
fw="$bd/qemu-bundle$datadir"
mkdir -p "$fw"
for f in /usr/share/qemu/*.bin /usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom; do
    [ -e "$f" ] && ln -sf "$f" "$fw/"
done

# With modules (Debian's configuration), TCG, the qtest accelerator and
# some devices live in modules, which the binary does not depend on
targets=$(ninja -C "$bd" -t targets all)
mapfile -t modules < <(sed -n 's/^\([a-z0-9_-]*\.so\): .*/\1/p' <<<"$targets" |
    sort -u)
jobs=$(nproc)
ninja -C "$bd" -j"$jobs" qemu-system-x86_64 ${modules[@]+"${modules[@]}"} "$@"
