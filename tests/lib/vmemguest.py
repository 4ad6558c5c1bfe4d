"""A real Linux guest with a virtio-mem device, driven over QMP.

The guest (scripts/guest.sh) boots Debian's kernel under TCG; its /init
loads the virtio_mem driver and prints "GUEST: MemTotal=<kB>
virtio_mem=[ <start>-<end> ... ]" on the serial console whenever what the
driver added changes. When a module does not load it prints "GUEST: FATAL:
<insmod's message>" and powers off: every wait here stops at once on that
line, or when QEMU exits, with the guest's message (GuestError). QMP goes
through the base tree's python/qemu machine class.
"""

import bisect
import json
import os
import re
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(TOP, "build")
sys.path.insert(0, os.path.join(BUILD, "qemu", "python"))

# pylint: disable=wrong-import-position
from qemu.machine import QEMUMachine  # noqa: E402

# VMEM_QEMU: another build of ours (check-asan.sh runs the sanitized one)
QEMU = os.environ.get("VMEM_QEMU") or \
    os.path.join(BUILD, "qemu-build", "qemu-system-x86_64")
KERNEL = os.path.join(BUILD, "guest", "vmlinuz")
# VMEM_INITRD: another initramfs (tests/test-guest-fails-fast.py)
INITRD = os.environ.get("VMEM_INITRD") or \
    os.path.join(BUILD, "guest", "initrd.img")

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
BASE_RAM = 2 * GiB
GUEST_RE = re.compile(r"GUEST: MemTotal=(\d+) virtio_mem=\[ ([0-9a-f\- ]*)\]")
FATAL_RE = re.compile(r"^GUEST: FATAL: (.*)$", re.M)
ALIAS_RE = re.compile(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio \d+, \w+\): "
                      r"alias memslot-(\d+) @")
FLAT_RE = re.compile(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio \d+, \w+\): "
                     r"(\S+)( @[0-9a-f]+)?$")


class GuestError(Exception):
    """The guest or QEMU did not do what was expected; carries context."""


def guest_fatal(serial_text):
    """The guest's own message if its /init gave up ("GUEST: FATAL:")."""
    m = FATAL_RE.search(serial_text)
    return m.group(1).strip() if m else None


def size_str(size):
    if not size:
        return "0"
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size / GiB:.2f} GiB"


class VMemGuest:
    """One VM: base RAM, one virtio-mem device "vm0" with backend "vmem0"."""

    # unplugged_inaccessible: "on", "off" or None (not given: "auto");
    # device_props: more properties of the device ("equal-memslots=on")
    # pylint: disable=too-many-arguments,too-many-locals
    def __init__(self, workdir, size, dynamic, qemu=QEMU, name="vm",
                 block_size=2 * MiB, extra_args=(), dynamic_prop=True,
                 accel="tcg", machine="q35", base_ram=BASE_RAM, wrapper=(),
                 kernel=None, initrd=None, unplugged_inaccessible="on",
                 append="", early_args=(), device_props=()):
        self.size = size
        self.dynamic = dynamic
        self.qemu = qemu
        self.kernel, self.initrd = kernel or KERNEL, initrd or INITRD
        self.workdir = workdir
        self.serial_log = os.path.join(workdir, f"{name}-serial.log")
        dev = (f"virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,"
               f"block-size={block_size}")
        if unplugged_inaccessible:
            dev += f",unplugged-inaccessible={unplugged_inaccessible}"
        if dynamic_prop:
            dev += f",dynamic-memslots={'on' if dynamic else 'off'}"
        for prop in device_props:
            dev += f",{prop}"
        args = [
            "-machine", machine, "-accel", accel, "-nodefaults", "-no-reboot",
            "-cpu", "qemu64,phys-bits=48", "-smp", "1",
            "-m", f"{base_ram // MiB}M,maxmem={(base_ram + size) // MiB}M",
            "-kernel", self.kernel, "-initrd", self.initrd,
            "-append", "console=ttyS0 panic=-1 quiet "
                       "memhp_default_state=online_movable " + append,
            *early_args,     # devices realized before the virtio-mem device
            "-object", f"memory-backend-ram,id=vmem0,size={size},reserve=off",
            "-device", dev,
            "-serial", f"file:{self.serial_log}",
            *extra_args,
        ]
        self.vm = QEMUMachine(qemu, args=args, name=name, wrapper=wrapper,
                              base_temp_dir=workdir, sock_dir=workdir)
        self.base_memtotal = None

    # -- life cycle -------------------------------------------------------
    def start(self, timeout=60):
        for path, how in ((self.qemu, "make qemu"),
                          (self.kernel, "scripts/guest.sh"),
                          (self.initrd, "scripts/guest.sh")):
            if not os.path.exists(path):
                raise GuestError(f"{path} is missing: run {how}")
        self.vm.launch()
        self.wait(lambda: self.guest_report() is not None,
                  timeout, "the guest to boot and report")
        self.base_memtotal = self.guest_report()[0]

    def stop(self):
        try:
            self.vm.shutdown(timeout=10)
        except Exception:  # pylint: disable=broad-except
            self.vm.kill()

    def check_alive(self):
        """Raise GuestError at once if the guest gave up or QEMU exited."""
        fatal = guest_fatal(self.serial())
        if fatal is None and self.vm.is_running():
            return
        # the guest powers off after its message: a moment for QEMU to
        # exit by itself and the console to show the kernel's last words
        deadline = time.monotonic() + 5
        while self.vm.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        status = self.vm.exitcode()
        try:
            self.vm.shutdown(timeout=10)   # collects QEMU's own output
        except Exception:  # pylint: disable=broad-except
            pass
        qemu_out = (self.vm.get_log() or "").strip()
        if fatal is not None:
            what = f"the guest failed: {fatal}"
        else:
            what = f"QEMU exited (status {status})"
        raise GuestError(f"{what}\n{self.context()}" +
                         (f"\nQEMU's output:\n{qemu_out}" if qemu_out else ""))

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- what the guest says ----------------------------------------------
    def serial(self):
        try:
            with open(self.serial_log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def guest_report(self):
        """(MemTotal in bytes, [(start, end)]) of the last report, or None."""
        reports = GUEST_RE.findall(self.serial())
        if not reports:
            return None
        memtotal, ranges = reports[-1]
        spans = []
        for r in ranges.split():
            start, end = (int(x, 16) for x in r.split("-"))
            spans.append((start, end + 1))
        return int(memtotal) * KiB, spans

    def guest_added(self):
        """Bytes the guest's MemTotal grew by since boot (None before its
        first report: a migration destination's guest reports its next
        change)."""
        report = self.guest_report()
        return report[0] - self.base_memtotal if report else None

    # -- what QEMU says ---------------------------------------------------
    def qmp(self, cmd, **args):
        try:
            r = self.vm.qmp(cmd, **args)
        except Exception:
            self.check_alive()   # a dead guest or QEMU says why
            raise
        if "error" in r:
            raise GuestError(f"QMP {cmd} {args}: {r['error']}")
        return r["return"]

    def hmp(self, line):
        return self.qmp("human-monitor-command",
                        **{"command-line": line}).replace("\r\n", "\n")

    def info(self):
        devs = [d["data"] for d in self.qmp("query-memory-devices")
                if d["type"] == "virtio-mem"]
        return devs[0]

    def memslot_size(self, idx=0):
        return self.qmp("qom-get", property="size",
                        path="/machine/peripheral/vm0/virtio-backend/"
                             f"memslot-{idx}[0]")

    def memslot_offsets(self):
        """The layout: [offset of memslot i] + [device size], from QOM."""
        offsets = [0]
        for idx in range(self.info()["memslots"]):
            offsets.append(offsets[-1] + self.memslot_size(idx))
        return offsets

    def plugged(self):
        return self.qmp("qom-get", path="vm0", property="size")

    def resize(self, requested):
        self.qmp("qom-set", path="vm0", property="requested-size",
                 value=requested)

    def _mtree_block(self, flat):
        return mtree_memory_block(self.hmp("info mtree -f" if flat
                                           else "info mtree"), flat)

    def mapped_memslots(self):
        """{index: (gpa start, gpa end)} of the memslot aliases mapped."""
        return mapped_memslots(self.hmp("info mtree"))

    def flat_backend_ranges(self):
        """[(start, end)] of the flat view's ranges of the backend."""
        ranges = []
        for line in self._mtree_block(True):
            m = FLAT_RE.match(line)
            if m and m.group(3) == "vmem0":
                ranges.append((int(m.group(1), 16), int(m.group(2), 16) + 1))
        return ranges

    # -- waiting ------------------------------------------------------------
    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if cond():
                return
            if time.monotonic() > deadline:
                raise GuestError(f"timed out after {timeout} s waiting for "
                                 f"{what}\n{self.context()}")
            time.sleep(0.05)

    def wait_size(self, target, timeout=60):
        """Until the device's size and the guest's MemTotal reach target."""
        self.wait(lambda: self.plugged() == target and
                  self.guest_added() == target, timeout,
                  f"plugged size {size_str(target)}")

    def context(self):
        tail = "\n".join(self.serial().splitlines()[-15:])
        if not self.vm.is_running():
            return f"serial log tail:\n{tail}"
        try:
            state = json.dumps(self.info(), sort_keys=True)
        except Exception as e:  # pylint: disable=broad-except
            state = f"(QMP failed: {e})"
        return f"serial log tail:\n{tail}\nQMP query-memory-devices: {state}"


def mtree_memory_block(hmp_output, flat=False):
    """The lines of (flat) info mtree about address space "memory".

    Address spaces with the same root share one block: a header line
    each, then the tree (or flat view), then an empty line.
    """
    out = hmp_output.replace("\r\n", "\n").split("\n")
    if flat:
        start = next(i for i, l in enumerate(out)
                     if l.startswith(' AS "memory",'))
    else:
        start = out.index("address-space: memory")
        while out[start].startswith("address-space:"):
            start += 1
    end = out.index("", start)
    return out[start:end]


def mapped_memslots(tree):
    """{index: (gpa start, gpa end)} of the memslot aliases in info mtree."""
    slots = {}
    for line in mtree_memory_block(tree):
        m = ALIAS_RE.match(line)
        if m:
            slots[int(m.group(3))] = (int(m.group(1), 16),
                                      int(m.group(2), 16) + 1)
    return slots


def memslot_at(offsets, offset):
    """The index of the memslot of the layout `offsets` that holds offset."""
    return bisect.bisect_right(offsets, offset) - 1


def covered_memslots(spans, addr, offsets):
    """Indexes of the memslots (layout `offsets`, as memslot_offsets()
    gives it) that the guest's spans touch."""
    idx = set()
    for start, end in spans:
        first = memslot_at(offsets, start - addr)
        last = memslot_at(offsets, end - 1 - addr)
        idx.update(range(first, last + 1))
    return idx
