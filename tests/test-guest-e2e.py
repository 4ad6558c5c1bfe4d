#!/usr/bin/env python3
"""End-to-end: a real Linux guest plugs and unplugs virtio-mem memory.

Boots Debian's kernel under TCG with a virtio-mem device, resizes it
through QMP (qom-set requested-size) up, across memslot boundaries, down
to zero and up again (1 -> 4.5 -> 16.5 -> 4.5 -> 1 -> 0 -> 36.5 GiB: the
last step reaches the memslots that grow, of 1 TiB and 16 TiB devices,
just past the start of one; plugging is fast, unplugging ~0.6 s per GiB
under TCG, so the run does not come down from there), and after every
step, once the device's size and the guest's MemTotal reached the target,
checks:
- with dynamic-memslots=on: the memslots mapped in "info mtree" are exactly
  those the mode's rule says (memslots holding memory the guest added, its
  /proc/iomem report; in legacy mode also those overlapping the usable
  region); the flat view has one range per mapped memslot, at the
  memslot's place; query-memory-devices' mapped-memslots agrees, and its
  mapped-size is what tests/lib/layout.py's mapped() gives for the
  layout and the guest's memory;
- the layout (SPEC section 4): the memslots' offsets (QOM) and
  min-memslot-size/max-memslot-size are tests/lib/layout.py's for the
  device's limit (256, the full budget; 16 next to a 64-region vhost
  backend);
- the bounds of the layout (issue 23, item 4), at every step up (Linux
  plugs from the bottom): mapped-size <= 1.1 x plugged + 1 GiB with the
  full budget, for devices of 64 GiB, 1 TiB and 16 TiB; <= 2 x plugged +
  1 GiB for a 1 TiB device next to a vhost-user device whose backend
  (tests/lib/vhost_user_stub.py) allows 64 regions, as Debian's vhost-net
  does; in legacy mode (unplugged-inaccessible=off, Debian 11's 5.10
  kernel, 1 TiB) <= 1.1 x usable region + 1 GiB at every step, the usable
  region being the largest requested size since boot plus 256 MiB,
  rounded up to the block size, at most the device size;
- with dynamic-memslots=off: the backend is mapped whole, as in QEMU 7.2;
- the guest-visible results (plugged size, MemTotal growth) are the same
  for all runs of the Debian 12 kernel: on and off, any device size, next
  to the vhost device.

E2E_EQUAL_MEMSLOTS=1 gives every device with dynamic memslots
equal-memslots=on (upstream's layout; the model follows): the bounds
must then fail for 1 TiB, 16 TiB, the vhost and the legacy runs (a 64 GiB
device has memslots of 1 GiB either way). It exists to show that the
bound checks can fail.

Prints one PASS/FAIL line per check, the duration of every run and
"N passed, N failed".
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import layout  # noqa: E402
from results import Results  # noqa: E402
from vhost_user_stub import VhostUserStub  # noqa: E402
from vmemguest import (BUILD, GiB, MiB, TiB, GuestError,  # noqa: E402
                       VMemGuest, covered_memslots, size_str)

BLOCK_SIZE = 2 * MiB
USABLE_EXTENT = 256 * MiB
FULL_BUDGET, VHOST_LIMIT = 256, 16
STEPS = [1 * GiB, 4 * GiB + 512 * MiB, 16 * GiB + 512 * MiB,
         4 * GiB + 512 * MiB, 1 * GiB, 0, 36 * GiB + 512 * MiB]
# the slowest step (16.5 -> 4.5 GiB) takes ~8 s under TCG here
PLUG_TIMEOUT = 120
EQUAL = os.environ.get("E2E_EQUAL_MEMSLOTS") == "1"
LEGACY_KERNEL = "5.10"


class Run:   # pylint: disable=too-few-public-methods
    """One guest: its device, mode and what it must keep to."""

    # pylint: disable=too-many-arguments
    def __init__(self, size, dynamic=True, vhost_regions=None, legacy=False):
        self.size, self.dynamic = size, dynamic
        self.vhost_regions, self.legacy = vhost_regions, legacy
        self.limit = VHOST_LIMIT if vhost_regions else FULL_BUDGET
        # the bound of issue 23 item 4 (factor, of what)
        self.factor = 2 if vhost_regions else 1.1
        self.label = (f"{size_str(size)}, dynamic-memslots="
                      f"{'on' if dynamic else 'off'}")
        if dynamic and EQUAL:
            self.label += ", equal-memslots=on"
        if vhost_regions:
            self.label += f", {vhost_regions}-region vhost-user device"
        if legacy:
            self.label += (f", unplugged-inaccessible=off, Debian 11's "
                           f"{LEGACY_KERNEL}")
        self.name = (f"e2e-{size // GiB}g-{'on' if dynamic else 'off'}"
                     f"{'-vhost' if vhost_regions else ''}"
                     f"{'-legacy' if legacy else ''}")


RUNS = [Run(64 * GiB), Run(64 * GiB, dynamic=False), Run(1 * TiB),
        Run(16 * TiB), Run(1 * TiB, vhost_regions=64),
        Run(1 * TiB, legacy=True)]


def usable_region(run, requested):
    size = min(run.size, requested + USABLE_EXTENT) if requested else 0
    return -(-size // BLOCK_SIZE) * BLOCK_SIZE


def legacy_kernel():
    d = os.path.join(BUILD, "guest", "kernels", LEGACY_KERNEL)
    with open(os.path.join(d, "version"), encoding="utf-8") as f:
        version = f.read().strip()
    return os.path.join(d, "vmlinuz"), os.path.join(d, "initrd.img"), version


def device_spans(g, addr):
    """The guest's memory as device offsets [start, end)."""
    return [(s - addr, e - addr) for s, e in g.guest_report()[1]]


def memslot_map_problems(g, run, addr, offsets, usable):
    """Mapped memslots == the mode's rule, each one flat range at its
    place, and QMP's mapped-memslots and mapped-size agree with the
    model."""
    spans = g.guest_report()[1]
    want = covered_memslots(spans, addr, offsets)
    model_spans = device_spans(g, addr)
    if run.legacy:
        want |= {i for i in range(len(offsets) - 1) if offsets[i] < usable}
        if usable:
            model_spans.append((0, usable))
    mapped = g.mapped_memslots()
    flat = g.flat_backend_ranges()
    expect_flat = sorted(mapped.values())
    info = g.info()
    problems = []
    if set(mapped) != want:
        problems.append(f"mapped memslots {sorted(mapped)} != the rule's "
                        f"{sorted(want)}")
    for idx, (start, end) in mapped.items():
        if start != addr + offsets[idx] or \
           end - start != offsets[idx + 1] - offsets[idx]:
            problems.append(f"memslot-{idx} mapped at {start:#x}-{end:#x}")
    if flat != expect_flat:
        problems.append(f"flat view ranges {flat} != memslots {expect_flat}")
    if info.get("mapped-memslots") != len(mapped):
        problems.append(f"QMP mapped-memslots {info.get('mapped-memslots')}"
                        f" != {len(mapped)} in info mtree")
    model = layout.mapped(offsets, model_spans)
    if info.get("mapped-size") != model:
        problems.append(f"QMP mapped-size {info.get('mapped-size')} != "
                        f"{model}, layout.mapped() of the guest's memory")
    return problems


def check_layout(res, g, run, offsets):
    """The layout QEMU decided on is the model's for the run's limit."""
    model = layout.layout(run.size, BLOCK_SIZE, run.limit, EQUAL)
    sizes = [b - a for a, b in zip(model, model[1:])]
    info = g.info()
    got = (info.get("min-memslot-size"), info.get("max-memslot-size"))
    res.check(offsets == model and got == (min(sizes), max(sizes)) and
              not g.mapped_memslots() and info.get("mapped-size") == 0,
              f"{run.label}: {len(offsets) - 1} memslots of "
              f"{size_str(min(sizes))} to {size_str(max(sizes))}, the "
              f"layout of tests/lib/layout.py for a limit of {run.limit}; "
              "none mapped at boot",
              f"QOM offsets == model: {offsets == model} "
              f"({len(offsets) - 1} vs {len(model) - 1} memslots); "
              f"min/max {got} vs ({min(sizes)}, {max(sizes)})\n"
              f"{g.context()}")


def check_bound(res, g, run, what, usable, going_up):
    """mapped-size within the layout's bound (issue 23, item 4)."""
    mapped = g.info()["mapped-size"]
    if run.legacy:
        limit = 1.1 * usable + GiB
        res.check(mapped <= limit,
                  f"{what}: bound: {size_str(mapped)} mapped <= 1.1 x "
                  f"usable region ({size_str(usable)}) + 1 GiB "
                  f"= {limit / GiB:.2f} GiB", g.context())
    elif going_up:
        limit = run.factor * g.plugged() + GiB
        res.check(mapped <= limit,
                  f"{what}: bound: {size_str(mapped)} mapped <= "
                  f"{run.factor} x plugged + 1 GiB = {limit / GiB:.2f} GiB",
                  g.context())


def guest_for(run, workdir):
    extra, stub = [], None
    if run.vhost_regions:
        path = os.path.join(workdir, f"{run.name}.sock")
        stub = VhostUserStub(path, run.vhost_regions)
        extra = ["-chardev", f"socket,id=vu0,path={path}",
                 "-device", "vhost-user-blk-pci,chardev=vu0"]
    kwargs = {}
    if run.legacy:
        vmlinuz, initrd, _ = legacy_kernel()
        kwargs = {"kernel": vmlinuz, "initrd": initrd,
                  "unplugged_inaccessible": "off"}
    g = VMemGuest(workdir, run.size, run.dynamic, name=run.name,
                  block_size=BLOCK_SIZE, early_args=extra,
                  device_props=("equal-memslots=on",) if run.dynamic and
                  EQUAL else (), **kwargs)
    return g, stub


def step(res, g, run, addr, offsets, usable, target, going_up):
    what = f"{run.label}: requested-size {size_str(target)}"
    try:
        g.wait_size(target, timeout=PLUG_TIMEOUT)
    except GuestError as e:
        res.check(False, f"{what}: guest follows", str(e))
        return False
    if run.dynamic:
        # The guest removes emptied memory blocks right after the last
        # unplug: give its report a deadline to settle.
        problems = []

        def settled():
            problems[:] = memslot_map_problems(g, run, addr, offsets, usable)
            return not problems
        try:
            g.wait(settled, 20, "the memslot map to match the guest")
        except GuestError as e:
            problems.append(str(e))
        res.check(not problems,
                  f"{what}: {len(g.mapped_memslots())} memslots mapped "
                  f"({size_str(g.info()['mapped-size'])}, as "
                  f"layout.mapped() says) for {size_str(g.plugged())} "
                  "plugged", "\n".join(problems))
        check_bound(res, g, run, what, usable, going_up)
    else:
        flat = g.flat_backend_ranges()
        res.check(flat == [(addr, addr + run.size)] and
                  not g.mapped_memslots(),
                  f"{what}: backend mapped whole",
                  f"flat ranges {flat}\n{g.context()}")
    return True


def run_guest(res, run, workdir):
    """The guest-visible results of every step: [(target, plugged, added)]."""
    seen = []
    started = time.monotonic()
    try:
        g, stub = guest_for(run, workdir)
    except OSError as e:
        res.check(False, f"{run.label}: guest set-up", str(e))
        return seen
    try:
        g.start()
        addr = g.info()["memaddr"]
        offsets = [0, run.size]
        if run.dynamic:
            offsets = g.memslot_offsets()
            check_layout(res, g, run, offsets)
        usable, previous = 0, 0
        for target in STEPS:
            g.resize(target)
            usable = max(usable, usable_region(run, target))
            if not step(res, g, run, addr, offsets, usable, target,
                        target >= previous):
                continue
            previous = target
            seen.append((target, g.plugged(), g.guest_added()))
    except GuestError as e:
        res.check(False, f"{run.label}: guest run", str(e))
    finally:
        g.stop()
        if stub:
            stub.close()
    print(f"# {run.label}: {time.monotonic() - started:.0f} s")
    sys.stdout.flush()
    return seen


def main():
    res = Results()
    if EQUAL:
        print("# E2E_EQUAL_MEMSLOTS=1: every device with dynamic memslots "
              "has equal-memslots=on; the bounds must fail")
    started = time.monotonic()
    try:
        legacy_kernel()
    except FileNotFoundError:
        res.check(False, f"{LEGACY_KERNEL}: guest kernel",
                  "missing: run scripts/guest.sh")
        return res.finish()
    seen = {}
    with tempfile.TemporaryDirectory(prefix="vmem-e2e-") as workdir:
        for run in RUNS:
            seen[run.label] = run_guest(res, run, workdir)
    same = [run.label for run in RUNS if not run.legacy]
    first = seen[same[0]]
    res.check(len(first) == len(STEPS) and
              all(seen[label] == first for label in same),
              "guest-visible results (plugged size, MemTotal growth) are the "
              "same with dynamic-memslots on and off, for 64 GiB, 1 TiB and "
              "16 TiB, and with the vhost device",
              "\n".join(f"{label}: {seen[label]}" for label in same))
    legacy = seen[RUNS[-1].label]
    res.check([(t, p) for t, p, _ in legacy] == [(t, t) for t in STEPS],
              f"{RUNS[-1].label}: the guest plugged every requested size",
              f"{legacy}")
    print(f"# duration: {time.monotonic() - started:.0f} s")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
