#!/usr/bin/env python3
"""Plug and unplug latency with a real Linux guest, per QEMU and mode.

Boots Debian's kernel under TCG with a virtio-mem device on each QEMU and
times, for a sequence of requested sizes, how long it takes from the QMP
qom-set until the device's size and the guest's MemTotal reached the
target. TCG timings are dominated by the emulated guest; the point is to
see that mapping memslots on demand adds nothing noticeable.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from peers import peers  # noqa: E402
from vmemguest import GiB, MiB, TiB, VMemGuest, size_str  # noqa: E402

SIZES = [64 * GiB, 1 * TiB]
STEPS = [1 * GiB, 4 * GiB, 512 * MiB, 0]


def run(peer, size, workdir):
    times = []
    with peer:
        g = VMemGuest(workdir, size, bool(peer.dynamic), qemu=peer.binary,
                      name=peer.name.replace(" ", "_"),
                      extra_args=peer.args,
                      dynamic_prop=peer.dynamic is not None)
        t0 = time.monotonic()
        g.start()
    boot = time.monotonic() - t0
    try:
        for target in STEPS:
            t0 = time.monotonic()
            g.resize(target)
            g.wait_size(target, timeout=120)
            times.append(time.monotonic() - t0)
    finally:
        g.stop()
    return boot, times


def main():
    steps = ["0"] + [size_str(s) for s in STEPS]
    cols = [f"{a} -> {b}" for a, b in zip(steps, steps[1:])]
    print("Plug/unplug latency with a real Linux 6.1 guest under TCG: from "
          "qom-set until size and guest MemTotal reached the target\n")
    print("| device | QEMU | boot | " + " | ".join(cols) + " |")
    print("|---|---|---:|" + "---:|" * len(cols))
    with tempfile.TemporaryDirectory(prefix="vmem-bench-") as workdir:
        for size in SIZES:
            for peer in peers():
                if peer.name.startswith("upstream") and not peer.dynamic:
                    continue
                boot, times = run(peer, size, workdir)
                print(f"| {size_str(size)} | {peer.name} | {boot:.1f} s | " +
                      " | ".join(f"{t:.2f} s" for t in times) + " |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
