#!/usr/bin/env python3
"""A real guest's unplug: memslots are unmapped before memory is discarded.

An unplug discards the blocks and unmaps the memslots that hold no plugged
block any more. Discarding first leaves a window in which a vCPU writing
to the range populates pages again; once the memslot is unmapped they stay
allocated, and no later unplug discards them (the guest cannot reach them
any more). The SPEC's order: update the bitmap, unmap, then discard.

A Linux guest never writes to memory it is unplugging, so the window
cannot be hit on purpose with a real guest; what the guest's own driver
does shows the order. Debian's kernel under TCG plugs 4 GiB of a 64 GiB
device (1 GiB memslots) and gives back 3 GiB, then the rest
(unplugged-inaccessible=on: with "off", memslots of the usable region
stay mapped and only unplug-all and reset unmap, which
tests/qtest/virtio-mem-test checks); QEMU traces the unplug requests, the
memslot unmaps and the discards of the device's backend. For every
request that unmapped a memslot, each unmap must come before the discard.
At least one request must have unmapped a memslot, else nothing was
shown.

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
from vmemguest import GiB, GuestError, VMemGuest, size_str  # noqa: E402

DEVICE_SIZE = 64 * GiB
STEPS = [4 * GiB, 1 * GiB, 0]
EVENTS = ("virtio_mem_unplug_request", "virtio_mem_unmap_memslot",
          "ram_block_discard_range")
EVENT_RE = re.compile(r"\b(%s)\b(.*)$" % "|".join(EVENTS))


def unplug_groups(trace_text):
    """[(request, [(event, args)])]: what each unplug request did."""
    groups = []
    for line in trace_text.splitlines():
        m = EVENT_RE.search(line)
        if not m:
            continue
        event, args = m.group(1), m.group(2).strip()
        if event == "virtio_mem_unplug_request":
            groups.append((args, []))
        elif groups and (event != "ram_block_discard_range" or
                         "vmem0" in args):
            groups[-1][1].append((event, args))
    return groups


def order_problems(groups):
    """Requests whose discard came before one of their unmaps."""
    problems = []
    for request, events in groups:
        names = [e for e, _ in events]
        if "virtio_mem_unmap_memslot" not in names:
            continue
        if "ram_block_discard_range" not in names:
            problems.append(f"unplug {request}: unmapped, never discarded")
            continue
        last_unmap = max(i for i, e in enumerate(names)
                         if e == "virtio_mem_unmap_memslot")
        first_discard = names.index("ram_block_discard_range")
        if first_discard < last_unmap:
            problems.append(f"unplug {request}: {' -> '.join(names)}")
    return problems


def run(mode, res, workdir):
    label = f"unplugged-inaccessible={mode}"
    trace = os.path.join(workdir, f"trace-{mode}.log")
    args = [a for e in EVENTS for a in ("-trace", e)] + ["-D", trace]
    g = VMemGuest(workdir, DEVICE_SIZE, True, name=f"order-{mode}",
                  unplugged_inaccessible=mode, extra_args=args)
    try:
        g.start()
        for target in STEPS:
            g.resize(target)
            g.wait_size(target)
        # the last unplug's memslot unmap may lag the size a little
        g.wait(lambda: not g.mapped_memslots(), 20,
               "the memslots to be unmapped")
    except GuestError as e:
        res.check(False, f"{label}: guest run", str(e))
        return
    finally:
        g.stop()
    with open(trace, encoding="utf-8", errors="replace") as f:
        groups = unplug_groups(f.read())
    unmapping = [r for r, ev in groups
                 if any(e == "virtio_mem_unmap_memslot" for e, _ in ev)]
    res.check(groups and unmapping,
              f"{label}: the guest's unplugs emptied memslots "
              f"({len(unmapping)} of {len(groups)} requests unmapped one)",
              f"trace {trace}: no unplug request unmapped a memslot")
    problems = order_problems(groups)
    res.check(not problems,
              f"{label}: every memslot emptied by an unplug was unmapped "
              f"before its blocks were discarded (steps "
              f"{', '.join(size_str(s) for s in STEPS)})",
              "\n    ".join(problems[:5]))


def main():
    res = Results()
    with tempfile.TemporaryDirectory(prefix="vmem-order-") as workdir:
        run("on", res, workdir)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
