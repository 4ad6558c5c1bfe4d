#!/usr/bin/env python3
"""The installed QEMU ($VMEM_QEMU, /usr/bin/qemu-system-x86_64 from make
deb's packages) with a real guest: a 1 TiB virtio-mem device with
dynamic-memslots=on, resized by QMP (qom-set requested-size) to 1 GiB, 4
GiB and back to 0, while the guest's virtio_mem driver plugs and unplugs.

At each size the device and the guest agree on it, and the mapped
memslots are exactly those holding the guest's plugged blocks. Run by
tests/deb/install-test.sh; prints PASS/FAIL lines and "N passed, N
failed".
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "lib"))
# pylint: disable=wrong-import-position
from results import Results  # noqa: E402
from vmemguest import (QEMU, GiB, TiB, VMemGuest,  # noqa: E402
                       covered_memslots, size_str)


def main():
    res = Results()
    print(f"    QEMU: {QEMU}")
    workdir = tempfile.mkdtemp(prefix="vmem-installed-")
    with VMemGuest(workdir, 1 * TiB, True, name="installed") as g:
        info = g.info()
        offsets = g.memslot_offsets()
        sizes = [b - a for a, b in zip(offsets, offsets[1:])]
        res.check(info.get("memslots", 0) > 1 and not g.mapped_memslots(),
                  f"1 TiB device: {info.get('memslots')} memslots of "
                  f"{size_str(min(sizes))} to {size_str(max(sizes))}, none "
                  "mapped at boot", f"{info}")
        for target in (1 * GiB, 4 * GiB, 0):
            g.resize(target)
            g.wait_size(target, timeout=120)
            spans = g.guest_report()[1]
            want = covered_memslots(spans, g.info()["memaddr"], offsets)
            got = set(g.mapped_memslots())
            res.check(got == want, f"{size_str(target) if target else '0'} "
                      f"plugged by the guest: {len(got)} memslots mapped, "
                      "those holding its blocks",
                      f"mapped {sorted(got)}, holding blocks {sorted(want)}")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
