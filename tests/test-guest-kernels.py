#!/usr/bin/env python3
"""Real guests' own virtio_mem drivers with dynamic memslots, both modes.

The kernel matrix of scripts/guest.sh: Debian 11's 5.10 (its driver does
not know VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE), Debian 12's 6.1 and its
6.12. Each boots under TCG with a 64 GiB virtio-mem device and
dynamic-memslots=on, in every mode it supports:
- legacy mode: unplugged-inaccessible not given, "auto" resolves to "off"
  (anonymous memory) exactly as in QEMU 7.2;
- unplugged-inaccessible=on (5.10 refuses it: the test shows the driver's
  refusal in the guest's log and that nothing gets plugged).
QMP resizes the device up and down; after every step, once the guest
followed, the mapped memslots ("info mtree") must be exactly what the
mode's rule says: memslots holding memory the guest added (its
/proc/iomem), plus, in legacy mode, the memslots that overlap the usable
region (the requested size plus 256 MiB, grown by every request since
boot: the Linux driver never sends unplug-all once running). The flat view
keeps one range per mapped memslot.

Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
from results import Results  # noqa: E402
from vmemguest import (BUILD, GiB, MiB, GuestError, VMemGuest,  # noqa: E402
                       covered_memslots, size_str)

DEVICE_SIZE = 64 * GiB
BLOCK_SIZE = 2 * MiB
USABLE_EXTENT = 256 * MiB
STEPS = [1 * GiB, 4 * GiB + 512 * MiB, 1 * GiB + 512 * MiB, 0]
KERNELS = ("5.10", "6.1", "6.12")
REFUSED_RE = re.compile(r"virtio: device refuses features", re.M)


def kernel_files(name):
    d = os.path.join(BUILD, "guest", "kernels", name)
    with open(os.path.join(d, "version"), encoding="utf-8") as f:
        version = f.read().strip()
    return (os.path.join(d, "vmlinuz"), os.path.join(d, "initrd.img"),
            version)


def usable_region(requested):
    if not requested:
        return 0
    size = min(DEVICE_SIZE, requested + USABLE_EXTENT)
    return -(-size // BLOCK_SIZE) * BLOCK_SIZE


def expected_memslots(g, addr, offsets, usable, legacy):
    want = covered_memslots(g.guest_report()[1], addr, offsets)
    if legacy:
        want |= {i for i in range(len(offsets) - 1) if offsets[i] < usable}
    return want


def check_map(g, addr, offsets, usable, legacy):
    want = expected_memslots(g, addr, offsets, usable, legacy)
    mapped = g.mapped_memslots()
    problems = []
    if set(mapped) != want:
        problems.append(f"mapped memslots {sorted(mapped)} != the rule's "
                        f"{sorted(want)} (usable region {size_str(usable)})")
    if len(g.flat_backend_ranges()) != len(mapped):
        problems.append(f"flat view ranges {g.flat_backend_ranges()} for "
                        f"{len(mapped)} mapped memslots")
    if g.info().get("mapped-memslots") != len(mapped):
        problems.append(f"QMP mapped-memslots {g.info().get('mapped-memslots')}"
                        f" != {len(mapped)}")
    return problems


def run_plugging(res, kernel, legacy, workdir):
    vmlinuz, initrd, version = kernel_files(kernel)
    label = f"{kernel} ({version}), {'legacy (auto)' if legacy else 'on'}"
    g = VMemGuest(workdir, DEVICE_SIZE, True, name=f"k{kernel}-{legacy}",
                  kernel=vmlinuz, initrd=initrd,
                  unplugged_inaccessible=None if legacy else "on")
    try:
        g.start()
        resolved = g.qmp("qom-get", path="vm0",
                         property="unplugged-inaccessible")
        res.check(resolved == ("off" if legacy else "on"),
                  f"{label}: unplugged-inaccessible resolves to {resolved}",
                  "legacy mode must come from auto, as in QEMU 7.2")
        addr = g.info()["memaddr"]
        offsets = g.memslot_offsets()
        usable = 0
        for target in STEPS:
            what = f"{label}: requested-size {size_str(target)}"
            g.resize(target)
            usable = max(usable, usable_region(target))
            try:
                g.wait_size(target)
            except GuestError as e:
                res.check(False, f"{what}: the guest follows", str(e))
                return
            problems = []

            def settled(usable=usable):
                problems[:] = check_map(g, addr, offsets, usable, legacy)
                return not problems
            try:
                # the guest removes emptied memory blocks just after
                g.wait(settled, 20, "the memslot map to follow the rule")
            except GuestError as e:
                problems.append(str(e))
            res.check(not problems,
                      f"{what}: {len(g.mapped_memslots())} memslots mapped",
                      "\n".join(problems))
    except GuestError as e:
        res.check(False, f"{label}: guest run", str(e))
    finally:
        g.stop()


def run_refused(res, kernel, workdir):
    """A driver without the feature refuses a device that offers it."""
    vmlinuz, initrd, version = kernel_files(kernel)
    label = f"{kernel} ({version}), on"
    g = VMemGuest(workdir, DEVICE_SIZE, True, name=f"k{kernel}-refused",
                  kernel=vmlinuz, initrd=initrd, unplugged_inaccessible="on")
    try:
        g.start()
        g.resize(1 * GiB)
        g.wait(lambda: REFUSED_RE.search(g.serial()), 30,
               "the driver's refusal on the console")
        res.check(g.plugged() == 0 and g.guest_added() == 0 and
                  not g.mapped_memslots(),
                  f"{label}: the driver refuses the feature (\"virtio: device "
                  "refuses features\"), nothing plugged or mapped",
                  g.context())
    except GuestError as e:
        res.check(False, f"{label}: the driver's refusal", str(e))
    finally:
        g.stop()


def main():
    res = Results()
    with tempfile.TemporaryDirectory(prefix="vmem-kernels-") as workdir:
        for kernel in KERNELS:
            try:
                kernel_files(kernel)
            except FileNotFoundError:
                res.check(False, f"{kernel}: guest kernel",
                          "missing: run scripts/guest.sh")
                continue
            run_plugging(res, kernel, True, workdir)
            if kernel == "5.10":
                run_refused(res, kernel, workdir)
            else:
                run_plugging(res, kernel, False, workdir)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
