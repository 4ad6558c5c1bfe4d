#!/usr/bin/env bash
# Build the test guest in build/guest: Debian's kernel (unpacked from the
# package that linux-image-amd64 depends on, not installed) and a tiny
# initramfs with a static busybox, the virtio-mem modules and our /init.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
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

# The initramfs: rebuilt when /init changes (well under a second)
initrd="$out/initrd.img"
if [ ! -f "$initrd" ] || [ "$top/tests/guest/init" -nt "$initrd" ]; then
    tree="$out/initramfs"
    rm -rf "$tree"
    mkdir -p "$tree/bin" "$tree/lib/modules"
    cp /bin/busybox "$tree/bin/busybox"
    install -m 755 "$top/tests/guest/init" "$tree/init"
    for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev \
             virtio_pci virtio_mem; do
        find "$root/lib/modules" -name "$m.ko" -exec cp {} "$tree/lib/modules/" \;
        [ -f "$tree/lib/modules/$m.ko" ] || { echo "guest: no $m.ko in $pkg" >&2; exit 1; }
    done
    (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
fi
echo "guest: $out/vmlinuz ($pkg), $initrd"
