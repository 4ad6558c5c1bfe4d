#!/usr/bin/env python3
"""What host KVM allocates for a 1 TiB virtio-mem device, measured.

Needs a usable /dev/kvm (tests/lib/hostkvm.py's probe, printed first);
without one every case is reported as skipped with the probe's reason.
Each QEMU under KVM runs paused (-S) in a memory cgroup of its own, whose
kernel memory gives what KVM allocated for its memslots.

- static: Debian's stock 7.2 (the oracle for "off"), ours off and ours on,
  with and without the device: ours off pays what stock pays, ours on with
  nothing plugged pays nothing; the per-GiB cost of a memslot on this host
  is stock's cost divided by the device size.
- plugged 0, 1, 4 and 16 GiB: a real guest under TCG (ours, on) plugs
  them with its own virtio_mem driver; at each size its state migrates
  into a paused KVM QEMU with dynamic-memslots=on and into one with "off".
  The "on" destination maps exactly the memslots the source maps, which
  hold the guest's plugged blocks; its cost is the per-GiB cost of those
  memslots (within 1 MiB and 5 %), and "off" pays for the whole device.
  Both destinations receive the same pages, so what the migration itself
  costs in kernel memory (page tables) cancels out in their difference.
- the decision under KVM equals the one under TCG for a machine with two
  DIMMs and two virtio-mem devices (memslots, mapped memslots, addresses,
  info mtree).

Prints one PASS/FAIL/SKIP line per check and "N passed, N failed[, N
skipped]".
"""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import hostkvm  # noqa: E402
from results import Results  # noqa: E402
from stockqemu import STOCK  # noqa: E402
from vmemguest import (QEMU, GiB, MiB, TiB, QEMUMachine,  # noqa: E402
                       VMemGuest, covered_memslots, mapped_memslots,
                       size_str)

DEVICE = 1 * TiB
BASE_RAM = 1 * GiB
STEPS = [0, 1 * GiB, 4 * GiB, 16 * GiB]
# the device's cost under KVM below which a cost check, whose tolerance is
# 1 MiB, could not fail (TDP MMU from Linux 6.9: ~2 MiB per TiB)
RESOLVABLE = 16 * MiB
CASES = ["static: ours off pays what stock 7.2 pays",
         "static: ours on pays nothing with nothing plugged"] + \
    [f"{size_str(p)} plugged: {what}" for p in STEPS for what in
     ("destination maps the source's memslots", "on pays its memslots",
      "off pays the whole device")] + \
    ["decision under KVM equals TCG (DIMMs, two devices)"]


def mib(n):
    return f"{n / MiB:.1f} MiB"


def cpu():
    """qemu64 with the host's vendor: what it is under KVM anyway, and
    under TCG the same guest physical layout (AMD moves memory above
    4 GiB to 1 TiB when the machine reaches beyond it)."""
    return f"qemu64,phys-bits=48,vendor={hostkvm.cpu_vendor()}"


def paused(qemu, workdir, device, accel="kvm", cg=None, extra=(),
           maxmem=BASE_RAM + DEVICE):
    """A paused QEMU with the 1 TiB device (or none): a context manager
    that launches it and shuts it down."""
    args = ["-S", "-machine", "q35", "-accel", accel, "-nodefaults",
            "-cpu", cpu(), "-smp", "1",
            "-m", f"{BASE_RAM // MiB}M,slots=4,maxmem={maxmem // MiB}M",
            *extra]
    if device is not None:
        args += ["-object", f"memory-backend-ram,id=vmem0,size={DEVICE},"
                            "reserve=off",
                 "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,"
                            "requested-size=0,unplugged-inaccessible=on" +
                            device]
    return hostkvm.launched(QEMUMachine(qemu, args=args,
                                        wrapper=cg.wrapper if cg else (),
                                        base_temp_dir=workdir,
                                        sock_dir=workdir))


def static_kmem(qemu, workdir, device):
    """Kernel memory of a paused KVM QEMU, in a cgroup of its own."""
    limit = hostkvm.available_limit()
    name = f"{os.path.basename(qemu)} device{device or ' none'}"
    with hostkvm.cgroup(limit) as cg, hostkvm.cost_error(name, cg, limit), \
            paused(qemu, workdir, device, cg=cg) as vm:
        vm.qmp("query-status")
        return cg.kmem()


def static_cases(res, workdir):
    """The per-GiB cost of a memslot on this host (stock's device cost)."""
    stock = static_kmem(STOCK, workdir, "") - static_kmem(STOCK, workdir, None)
    base = static_kmem(QEMU, workdir, None)
    off = static_kmem(QEMU, workdir, ",dynamic-memslots=off") - base
    on = static_kmem(QEMU, workdir, ",dynamic-memslots=on") - base
    print(f"    stock 7.2 {mib(stock)}, ours off {mib(off)}, ours on "
          f"{mib(on)} for the {size_str(DEVICE)} device")
    why = unresolvable(hostkvm.probe(), stock)
    if why:
        res.skip(CASES[0], why)
        res.skip(CASES[1], why)
        return None, why
    # a host that must charge more than RESOLVABLE (unresolvable() said
    # so) and did not: the measurement itself is broken
    res.check(stock >= RESOLVABLE and abs(off - stock) <= MiB + stock // 100,
              CASES[0], f"stock {stock}, ours off {off}")
    res.check(abs(on) <= MiB, CASES[1], f"ours on {on} bytes")
    print(f"    per GiB of memslot on this host: {stock / DEVICE * GiB:.0f} "
          "bytes (stock 7.2's device cost / size)")
    return stock / DEVICE, None


def kernel_before(release, major, minor):
    """Whether the kernel release (platform.release()) is older than
    major.minor; None if it does not say."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return None if not m else (int(m[1]), int(m[2])) < (major, minor)


def unresolvable(info, stock):
    """Why cost checks cannot fail on this host, or None.

    Decided from what the host is, not from what was measured (a broken
    measurement must fail, not skip): the shadow MMU allocates rmap and
    gfn_track for every memslot (~2.5 GiB per TiB), the TDP MMU before
    Linux 6.9 gfn_track (~515 MiB per TiB, CONFIG_KVM_EXTERNAL_WRITE_
    TRACKING as Debian sets it). From 6.9 on, with the TDP MMU, KVM
    allocates them only once shadow paging is needed, and what is left
    (lpage_info, ~2 MiB per TiB) is below the 1 MiB the cgroup readings
    wander by. An unknown MMU is judged by the measurement."""
    if info.mmu() == "shadow MMU":
        return None
    before = kernel_before(info.kernel, 6, 9)
    if info.tdp_mmu and before:
        return None
    # an unknown MMU or kernel release: judged by the measurement
    if (info.tdp_mmu is None or before is None) and stock >= RESOLVABLE:
        return None
    return (f"KVM here ({info.flavour()}) charges {mib(stock)} for the "
            f"whole {size_str(DEVICE)} device (stock 7.2), under the "
            f"{mib(RESOLVABLE)} a cost check needs to tell on from off "
            f"(the cgroup reading wanders by 1 MiB); the memslot checks run")


def plugged_cases(res, workdir, per_byte, why):
    """per_byte: KVM's cost per byte of memslot, None (why) when cost
    checks cannot fail here."""
    src = VMemGuest(workdir, DEVICE, True, name="src", base_ram=BASE_RAM,
                    extra_args=["-cpu", cpu()])
    src.start()
    try:
        offsets = src.memslot_offsets()
        for n, step in enumerate(STEPS):
            if step:
                src.resize(step)
                src.wait_size(step, timeout=120)
            spans = src.guest_report()[1]
            src_slots = src.mapped_memslots()
            guest_slots = covered_memslots(spans, src.info()["memaddr"],
                                           offsets)
            cost_on, cost_off, dst_slots = hostkvm.kvm_cost(src, workdir,
                                                            f"step{n}")
            mapped = sum(offsets[i + 1] - offsets[i] for i in dst_slots)
            expected_on = mapped * (per_byte or 0)
            print(f"    {size_str(step)}: {len(dst_slots)} memslots of "
                  f"{size_str(mapped)} in all mapped; on {mib(cost_on)} "
                  f"(expected {mib(expected_on)}), off {mib(cost_off)}")
            name = f"{size_str(step)} plugged"
            res.check(set(dst_slots) == set(src_slots) == guest_slots,
                      f"{name}: destination maps the source's memslots",
                      f"destination {sorted(dst_slots)}, source "
                      f"{sorted(src_slots)}, guest's blocks in "
                      f"{sorted(guest_slots)}")
            if per_byte is None:
                res.skip(f"{name}: on pays its memslots", why)
                res.skip(f"{name}: off pays the whole device", why)
                continue
            res.check(abs(cost_on - expected_on) <= MiB + expected_on / 20,
                      f"{name}: on pays its memslots",
                      f"on {cost_on} bytes, expected {expected_on:.0f}")
            res.check(abs(cost_off - DEVICE * per_byte) <=
                      MiB + DEVICE * per_byte / 100,
                      f"{name}: off pays the whole device",
                      f"off {cost_off} bytes, expected "
                      f"{DEVICE * per_byte:.0f}")
    finally:
        src.stop()


def decision(accel, workdir):
    """What a machine with two DIMMs and two devices maps, per device."""
    extra = ["-object", "memory-backend-ram,id=d0,size=1G",
             "-object", "memory-backend-ram,id=d1,size=1G",
             "-device", "pc-dimm,id=dimm0,memdev=d0",
             "-object", "memory-backend-ram,id=vmem1,size=64G,reserve=off",
             "-device", "virtio-mem-pci,id=vm1,memdev=vmem1,requested-size=4G,"
                        "unplugged-inaccessible=off,dynamic-memslots=on",
             "-device", "pc-dimm,id=dimm1,memdev=d1"]
    with paused(QEMU, workdir, ",dynamic-memslots=on", accel=accel,
                extra=extra,
                maxmem=BASE_RAM + 2 * GiB + DEVICE + 64 * GiB) as vm:
        devs = vm.qmp("query-memory-devices")["return"]
        tree = vm.qmp("human-monitor-command",
                      **{"command-line": "info mtree"})["return"]
        return devs, sorted(mapped_memslots(tree).items())


def decision_case(res, workdir):
    kvm, tcg = decision("kvm", workdir), decision("tcg", workdir)
    slots = [(d["data"]["id"], d["data"].get("memslots"))
             for d in kvm[0] if d["type"] == "virtio-mem"]
    print(f"    memslots under KVM: {slots}")
    res.check(kvm == tcg, CASES[-1], f"KVM {kvm}\nTCG {tcg}")


def main():
    res = Results("KVM (paused destinations) and TCG (the guest)")
    if not hostkvm.probe_with_stock(res, CASES,
                                    "Debian's QEMU 7.2 is the oracle"):
        return res.finish()
    workdir = tempfile.mkdtemp(prefix="vmem-kvm-")
    try:
        plugged_cases(res, workdir, *static_cases(res, workdir))
        decision_case(res, workdir)
    except hostkvm.KVMCostError as e:
        res.check(False, "the paused KVM QEMUs of the measurements run", e)
    except Exception as e:  # pylint: disable=broad-except
        # the guest's QEMU died or hung up: the rest cannot be measured
        res.check(False, "the source guest runs through every step",
                  f"{type(e).__name__}: {e}")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
