#!/usr/bin/env bash
# Build the test guest in build/guest: Debian's kernel (unpacked from the
# package that linux-image-amd64 depends on, not installed) and a tiny
# initramfs with a static busybox, the virtio-mem modules and our /init.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need modinfo kmod cpio cpio gzip gzip find findutils apt-cache apt dpkg dpkg
need_file /bin/busybox busybox-static
out="$top/build/guest"
dl="$top/build/download"
mkdir -p "$out" "$dl"

pkg=$(apt-cache depends linux-image-amd64 |
      sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
[ -n "$pkg" ] || { echo "guest: no kernel package for linux-image-amd64" >&2; exit 1; }
root="$out/$pkg"
if [ ! -d "$root/boot" ]; then
    (cd "$dl" && ls "$pkg"_*.deb >/dev/null 2>&1 || apt-get download -qq -o APT::Sandbox::User=root "$pkg")
    rm -rf "$root.tmp"
    dpkg -x "$dl/$pkg"_*.deb "$root.tmp"
    mv "$root.tmp" "$root"
fi
cp -f "$root"/boot/vmlinuz-* "$out/vmlinuz"

# Modules in load order: each after the modules it depends on
load_order=()
add_module() { # name
    local m=$1 ko dep deps
    for dep in "${load_order[@]}"; do [ "$dep" = "$m" ] && return; done
    ko=$(find "$root/lib/modules" -name "$m.ko" -o -name "${m//_/-}.ko" | head -1)
    [ -n "$ko" ] || { echo "guest: no $m.ko in $pkg" >&2; exit 1; }
    # not in the for list: there a failing modinfo would go unnoticed
    deps=$(modinfo -F depends "$ko")
    for dep in ${deps//,/ }; do
        add_module "$dep"
    done
    load_order+=("$m")
    cp "$ko" "$tree/lib/modules/"
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
