#!/usr/bin/env python3
"""A stock Debian 12 host: a 64-region vhost device next to a 1 TiB device.

Debian's vhost module allows 64 memory regions per device and libvirt gives
every virtio NIC a vhost-net backend; here a vhost-user-blk device whose
backend (tests/lib/vhost_user_stub.py) offers 64 regions stands in for it
(this machine has no /dev/vhost-net). Next to it, a 1 TiB virtio-mem device
(dynamic-memslots=on where the property exists), plugged by a real Debian
guest (TCG) to 1 GiB and 16 GiB. For stock 7.2, upstream 10.0.2 and ours,
side by side: the memslots the device decided on, what is mapped (the
backend's ranges in the flat view, "info mtree -f"), and what KVM
allocates for it, per GiB of mapped memslot as measured on this kind of
host (RECIPES.md: real KVM, shadow MMU, SMM off, 2,632,732 bytes per GiB;
with the TDP MMU 527,364; SMM doubles) -- the mapping is measured, the
metadata follows from it.

Prints a Markdown table; exits non-zero only if a measurement failed.
"""

import os
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
sys.path.insert(0, os.path.join(TOP, "bench"))
# pylint: disable=wrong-import-position
from peers import peers  # noqa: E402
from vhost_user_stub import VhostUserStub  # noqa: E402
from vmemguest import GiB, MiB, TiB, GuestError, VMemGuest  # noqa: E402

DEVICE = 1 * TiB
PLUGGED = [1 * GiB, 16 * GiB]
SHADOW_PER_GIB = 2632732
TDP_PER_GIB = 527364
REGIONS = 64


def mib(n):
    return f"{n / MiB:,.1f} MiB" if n < GiB else f"{n / GiB:,.2f} GiB"


def measure(peer, workdir):
    path = os.path.join(workdir, f"{peer.name.replace(' ', '_')}.sock")
    stub = VhostUserStub(path, REGIONS)
    rows = []
    name = peer.name.replace(" ", "_")
    g = VMemGuest(workdir, DEVICE, bool(peer.dynamic), qemu=peer.binary,
                  name=name, dynamic_prop=peer.dynamic is not None,
                  early_args=["-chardev", f"socket,id=vu0,path={path}",
                              "-device", "vhost-user-blk-pci,chardev=vu0"],
                  extra_args=peer.args)
    try:
        with peer:
            g.start()
        info = g.info()
        for target in PLUGGED:
            g.resize(target)
            g.wait_size(target, timeout=180)
            mapped = sum(e - s for s, e in g.flat_backend_ranges())
            rows.append((target, info.get("memslots", 1), mapped))
    finally:
        g.stop()
        stub.close()
    return rows


def main():
    print(f"### A Debian 12 host: {REGIONS}-region vhost device, 1 TiB "
          "virtio-mem device\n")
    print("| QEMU | plugged | memslots | mapped | KVM metadata, shadow MMU "
          "| TDP MMU | mapped vs upstream |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = {}
    with tempfile.TemporaryDirectory(prefix="vmem-bench-host-") as workdir:
        for peer in peers():
            if peer.dynamic is False:
                continue        # "off" is the stock row again
            try:
                results[peer.name] = measure(peer, workdir)
            except GuestError as e:
                print(f"debian_host: {peer.name}: {e}", file=sys.stderr)
                return 1
    up = dict((t, m) for t, _, m in results["upstream 10.0 on"])
    for name, rows in results.items():
        for target, memslots, mapped in rows:
            gib = mapped / GiB
            print(f"| {name} | {mib(target)} | {memslots} | {mib(mapped)} | "
                  f"{mib(gib * SHADOW_PER_GIB)} | {mib(gib * TDP_PER_GIB)} | "
                  f"{mapped / up[target]:.4f}× (1/{up[target] / mapped:.0f}) |")
    print("\nmemslots: what the device decided on (upstream and stock: one; "
          "stock has no dynamic memslots). mapped: the backend's ranges in "
          "the flat view once the guest plugged. KVM metadata: mapped GiB × "
          "the per-GiB cost measured on real KVM here (SMM off; SMM on "
          "doubles it).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
