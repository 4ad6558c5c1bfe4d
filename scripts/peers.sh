#!/usr/bin/env bash
# The peers the benchmarks compare with, installed by package name:
# - stock: Debian 12's qemu-system-x86 (QEMU 7.2), what users run today;
#   installed with apt-get like any Debian package;
# - upstream: bookworm-backports' qemu-system-x86 (QEMU 10.0.x, which has
#   dynamic-memslots), fetched with apt-get download under a private apt
#   configuration and unpacked with dpkg -x into build/peers/upstream,
#   together with the bookworm libraries it needs. The system's apt state
#   does not change for it.
# The private apt configuration: scripts/apt-backports.sh.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
peers="$top/build/peers"
up="$peers/upstream"

# stock
if ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q 'ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        qemu-system-x86 >/dev/null
fi

# upstream
if [ ! -x "$up/usr/bin/qemu-system-x86_64" ]; then
    mkdir -p "$peers/debs"
    APT_CONFIG=$("$top/scripts/apt-backports.sh")
    export APT_CONFIG
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    bpo=()
    for p in qemu-system-x86 qemu-system-common qemu-system-data seabios \
             libbrlapi0.8; do
        bpo+=("$p/$codename-backports")
    done
    libs=(ipxe-qemu libaio1 libcacard0 libcapstone4 libdaxctl1 libexecs0
          libfuse3-3 libnl-3-200 libnl-route-3-200 libibverbs1 libndctl6
          libpmem1 librdmacm1 liburing2 libusb-1.0-0 libusbredirparser1
          libvdeplug2)
    (cd "$peers/debs" && apt-get download -qq "${bpo[@]}" "${libs[@]}")
    rm -rf "$up.tmp"
    for deb in "$peers"/debs/*.deb; do
        dpkg -x "$deb" "$up.tmp"
    done
    mv "$up.tmp" "$up"
fi
lib="$up/usr/lib/x86_64-linux-gnu:$up/lib/x86_64-linux-gnu"
missing=$(LD_LIBRARY_PATH="$lib" ldd "$up/usr/bin/qemu-system-x86_64" | grep 'not found' || true)
[ -z "$missing" ] || { echo "peers: upstream QEMU lacks libraries:$missing" >&2; exit 1; }
# the oracle must be Debian's own, not make deb's packages of ours
problem=$(PYTHONPATH="$top/tests/lib" python3 -c 'import stockqemu; print(stockqemu.stock_problem() or "")' 2>&1)
[ -z "$problem" ] || { echo "peers: $problem" >&2; exit 1; }
echo "peers: stock $(/usr/bin/qemu-system-x86_64 --version | head -1)"
echo "peers: upstream $(LD_LIBRARY_PATH="$lib" "$up/usr/bin/qemu-system-x86_64" --version | head -1)"
