#!/usr/bin/env bash
# The two libvirts tests/test-libvirt.py drives our QEMU with:
# - libvirt 11.3 from bookworm-backports (knows dynamicMemslots), installed
#   with apt-get under the private configuration of apt-backports.sh, where
#   only libvirt* packages are pinned to backports: nothing else changes
#   suite, and the system's apt sources stay as they are;
# - Debian 12's own libvirt 9.0 (does not know it), downloaded and unpacked
#   with dpkg -x into build/libvirt-9.0/root, since one system cannot have
#   both installed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
want=11.3
if ! dpkg-query -W -f='${Version}' libvirt-daemon-driver-qemu 2>/dev/null |
        grep -q "^$want"; then
    APT_CONFIG=$(APT_BACKPORTS_PIN="libvirt*" "$top/scripts/apt-backports.sh")
    export APT_CONFIG
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients >/dev/null
fi

old="$top/build/libvirt-9.0"
if [ ! -x "$old/root/usr/sbin/libvirtd" ]; then
    v=$(apt-cache madison libvirt0 | awk '$3 ~ /^9\.0\./ {print $3; exit}')
    [ -n "$v" ] || { echo "libvirt: no libvirt 9.0 in the apt sources" >&2; exit 1; }
    rm -rf "$old" && mkdir -p "$old/debs"
    (cd "$old/debs" && apt-get download -qq -o APT::Sandbox::User=root \
        "libvirt0=$v" "libvirt-clients=$v" "libvirt-daemon=$v" \
        "libvirt-daemon-driver-qemu=$v" libyajl2 libpcap0.8 libpciaccess0)
    for deb in "$old"/debs/*.deb; do
        dpkg -x "$deb" "$old/root.tmp"
    done
    mv "$old/root.tmp" "$old/root"
fi
echo "libvirt: $(virsh --version) installed, $(LD_LIBRARY_PATH="$old/root/usr/lib/x86_64-linux-gnu" \
    "$old/root/usr/bin/virsh" --version) in $old/root"
