#!/usr/bin/env python3
"""A guest whose driver cannot load fails the run at once, in its own words.

Builds, in a temporary folder, the test guest's initramfs (static busybox,
tests/guest/init) with virtio_pci and virtio_mem but without the modules
virtio_pci depends on: what guest.sh built on a machine without modinfo
(package kmod), where `make demo` then waited for a plug that could never
happen. With it:
- the guest driver (tests/lib/vmemguest.py) stops starting the guest with
  GuestError, not at its boot deadline, and the error carries insmod's own
  message from the guest's console ("unknown symbol");
- the guest powered itself off rather than going on without its driver;
- scripts/demo.py exits non-zero with that message, no traceback.
The initramfs is written here in Python (newc cpio, gzip), so the test
needs no tool but QEMU ($VMEM_QEMU or build/qemu-build) and the guest
kernel that scripts/guest.sh unpacked in build/guest.

Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import glob
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import vmemguest  # noqa: E402
from results import Results  # noqa: E402
from vmemguest import BUILD, TOP, GiB, GuestError, VMemGuest  # noqa: E402

BOOT_TIMEOUT = 60       # the driver's deadline for the guest to report
DEMO_TIMEOUT = 120      # a demo that does not fail at once is cut here


def cpio_newc(entries):
    """A newc cpio archive of [(name, mode, bytes or None for a folder)]."""
    out = bytearray()

    def add(ino, name, mode, data):
        nb = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 2 if data is None else 1, 0,
                  len(data or b""), 0, 0, 0, 0, len(nb), 0)
        out.extend(("070701" + "".join(f"{v:08X}" for v in fields)).encode())
        out.extend(nb)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data or b"")
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data) in enumerate(entries, 1):
        add(ino, name, mode, data)
    add(0, "TRAILER!!!", 0, b"")
    return bytes(out)


def module_depends(path):
    """The depends= of a module's .modinfo (what modinfo -F depends says)."""
    with open(path, "rb") as f:
        m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", f.read())
    return [d for d in (m.group(1).decode().split(",") if m else []) if d]


def broken_initrd(workdir):
    """(path, virtio_pci's dependencies left out) of the broken initramfs."""
    kos = {}
    for name in ("virtio_pci", "virtio_mem"):
        found = glob.glob(f"{BUILD}/guest/linux-image-*/lib/modules/*/"
                          f"kernel/drivers/virtio/{name}.ko")
        if not found:
            raise FileNotFoundError(f"no {name}.ko under {BUILD}/guest: "
                                    "run scripts/guest.sh")
        kos[name] = found[0]
    if not os.path.exists("/bin/busybox"):
        raise FileNotFoundError("/bin/busybox is missing (Debian package "
                                "busybox-static)")
    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    with open(os.path.join(TOP, "tests", "guest", "init"), "rb") as f:
        init = f.read()
    entries = [("bin", 0o40755, None), ("bin/busybox", 0o100755, busybox),
               ("init", 0o100755, init), ("lib", 0o40755, None),
               ("lib/modules", 0o40755, None)]
    for name, ko in kos.items():
        with open(ko, "rb") as f:
            entries.append((f"lib/modules/{name}.ko", 0o100644, f.read()))
    entries.append(("lib/modules/load", 0o100644,
                    b"virtio_pci.ko\nvirtio_mem.ko\n"))
    path = os.path.join(workdir, "initrd-without-deps.img")
    with open(path, "wb") as f:
        f.write(gzip.compress(cpio_newc(entries), compresslevel=1))
    return path, module_depends(kos["virtio_pci"])


def main():
    res = Results()
    with tempfile.TemporaryDirectory(prefix="vmem-fails-fast-") as workdir:
        try:
            initrd, deps = broken_initrd(workdir)
        except FileNotFoundError as e:
            res.check(False, "the initramfs without virtio_pci's "
                      "dependencies is built", str(e))
            return res.finish()
        res.check(bool(deps), "the initramfs leaves out what virtio_pci "
                  f"depends on ({', '.join(deps)})")

        # The guest driver
        vmemguest.INITRD = initrd
        g = VMemGuest(workdir, 1 * GiB, True, name="nodeps")
        t0 = time.monotonic()
        err = None
        try:
            g.start(timeout=BOOT_TIMEOUT)
        except GuestError as e:
            err = str(e)
        except Exception as e:  # pylint: disable=broad-except
            err = f"{type(e).__name__}: {e}"
        finally:
            took = time.monotonic() - t0
            serial = g.serial()
            g.stop()
        res.check(err is not None and "timed out" not in err,
                  f"the guest driver stops with GuestError, not at its "
                  f"{BOOT_TIMEOUT} s deadline (after {took:.1f} s)",
                  err or "start() returned: the guest booted without its "
                  "driver and reported")
        res.check(err is not None and "unknown symbol" in err and
                  "virtio_pci" in err,
                  "the error carries the guest's insmod message",
                  f"error: {err}\nserial log:\n{serial[-1500:]}")
        res.check("Power down" in serial, "the guest powered itself off",
                  f"serial log:\n{serial[-1500:]}")

        # make demo's Python side, with the same initramfs
        env = dict(os.environ, VMEM_INITRD=initrd)
        t0 = time.monotonic()
        try:
            demo = subprocess.run(
                [sys.executable, os.path.join(TOP, "scripts", "demo.py")],
                env=env, capture_output=True, text=True, check=False,
                timeout=DEMO_TIMEOUT)
            rc, out, errout = demo.returncode, demo.stdout, demo.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, errout = None, str(e.stdout or ""), str(e.stderr or "")
        took = time.monotonic() - t0
        res.check(rc not in (0, None) and "unknown symbol" in errout and
                  "Traceback" not in errout,
                  f"scripts/demo.py exits with the guest's message, no "
                  f"traceback (exit {rc}, after {took:.1f} s)",
                  f"stdout:\n{out[-1000:]}\nstderr:\n{errout[-1500:]}")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
