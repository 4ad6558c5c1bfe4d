#!/usr/bin/env python3
"""make demo: a real Linux guest resizes a 1 TiB virtio-mem device.

Boots Debian's kernel under TCG with the patched QEMU and
"-device virtio-mem-pci,...,dynamic-memslots=on" on a 1 TiB sparse
backend, asks the guest (over QMP, qom-set requested-size) to plug and
unplug memory, and prints after every step what QEMU maps and what KVM
would spend on memslot metadata for it, next to the same device with
dynamic-memslots=off (one 1 TiB memslot, whatever is plugged), and what
equal memslots (upstream QEMU's layout, equal-memslots=on) would map for
the same plugged memory (tests/lib/layout.py's model). Both modes,
one after the other: unplugged-inaccessible=on (memslots holding plugged
blocks are mapped), then "auto", which resolves to "off" for anonymous
memory as in QEMU 7.2 (legacy mode for guests before Linux 5.16: memslots
overlapping the usable region are mapped, too).

Where host KVM works (tests/lib/hostkvm.py's probe), every step is also
measured: the guest's state migrates into a paused KVM QEMU with
dynamic-memslots=on and into one with "off", each in a memory cgroup of
its own, and the "measured" columns give the kernel memory KVM allocated
for the device there. Without host KVM they say why they are empty.

At the end, where host KVM works: the smallest memory limit (libvirt's
hard_limit, systemd's MemoryMax=) under which a paused VM with a 64 GiB,
1 TiB and 16 TiB device starts, for stock 7.2, upstream 10.0.2 and ours
with dynamic memslots off and on (bench/memory_limits.py's bisection).
"""

import os
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tests", "lib"))
# pylint: disable=wrong-import-position
import hostkvm  # noqa: E402
import layout  # noqa: E402
from vmemguest import (GiB, KiB, MiB, TiB, GuestError,  # noqa: E402
                       VMemGuest, covered_memslots, size_str)

DEVICE_SIZE = 1 * TiB
BLOCK_SIZE = 2 * MiB
STEPS = [1 * GiB, 4 * GiB + 512 * MiB, 16 * GiB, 2 * GiB, 0]
# The memslot limit the memory-device core hands a device that owns all
# device memory, without KVM or vhost limits below 509: its budget
LIMIT = 256
USABLE_EXTENT = 256 * MiB

# KVM's per-memslot metadata on x86 per GiB of memslot and address space
# (a model after SPEC.md section 1, not a measurement): gfn_track 2 bytes
# and, with the shadow MMU, rmap 8 bytes per 4 KiB page, plus lpage_info
# 4 bytes per 2 MiB and 1 GiB page and rmap 8 bytes per large page.
TDP_PER_GIB = 512 * KiB + 2 * KiB + 4
SHADOW_PER_GIB = TDP_PER_GIB + 2 * MiB + 4 * KiB + 8


def mem(size):
    """size in bytes for a table; a measured difference may be negative."""
    if abs(size) >= GiB:
        return f"{size / GiB:.2f} GiB"
    if abs(size) >= MiB:
        return f"{size / MiB:.1f} MiB"
    return f"{size / KiB:.0f} KiB" if size else "0"


def model(mapped_bytes, per_gib, address_spaces=1):
    return mapped_bytes * per_gib // GiB * address_spaces


def usable_region(requested, usable):
    """QEMU's usable region after a request: requested + 256 MiB, block
    aligned; it never shrinks while the guest's driver runs."""
    if not requested:
        return usable
    size = min(DEVICE_SIZE, requested + USABLE_EXTENT)
    return max(usable, -(-size // BLOCK_SIZE) * BLOCK_SIZE)


def equal_mapped(g, addr, offsets, equal, usable, legacy):
    """What equal memslots would map for the memory the guest added (its
    memory blocks, device offsets), plus in legacy mode the usable region.

    The guest removes emptied memory blocks just after an unplug: first
    wait (up to 20 s) until the memslots ours maps are exactly those
    holding the guest's memory, as the mode's rule says."""
    def spans():
        return [(s - addr, e - addr) for s, e in g.guest_report()[1]] + \
            ([(0, usable)] if legacy and usable else [])

    def settled():
        want = covered_memslots([(s + addr, e + addr) for s, e in spans()],
                                addr, offsets)
        return set(g.mapped_memslots()) == want
    try:
        g.wait(settled, 20, "the guest's memory blocks to settle")
    except GuestError:
        # the model then counts what the guest still reports
        print("   (the guest's memory blocks had not settled after 20 s:"
              " the equal column counts what it reported then)")
    return layout.mapped(equal, spans())


def run_mode(workdir, setting, kvm):
    # the host's CPU vendor, as qemu64 has under KVM: the same guest
    # physical layout on the KVM destinations
    cpu = f"qemu64,phys-bits=48,vendor={hostkvm.cpu_vendor()}"
    g = VMemGuest(workdir, DEVICE_SIZE, True, name=f"demo-{setting}",
                  unplugged_inaccessible=setting, extra_args=["-cpu", cpu])
    t0 = time.monotonic()
    g.start()
    info = g.info()
    offsets = g.memslot_offsets()
    resolved = g.qmp("qom-get", path="vm0", property="unplugged-inaccessible")
    legacy = resolved == "off"
    addr = info["memaddr"]
    equal = layout.layout(DEVICE_SIZE, BLOCK_SIZE, LIMIT, equal=True)
    ours_model = layout.layout(DEVICE_SIZE, BLOCK_SIZE, LIMIT)
    print(f"== unplugged-inaccessible={setting or 'auto'}: resolves to "
          f"{resolved}" + (" (legacy mode)" if legacy else ""))
    print(f"guest booted in {time.monotonic() - t0:.1f} s: MemTotal "
          f"{mem(g.guest_report()[0])}; device vm0: {size_str(DEVICE_SIZE)}"
          f" at {info['memaddr']:#x}, block size "
          f"{size_str(info['block-size'])}, {info['memslots']} memslots of "
          f"{size_str(info['min-memslot-size'])} to "
          f"{size_str(info['max-memslot-size'])}")
    print(f"equal memslots (upstream's layout) for the same limit "
          f"({LIMIT}), region and block size: {len(equal) - 1} of "
          f"{size_str(equal[1])}; tests/lib/layout.py's model "
          + ("reproduces ours" if ours_model == offsets else
             "differs from ours (the column assumes a limit of "
             f"{LIMIT})") + "\n")
    head = (f"{'requested':>10} {'plugged':>10} {'guest':>10} "
            f"{'took':>6} {'memslots':>9} {'mapped':>10} {'equal':>10} | "
            f"{'KVM metadata (model)':^39} | {'measured':^19} |")
    sub = (f"{'':>10} {'':>10} {'MemTotal':>10} {'':>6} "
           f"{'mapped':>9} {'memory':>10} {'would map':>10} | "
           f"{'TDP MMU':>8} {'shadow,SMM':>11} | {'off: TDP':>8} "
           f"{'shadow,SMM':>10} | {'on':>9} {'off':>9} |")
    print(head)
    print(sub)
    print("-" * len(sub))
    usable = 0
    try:
        for target in [0] + STEPS:
            t0 = time.monotonic()
            if target or g.plugged():
                g.resize(target)
                g.wait_size(target, timeout=120)
            took = time.monotonic() - t0
            usable = usable_region(target, usable)
            eq_bytes = equal_mapped(g, addr, offsets, equal, usable, legacy)
            mapped = g.mapped_memslots()
            mapped_bytes = sum(e - s for s, e in mapped.values())
            measured = ("-", "-")
            if kvm.ok:
                try:
                    on, off, _ = hostkvm.kvm_cost(g, workdir,
                                                  f"{setting}-{target}")
                    measured = (mem(on), mem(off))
                except hostkvm.KVMCostError as e:
                    print(f"  (not measured: {e})")
            print(f"{size_str(target) if target else '0':>10} "
                  f"{mem(g.plugged()):>10} {mem(g.guest_report()[0]):>10} "
                  f"{took:5.1f}s {len(mapped):>4}/{info['memslots']:<4} "
                  f"{mem(mapped_bytes):>10} {mem(eq_bytes):>10} | "
                  f"{mem(model(mapped_bytes, TDP_PER_GIB)):>8} "
                  f"{mem(model(mapped_bytes, SHADOW_PER_GIB, 2)):>11} | "
                  f"{mem(model(DEVICE_SIZE, TDP_PER_GIB)):>8} "
                  f"{mem(model(DEVICE_SIZE, SHADOW_PER_GIB, 2)):>10} | "
                  f"{measured[0]:>9} {measured[1]:>9} |")
    finally:
        g.stop()
    print()


def main():
    print(textwrap.fill(__doc__.strip().split("\n\n")[1].replace("\n", " "),
                        79) + "\n")
    kvm = hostkvm.probe()
    print("Guests run under TCG. " + kvm.describe() + ".")
    if kvm.ok:
        print(f"Measured: kernel memory KVM allocated for the device on a "
              f"paused KVM destination ({kvm.flavour()}).\n")
    else:
        print("The measured columns stay empty: no usable host KVM.\n")
    with tempfile.TemporaryDirectory(prefix="vmem-demo-") as workdir:
        for setting in ("on", None):
            run_mode(workdir, setting, kvm)
    print("The guests are shut down. 'off' is the same device with "
          "dynamic-memslots=off: one 1 TiB memslot, mapped whole.")
    print("'equal would map': equal memslots (upstream QEMU's layout) for "
          "the memory blocks the guest added (legacy mode: and the usable "
          "region), by tests/lib/layout.py's model.")
    print("Model: per GiB of memslot and address space, gfn_track 512 KiB + "
          "lpage_info 2 KiB; the shadow MMU adds rmap 2 MiB; SMM doubles.")
    memory_limits(kvm)
    return 0


def memory_limits(kvm):
    """The smallest memory limit (libvirt's hard_limit, systemd's
    MemoryMax=) under which a paused VM starts, for stock 7.2, upstream
    10.0.2 and ours off and on, bisected by bench/memory_limits.py."""
    print("\n== Memory limits: the smallest limit under which a VM starts")
    if not kvm.ok:
        print(f"Not measured: no usable host KVM ({kvm.reason}).")
        return
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "bench"))
    # pylint: disable=import-outside-toplevel
    from stockqemu import stock_problem
    problem = stock_problem()
    if problem:
        print(f"Not measured: {problem}")
        return
    import memory_limits as ml
    sizes = (64 * GiB, DEVICE_SIZE, 16 * DEVICE_SIZE)
    print("Paused under KVM, nothing plugged, base RAM 1 GiB, in a memory "
          "cgroup of its own; bisected to "
          f"{ml.RESOLUTION // MiB} MiB (docs/memory-limits.md).")
    print(f"{'QEMU':<28}" + "".join(f"{size_str(s) + ' device':>16}"
                                    for s in sizes))
    for peer in ml.limit_peers():
        if not os.path.exists(peer.binary):
            print(f"{peer.name:<28} not measured: {peer.binary} is missing "
                  "(scripts/peers.sh fetches it)")
            continue
        cells = []
        for size in sizes:
            r = ml.smallest_limit(peer, size)
            cells.append("does not start" if "failed" in r
                         else mem(r["limit"]))
        print(f"{peer.name:<28}" + "".join(f"{c:>16}" for c in cells))
    print(textwrap.fill(
        "Under a limit between stock's and ours (tests/test-memory-limits.py "
        "uses 512 MiB for 1 TiB) stock 7.2 dies while it starts: the "
        "cgroup's OOM killer kills it as KVM allocates the device memslot's "
        "metadata, and virsh start fails (\"QEMU unexpectedly closed the "
        "monitor\"). With dynamic memslots no memslot of the device is "
        "mapped until the guest plugs memory; what still grows with the "
        "device is QEMU's own dirty bitmaps (96 MiB per TiB). \"does not "
        "start\": KVM refuses a memslot that large.", 79))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GuestError as e:
        # e.g. a module that did not load in the guest: its own message
        print(f"\ndemo: {e}", file=sys.stderr)
        sys.exit(1)
