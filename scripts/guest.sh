#!/usr/bin/env bash
# Build the test guests in build/guest: Debian's kernels (unpacked from the
# packages, not installed) and a tiny initramfs with a static busybox, the
# virtio-mem modules and our /init.
#
# build/guest/{vmlinuz,initrd.img}: Debian 12's kernel (the package that
# linux-image-amd64 depends on), the guest of the demo and most tests.
# build/guest/kernels/<name>/{vmlinuz,initrd.img,version}: the kernel
# matrix of tests/test-guest-kernels.py: "5.10" (Debian 11's
# linux-image-amd64, from the bullseye suite under a private apt
# configuration, scripts/apt-suite.sh), "6.1" (Debian 12's) and "6.12"
# (Debian 12's linux-image-6.12-amd64).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need modinfo kmod cpio cpio gzip gzip xz xz-utils find findutils \
     apt-cache apt dpkg dpkg
need_file /bin/busybox busybox-static
out="$top/build/guest"
dl="$top/build/download"
mkdir -p "$out" "$dl"

# The kernel package a meta package depends on, unpacked once under
# build/guest; prints its root
unpack_kernel() { # meta-package [apt.conf]
    local meta=$1 conf=${2:-} pkg root
    pkg=$(APT_CONFIG=$conf apt-cache depends "$meta" |
          sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
    [ -n "$pkg" ] || { echo "guest: no kernel package for $meta" >&2; exit 1; }
    root="$out/$pkg"
    if [ ! -d "$root/boot" ]; then
        (cd "$dl" && ls "$pkg"_*.deb >/dev/null 2>&1 ||
         APT_CONFIG=$conf apt-get download -qq -o APT::Sandbox::User=root "$pkg")
        rm -rf "$root.tmp"
        dpkg -x "$dl/$pkg"_*.deb "$root.tmp"
        mv "$root.tmp" "$root"
    fi
    echo "$root"
}

root=$(unpack_kernel linux-image-amd64)
pkg=$(basename "$root")
cp -f "$root"/boot/vmlinuz-* "$out/vmlinuz"

# Modules in load order: each after the modules it depends on
load_order=()
add_module() { # name
    local m=$1 ko dep deps
    for dep in "${load_order[@]}"; do [ "$dep" = "$m" ] && return; done
    # built into this kernel (virtio_pci in 6.12): nothing to load
    if grep -q -E "/(${m}|${m//_/-})\.ko\$" "$root"/lib/modules/*/modules.builtin \
            2>/dev/null; then
        return
    fi
    ko=$(find "$root/lib/modules" \( -name "$m.ko" -o -name "${m//_/-}.ko" \
              -o -name "$m.ko.xz" -o -name "${m//_/-}.ko.xz" \) | head -1)
    [ -n "$ko" ] || { echo "guest: no $m.ko in $(basename "$root")" >&2; exit 1; }
    # not in the for list: there a failing modinfo would go unnoticed
    deps=$(modinfo -F depends "$ko")
    for dep in ${deps//,/ }; do
        add_module "$dep"
    done
    load_order+=("$m")
    # busybox's insmod wants them uncompressed
    case $ko in
    *.xz) xz -dc "$ko" > "$tree/lib/modules/$(basename "${ko%.xz}")" ;;
    *) cp "$ko" "$tree/lib/modules/" ;;
    esac
}

# An initramfs with a static busybox, /init and modules (with their
# dependencies, listed in load order in /lib/modules/load); rebuilt when its
# /init changes (well under a second)
build_initrd() { # output init modules...
    local initrd=$1 init=$2 m
    shift 2
    [ ! -f "$initrd" ] || [ "$init" -nt "$initrd" ] || [ "$0" -nt "$initrd" ] ||
        return 0
    tree="$out/initramfs"
    rm -rf "$tree"
    mkdir -p "$tree/bin" "$tree/lib/modules"
    cp /bin/busybox "$tree/bin/busybox"
    install -m 755 "$init" "$tree/init"
    load_order=()
    for m in "$@"; do add_module "$m"; done
    for m in "${load_order[@]}"; do
        basename "$(ls "$tree/lib/modules/$m.ko" "$tree/lib/modules/${m//_/-}.ko" 2>/dev/null)"
    done > "$tree/lib/modules/load"
    (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
}

# The test guest: the virtio-mem driver
build_initrd "$out/initrd.img" "$top/tests/guest/init" virtio_pci virtio_mem
# The KVM host for bench/kvm_metadata.py: a TCG guest that runs KVM (AMD
# SVM with NPT, which TCG offers) and gets binaries over 9p
build_initrd "$out/kvmhost.img" "$top/bench/nested/init" virtio_pci \
    9pnet_virtio 9p kvm_amd
echo "guest: $out/vmlinuz ($pkg), $out/initrd.img, $out/kvmhost.img"

# The kernel matrix
matrix_guest() { # name meta-package [apt.conf]
    local dir="$out/kernels/$1"
    root=$(unpack_kernel "$2" "${3:-}")
    mkdir -p "$dir"
    cp -f "$root"/boot/vmlinuz-* "$dir/vmlinuz"
    basename "$root" > "$dir/version"
    build_initrd "$dir/initrd.img" "$top/tests/guest/init" virtio_pci virtio_mem
    echo "guest: $dir: $(cat "$dir/version")"
}
matrix_guest 5.10 linux-image-amd64 "$("$top/scripts/apt-suite.sh" bullseye)"
matrix_guest 6.1 linux-image-amd64
matrix_guest 6.12 linux-image-6.12-amd64
