#!/usr/bin/env python3
"""The memory device memslot budget next to real vhost-user devices.

A vhost-user backend (tests/lib/vhost_user_stub.py) tells QEMU how many
memory slots it supports; vhost-user-blk-pci devices and memory devices
(pc-dimm, virtio-mem-pci with dynamic-memslots=on) are hot-plugged over
QMP in different orders, or cold-plugged on the command line, and the
test checks what QEMU accepts, refuses (with which error, what it warns)
and decides (query-memory-devices' memslots) against a model of the
rules (memslot_limit() below), also for a random sequence of plugs and
unplugs that checks after every step that what memory devices use and
reserve fits every vhost device's limit. A vhost-user NIC gives up only
when its backend cannot map the reserved memslots; a backend that drops a
connection is connected to again.

The Debian host scenarios: a vhost-net-like backend with 64 regions,
libvhost-user's 32, DPDK's 8 and a 509 one, before and after a 1 TiB
virtio-mem device. Every machine traces virtio_mem_decided_memslots: the
limit a device was handed is checked against the model, and the layout
it made of it (memslot count, smallest and largest memslot) against
tests/lib/layout.py, growing memslots by default and upstream's equal
ones with equal-memslots=on.

Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import os
import random
import re
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import layout  # noqa: E402
from results import Results  # noqa: E402
from vhost_user_stub import GET_MAX_MEM_SLOTS, VhostUserStub  # noqa: E402
from vmemguest import (GiB, MiB, TiB, QEMU, QEMUMachine,  # noqa: E402
                       size_str)

DEVICE_MEMORY = 64 * GiB + 1 * GiB
SOFT_LIMIT, SAFE_MAX, MIN_SHARED = 256, 509, 4
SINGLE_WARNING = ("virtio-mem '{id}': 'dynamic-memslots' uses a single "
                  "memory slot: a vhost backend offers only {limit} memory "
                  "slots (for vhost-net, add 'options vhost "
                  "max_mem_regions=509' to a file in /etc/modprobe.d/ and "
                  "reload the vhost modules or reboot; other vhost backends "
                  "have options of their own)")
REFUSED = ("vhost backend memory slots limit ({limit}) is less than the "
           "memory slots in use ({used}) plus those reserved by memory "
           "devices ({reserved}); plug vhost devices before memory devices "
           "that use several memory slots (e.g., virtio-mem with "
           "dynamic-memslots), or raise the backend's limit")
DECIDED_RE = re.compile(r"virtio_mem_decided_memslots limit=(\d+) "
                        r"nb_memslots=(\d+) layout=(\w+) "
                        r"min_size=0x([0-9a-f]+) max_size=0x([0-9a-f]+)")


def memslot_budget(max_limit):
    """All that memory devices that decide may require together."""
    if max_limit >= SAFE_MAX:
        return SOFT_LIMIT
    return max_limit // 4 if max_limit // 4 >= MIN_SHARED else 0


# pylint: disable=too-many-arguments
def memslot_limit(max_limit, free, required, reserved, size, unused):
    """The limit the memory device core hands a deciding device."""
    cap = memslot_budget(max_limit)
    if not cap or required >= cap or free <= reserved:
        return 1
    budget = min(cap - required, free - reserved)
    if size >= unused:
        return budget
    return max(budget * size // unused, 1)


def virtio_mem_memslots(size, limit, block=2 * MiB, equal=False):
    """How many memslots the device's layout uses."""
    return len(layout.layout(size, block, limit, equal)) - 1


def layout_sizes(size, limit, block=2 * MiB, equal=False):
    """(memslots, smallest, largest) of the model's layout."""
    offsets = layout.layout(size, block, limit, equal)
    sizes = [b - a for a, b in zip(offsets, offsets[1:])]
    return len(sizes), min(sizes), max(sizes)


def decisions(log):
    """[(limit, memslots, layout name, smallest, largest)] that the trace
    event virtio_mem_decided_memslots printed, in order."""
    return [(int(lim), int(n), name, int(lo, 16), int(hi, 16))
            for lim, n, name, lo, hi in DECIDED_RE.findall(log)]


class Machine:
    """A stopped pc machine with room for memory devices, driven by QMP.

    @cold: (memslots, extra args) -> stubs to start and the arguments that
    cold-plug devices on the command line.
    """

    def __init__(self, workdir, device_memory=DEVICE_MEMORY, extra=(),
                 launch=True):
        self.workdir = workdir
        self.stubs = []
        self.n = 0
        self.vm = QEMUMachine(QEMU, base_temp_dir=workdir, sock_dir=workdir,
                              args=["-M", "pc", "-accel", "tcg", "-S",
                                    "-nodefaults", "-cpu",
                                    "qemu64,phys-bits=48", "-m",
                                    f"1G,slots=8,maxmem="
                                    f"{(1 * GiB + device_memory) // MiB}M",
                                    "-trace", "virtio_mem_decided_memslots",
                                    *extra])
        if launch:
            self.vm.launch()

    def stub(self, memslots):
        """A listening backend; its chardev path."""
        self.n += 1
        path = os.path.join(self.workdir, f"vu{self.n}.sock")
        self.stubs.append(VhostUserStub(path, memslots))
        return path

    def close(self):
        try:
            self.vm.shutdown()
        finally:
            for stub in self.stubs:
                stub.close()

    def qmp(self, cmd, **args):
        return self.vm.qmp(cmd, **args)

    def add_vhost(self, memslots, **props):
        """Hot-plug a vhost-user-blk device; the QMP response."""
        path = self.stub(memslots)
        stub = self.stubs[-1]
        r = self.qmp("chardev-add", id=f"vu{self.n}",
                     backend={"type": "socket", "data": {
                         "addr": {"type": "unix", "data": {"path": path}},
                         "server": False}})
        assert "return" in r, r
        r = self.qmp("device_add", driver="vhost-user-blk-pci",
                     id=f"vublk{self.n}", chardev=f"vu{self.n}", **props)
        # the backend was really asked for its limit
        assert GET_MAX_MEM_SLOTS in stub.requests, stub.requests
        return r

    def add_memory(self, driver, size, shared=False, **props):
        self.n += 1
        backend = "memory-backend-memfd" if shared else "memory-backend-ram"
        extra = {} if shared else {"reserve": False}
        r = self.qmp("object-add", **{"qom-type": backend,
                                      "id": f"mem{self.n}", "size": size},
                     **extra)
        assert "return" in r, r
        return self.qmp("device_add", driver=driver, id=f"md{self.n}",
                        memdev=f"mem{self.n}", **props)

    def add_virtio_mem(self, size, **props):
        r = self.add_memory("virtio-mem-pci", size, **{
            "dynamic-memslots": True, "block-size": 2 * MiB, **props})
        return r, f"md{self.n}"

    def info(self, dev_id):
        for d in self.qmp("query-memory-devices")["return"]:
            if d["data"].get("id") == dev_id:
                return d["data"]
        return {}

    def memslots(self, dev_id):
        return self.info(dev_id).get("memslots")

    def memory_devices(self):
        return len(self.qmp("query-memory-devices")["return"])


def error(r):
    return r.get("error", {}).get("desc", "")


def case(res, workdir, name, body):
    m = Machine(workdir)
    try:
        body(m, res)
    except AssertionError as e:
        res.check(False, f"{name}: set-up", repr(e))
    finally:
        m.close()


def small_vhost_first(m, res):
    r = m.add_vhost(32)
    res.check("return" in r, "a vhost-user backend with 32 memslots plugs",
              r)
    r, dev = m.add_virtio_mem(64 * GiB)
    want = virtio_mem_memslots(64 * GiB, memslot_limit(
        32, 32, 0, 0, 64 * GiB, DEVICE_MEMORY))
    res.check("return" in r and m.memslots(dev) == want == 7,
              "with a 32-memslot vhost backend, a 64 GiB virtio-mem decides "
              "on 7 memslots (its share of a quarter of 32)",
              f"{r} memslots={m.memslots(dev)}")


def big_vhost_first(m, res):
    r = m.add_vhost(509)
    res.check("return" in r, "a vhost-user backend with 509 memslots plugs",
              r)
    r, dev = m.add_virtio_mem(64 * GiB)
    # 509 is usable in full only without vhost-user's old 256-slot cap
    res.check("return" in r and m.memslots(dev) == 64,
              "with a 509-memslot vhost backend, a 64 GiB virtio-mem decides "
              "on 64 memslots of 1 GiB", f"{r} memslots={m.memslots(dev)}")


def vhost_after_deciding_device(m, res):
    r, dev = m.add_virtio_mem(64 * GiB)
    res.check("return" in r and m.memslots(dev) == 64,
              "without vhost, a 64 GiB virtio-mem decides on 64 memslots",
              f"{r} memslots={m.memslots(dev)}")
    r = m.add_vhost(32)
    res.check("vhost backend memory slots limit (32) is less than the memory"
              " slots in use (0) plus those reserved by memory devices (64)"
              in error(r), "a 32-memslot vhost device plugged after it is "
              "refused: it could not map the 64 reserved memslots", r)
    r = m.add_vhost(128)
    res.check("return" in r, "a 128-memslot vhost device plugged after it "
              "is accepted: the 64 reserved memslots fit", r)
    r = m.add_vhost(509)
    res.check("return" in r, "a 509-memslot vhost device plugged after it "
              "is accepted", r)


def memory_devices_beyond_vhost_limit(m, res):
    m.add_vhost(4)
    results = [m.add_memory("pc-dimm", 128 * MiB, shared=True)
               for _ in range(5)]
    res.check(all("return" in r for r in results[:4]),
              "4 shared-memory DIMMs fit a 4-memslot vhost-user backend",
              results[:4])
    res.check(error(results[4]) == "a used vhost backend has no free memory"
              " slots left" and m.memory_devices() == 4,
              "the 5th DIMM is refused with QEMU 7.2's message", results[4])


def full(m, res, what):
    """A 4-memslot vhost-user backend is full: another DIMM is refused."""
    r = m.add_memory("pc-dimm", 128 * MiB, shared=True)
    n = m.memory_devices()
    res.check(error(r) == "a used vhost backend has no free memory slots"
              " left" and n == 4, f"after {what}, a 5th DIMM is still "
              "refused: the 4-memslot backend is full", f"{r} devices={n}")


def fill_four(m, res):
    results = [m.add_memory("pc-dimm", 128 * MiB, shared=True)
               for _ in range(4)]
    assert all("return" in r for r in results), results
    full(m, res, "4 DIMMs")


def counts_survive_refused_vhost(m, res):
    m.add_vhost(4)
    fill_four(m, res)
    r = m.add_vhost(2)
    res.check(error(r).endswith("vhost backend memory slots limit is less"
                                " than current number of present memory"
                                " slots"),
              "a 2-memslot vhost device is refused with QEMU 7.2's message",
              r)
    full(m, res, "the refused vhost device")


def counts_survive_vhost_unplug(m, res):
    m.add_vhost(4)
    r = m.add_vhost(8, addr="0x9")
    assert "return" in r, r
    vublk = f"vublk{m.n}"
    fill_four(m, res)
    # pc's ACPI PCI hotplug: request, then eject slot 9 of bus 0 as the
    # guest's ACPI code would (PCI_SEL_BASE 0xae10, PCI_EJ_BASE 0xae08)
    r = m.qmp("device_del", id=vublk)
    assert "return" in r, r
    for cmd in ["o /w 0xae10 0", f"o /w 0xae08 {1 << 9:#x}"]:
        r = m.qmp("human-monitor-command", **{"command-line": cmd})
        assert r == {"return": ""}, r
    assert m.vm.event_wait("DEVICE_DELETED", timeout=30,
                           match={"data": {"device": vublk}}), "not ejected"
    full(m, res, "hot-unplugging the 8-memslot vhost device")


def vhost_below_used_plus_reserved(m, res):
    for _ in range(2):
        m.add_memory("pc-dimm", 128 * MiB, shared=True)
    # one memslot, not mapped (nothing plugged): reserved
    r, dev = m.add_virtio_mem(512 * MiB)
    res.check("return" in r and m.memslots(dev) == 1,
              "a 512 MiB virtio-mem uses 1 memslot", r)
    r = m.add_vhost(2)
    res.check("vhost backend memory slots limit (2) is less than the memory "
              "slots in use (2) plus those reserved by memory devices (1)"
              in error(r), "a vhost device below used + reserved memslots is "
              "refused with the numbers", r)
    r = m.add_vhost(3)
    res.check("return" in r, "a vhost device with used + reserved memslots "
              "is accepted", r)


def vhost_user_net_refused(m, res, drop_first=0):
    """A vhost-user NIC that cannot map the reserved memslots: an error,
    not a netdev_add that retries forever (7.2's loop reconnected to the
    backend without end), also when the backend dropped the connection
    before (the wait for a connection connected again by itself)."""
    r, dev = m.add_virtio_mem(64 * GiB)
    assert "return" in r and m.memslots(dev) == 64, r
    m.n += 1
    path = os.path.join(m.workdir, f"vu{m.n}.sock")
    stub = VhostUserStub(path, 32, drop_first=drop_first)
    m.stubs.append(stub)
    r = m.qmp("chardev-add", id="vn", backend={"type": "socket", "data": {
        "addr": {"type": "unix", "data": {"path": path}}, "server": False}})
    assert "return" in r, r
    answer = []
    t = threading.Thread(target=lambda: answer.append(
        m.qmp("netdev_add", type="vhost-user", id="net0", chardev="vn")),
        daemon=True)
    t.start()
    t.join(30)
    what = ("a 32-region vhost-user NIC after a device with 64 memslots" +
            (" (the backend drops the first connection)" if drop_first
             else ""))
    if t.is_alive():
        m.vm.kill()
        res.check(False, f"{what} is refused", "netdev_add did not answer "
                  f"in 30 s; {stub.connections} connections")
        return
    log = stderr_of(m)
    why = REFUSED.format(limit=32, used=0, reserved=64)
    res.check(error(answer[0]) == "vhost-user backend 'vn' could not be "
              f"started: {why}" and log.count(why) == 1 and
              stub.connections == drop_first + 1,
              f"{what} is refused at once, with the numbers on QMP and "
              "stderr", f"{answer} {log} {stub.connections} connections")


def vhost_user_net_refused_after_drop(m, res):
    vhost_user_net_refused(m, res, drop_first=1)


def vhost_user_net_reconnects(m, res):
    """Only the memslots make the NIC give up: a backend that drops the
    first connection is connected to again, memory devices or not."""
    r, dev = m.add_virtio_mem(64 * GiB)
    assert "return" in r and m.memslots(dev) == 64, r
    m.n += 1
    path = os.path.join(m.workdir, f"vu{m.n}.sock")
    stub = VhostUserStub(path, 509, drop_first=1)
    m.stubs.append(stub)
    r = m.qmp("chardev-add", id="vn", backend={"type": "socket", "data": {
        "addr": {"type": "unix", "data": {"path": path}}, "server": False}})
    assert "return" in r, r
    r = m.qmp("netdev_add", type="vhost-user", id="net0", chardev="vn")
    res.check("return" in r and stub.connections == 2,
              "a 509-region vhost-user NIC whose backend drops the first "
              "connection is connected to again next to a device with 64 "
              "memslots", f"{r}, {stub.connections} connections")


# -- Debian 12 hosts: vhost limits below 509 --------------------------------

def one_tib_limit(limit):
    """The limit a 1 TiB device (all of device memory) is handed."""
    return memslot_limit(limit, limit, 0, 0, 1 * TiB, 1 * TiB)


def one_tib_after(limit, equal=False):
    """The memslots a 1 TiB device (all of device memory) decides on."""
    return virtio_mem_memslots(1 * TiB, one_tib_limit(limit), equal=equal)


def decided_as_model(res, log, what, size, limit, equal=False):
    """The device's traced decision: the model's limit and layout."""
    got = decisions(log)
    n, lo, hi = layout_sizes(size, limit, equal=equal)
    want = (limit, n, layout.layout_name(size, 2 * MiB, limit, equal), lo,
            hi)
    res.check(got[:1] == [want],
              f"{what}: the trace says limit {limit}, {want[2]} layout of "
              f"{n} memslots of {size_str(lo)} to {size_str(hi)} "
              "(tests/lib/layout.py)", f"traced {got}, model {want}")


def stderr_of(m):
    m.vm.shutdown()
    return m.vm.get_log() or ""


def debian_vhost_net(m, res):
    """64 regions (vhost-net's default): a limit of 16, 15 growing
    memslots; later 64 and 32 fit."""
    assert "return" in m.add_vhost(64)
    r, dev = m.add_virtio_mem(1 * TiB)
    want = one_tib_after(64)
    info = m.info(dev)
    res.check("return" in r and one_tib_limit(64) == 16 and
              info.get("memslots") == want == 15 and
              (info.get("min-memslot-size"), info.get("max-memslot-size")) ==
              layout_sizes(1 * TiB, 16)[1:] == (1 * GiB, 128 * GiB),
              "64-region vhost present: a 1 TiB virtio-mem gets a limit of "
              "16 (a quarter of 64) and decides on 15 growing memslots of "
              "1 GiB to 128 GiB", f"{r} {info}")
    res.check("memslots-limited-by" not in info,
              "  and reports no limit", info)
    for limit in (64, 32):
        r = m.add_vhost(limit)
        res.check("return" in r, f"  a {limit}-region vhost device "
                  f"hot-plugged after it is accepted ({want} reserved fit)",
                  r)
    r = m.add_vhost(8)
    res.check(error(r) == REFUSED.format(limit=8, used=0, reserved=want),
              "  an 8-region one is refused with the numbers and what to "
              "do", r)
    decided_as_model(res, stderr_of(m), "  64-region vhost, 1 TiB", 1 * TiB,
                     16)


def debian_vhost_net_equal(m, res):
    """The same with equal-memslots=on: upstream's 16 of 64 GiB."""
    assert "return" in m.add_vhost(64)
    r, dev = m.add_virtio_mem(1 * TiB, **{"equal-memslots": True})
    info = m.info(dev)
    res.check("return" in r and info.get("memslots") ==
              one_tib_after(64, equal=True) == 16 and
              info.get("min-memslot-size") == info.get("max-memslot-size") ==
              64 * GiB,
              "64-region vhost present: a 1 TiB virtio-mem with "
              "equal-memslots=on decides on 16 memslots of 64 GiB",
              f"{r} {info}")
    r = m.add_vhost(8)
    res.check(error(r) == REFUSED.format(limit=8, used=0, reserved=16),
              "  an 8-region vhost device is refused: 16 reserved", r)
    decided_as_model(res, stderr_of(m), "  64-region vhost, 1 TiB, equal",
                     1 * TiB, 16, equal=True)


def debian_virtiofsd(m, res):
    """32 regions (libvhost-user, Debian's C virtiofsd): 8 memslots."""
    assert "return" in m.add_vhost(32)
    r, dev = m.add_virtio_mem(1 * TiB)
    res.check("return" in r and m.memslots(dev) == one_tib_after(32) == 8,
              "32-region vhost-user present: a 1 TiB virtio-mem decides on "
              "8 memslots", f"{r} {m.info(dev)}")
    r = m.add_vhost(32)
    res.check("return" in r, "  a second 32-region device hot-plugged after "
              "it is accepted", r)


def dpdk(m, res):
    """8 regions (DPDK): one memslot, and QEMU says why, once."""
    assert "return" in m.add_vhost(8)
    r, dev = m.add_virtio_mem(1 * TiB)
    info = m.info(dev)
    warning = SINGLE_WARNING.format(id=dev, limit=8)
    res.check("return" in r and info.get("memslots") == one_tib_after(8) == 1,
              "8-region vhost present: a 1 TiB virtio-mem uses 1 memslot",
              f"{r} {info}")
    res.check(warning.split(": ", 2)[2] == info.get("memslots-limited-by"),
              "  query-memory-devices says why (memslots-limited-by)", info)
    hmp = m.qmp("human-monitor-command",
                **{"command-line": "info memory-devices"})["return"]
    res.check("memslots-limited-by: a vhost backend offers only 8" in hmp,
              "  so does info memory-devices", hmp)
    # a small device that would use one memslot anyway: no warning
    r, small = m.add_virtio_mem(1 * GiB)
    assert "return" in r, r
    log = stderr_of(m)
    res.check(log.count(warning) == 1 and log.count("single memory slot") == 1,
              "  QEMU warns once on stderr, with the remedy; not for a 1 GiB "
              "device", log)


def budget_used_up(m, res):
    """The last memslot of a 64-region host's budget: said, not silent.
    The 64 GiB device takes its whole share of 15 with equal memslots
    (growing ones would cover it with 14 and leave 2)."""
    assert "return" in m.add_vhost(64)
    r, big = m.add_virtio_mem(64 * GiB, **{"equal-memslots": True})
    assert "return" in r and m.memslots(big) == 15, (r, m.info(big))
    r, dev = m.add_virtio_mem(4 * GiB)
    info = m.info(dev)
    why = info.get("memslots-limited-by", "")
    log = stderr_of(m)
    res.check("return" in r and info.get("memslots") == 1 and
              why.startswith("its share of the 1 memory slot that memory "
                             "devices may still use is 1; a vhost backend "
                             "limits them (for vhost-net") and
              f"virtio-mem '{dev}': 'dynamic-memslots' uses a single memory "
              f"slot: {why}" in log,
              "64-region vhost, a 64 GiB device took 15 of the 16 memslots: "
              "a 4 GiB device gets 1 and says why (QMP and stderr)",
              f"{r} why={why!r} log={log}")


def refused_device_says_nothing(m, res):
    """A device refused after its decision warns about nothing."""
    assert "return" in m.add_vhost(0)
    r, _ = m.add_virtio_mem(64 * GiB)
    log = stderr_of(m)
    res.check(error(r) == "a used vhost backend has no free memory slots "
              "left" and "single memory slot" not in log,
              "a 0-region vhost backend: the virtio-mem device is refused "
              "with QEMU 7.2's message, and no warning about its memslots",
              f"{r} {log}")


def vhost_509(m, res):
    """509 regions: upstream's limit of 256; growing memslots use 205."""
    assert "return" in m.add_vhost(509)
    r, dev = m.add_virtio_mem(1 * TiB)
    info = m.info(dev)
    res.check("return" in r and one_tib_limit(509) == 256 and
              info.get("memslots") == one_tib_after(509) == 205 and
              (info.get("min-memslot-size"), info.get("max-memslot-size")) ==
              layout_sizes(1 * TiB, 256)[1:] == (1 * GiB, 8 * GiB),
              "509-region vhost present: a 1 TiB virtio-mem gets upstream "
              "QEMU's limit of 256 and decides on 205 growing memslots of "
              "1 to 8 GiB", f"{r} {info}")
    decided_as_model(res, stderr_of(m), "  509-region vhost, 1 TiB", 1 * TiB,
                     256)


def vhost_509_equal(m, res):
    """equal-memslots=on: 256 memslots of 4 GiB, as upstream QEMU."""
    assert "return" in m.add_vhost(509)
    r, dev = m.add_virtio_mem(1 * TiB, **{"equal-memslots": True})
    info = m.info(dev)
    res.check("return" in r and
              info.get("memslots") == one_tib_after(509, equal=True) == 256
              and info.get("min-memslot-size") ==
              info.get("max-memslot-size") == 4 * GiB,
              "509-region vhost present: a 1 TiB virtio-mem with "
              "equal-memslots=on decides on 256 memslots of 4 GiB, as "
              "upstream QEMU", f"{r} {info}")
    decided_as_model(res, stderr_of(m), "  509-region vhost, 1 TiB, equal",
                     1 * TiB, 256, equal=True)


def cold_plugged(workdir, res):
    """The same decisions and refusals for devices on the command line."""
    for limit in (64, 32, 8):
        want = one_tib_after(limit)
        m = Machine(workdir, 1 * TiB, launch=False)
        path = m.stub(limit)
        m.vm.add_args(
            "-chardev", f"socket,id=vu,path={path}",
            "-device", "vhost-user-blk-pci,chardev=vu",
            "-object", f"memory-backend-ram,id=m0,size={1 * TiB},reserve=off",
            "-device", "virtio-mem-pci,id=vm0,memdev=m0,dynamic-memslots=on")
        try:
            m.vm.launch()
            got = m.memslots("vm0")
            log = stderr_of(m)
            res.check(got == want and
                      (limit != 8 or SINGLE_WARNING.format(id="vm0", limit=8)
                       in log),
                      f"cold-plugged, vhost ({limit} regions) first: 1 TiB "
                      f"virtio-mem decides on {want}", f"{got}; {log}")
            decided_as_model(res, log, f"  cold-plugged, {limit} regions",
                             1 * TiB, one_tib_limit(limit))
        finally:
            m.close()
    # the other order: the memory device reserved 15, an 8-region fails
    m = Machine(workdir, 1 * TiB, launch=False)
    paths = [m.stub(64), m.stub(8)]
    m.vm.add_args(
        "-chardev", f"socket,id=vu1,path={paths[0]}",
        "-device", "vhost-user-blk-pci,chardev=vu1",
        "-object", f"memory-backend-ram,id=m0,size={1 * TiB},reserve=off",
        "-device", "virtio-mem-pci,id=vm0,memdev=m0,dynamic-memslots=on",
        "-chardev", f"socket,id=vu2,path={paths[1]}",
        "-device", "vhost-user-blk-pci,chardev=vu2")
    m.vm.set_qmp_monitor(False)
    try:
        m.vm.launch()
        m.vm.wait(timeout=60)
        rc, log = m.vm.exitcode(), m.vm.get_log() or ""
    finally:
        for stub in m.stubs:
            stub.close()
    res.check(rc == 1 and REFUSED.format(limit=8, used=0,
                                         reserved=one_tib_after(64)) in log,
              "cold-plugged, an 8-region vhost device after the 1 TiB "
              "device: QEMU refuses to start with the numbers",
              f"exit {rc}: {log}")


class Model:
    """What QEMU should accept and decide: vhost limits, memory devices."""

    def __init__(self, space):
        self.space = space
        self.vhost = {}        # id -> limit
        self.devices = {}      # id -> (size, memslots, kind)

    def used_region(self):
        return sum(size for size, _, _ in self.devices.values())

    def required(self):
        return sum(n for _, n, _ in self.devices.values())

    def max_limit(self):
        return min(self.vhost.values(), default=1 << 32)

    def used(self):
        """What vhost-user maps: fd-backed regions, the shared DIMMs."""
        return sum(1 for _, _, k in self.devices.values() if k == "dimm")

    def reserved(self):
        return self.required() - self.used()

    def fits(self, required):
        """Room in every vhost device for @required more memslots."""
        return all(self.used() + self.reserved() + required <= lim
                   for lim in self.vhost.values())


def eject(m, dev, slot):
    """pc's ACPI PCI hotplug: request, then eject as the guest would."""
    r = m.qmp("device_del", id=dev)
    assert "return" in r, r
    for cmd in ["o /w 0xae10 0", f"o /w 0xae08 {1 << slot:#x}"]:
        r = m.qmp("human-monitor-command", **{"command-line": cmd})
        assert r == {"return": ""}, r
    assert m.vm.event_wait("DEVICE_DELETED", timeout=30,
                           match={"data": {"device": dev}}), "not ejected"


def random_sequence(workdir, res, seed, steps=60):
    """Random vhost and memory device plugs and unplugs against the model."""
    rnd = random.Random(seed)
    space = 2 * TiB
    m = Machine(workdir, space)
    model = Model(space)
    slots = {}                 # PCI device id -> slot
    free_slots = list(range(3, 31))
    problems = []
    try:
        for step in range(steps):
            what = rnd.choice(["vhost", "vhost", "dimm", "vmem", "vmem",
                               "unplug", "unplug"])
            if what == "unplug" and slots:
                dev = rnd.choice(sorted(slots))
                eject(m, dev, slots[dev])
                free_slots.append(slots.pop(dev))
                model.vhost.pop(dev, None)
                model.devices.pop(dev, None)
            elif what == "vhost" and len(model.vhost) < 4:
                limit = rnd.choice([509, 64, 32, 8])
                ok = model.used() + model.reserved() <= limit
                slot = free_slots.pop(0)
                r = m.add_vhost(limit, addr=f"{slot:#x}")
                if ok != ("return" in r):
                    problems.append(f"step {step}: vhost {limit}: {r}, "
                                    f"model says {ok}")
                if "return" in r:
                    model.vhost[f"vublk{m.n}"] = limit
                    slots[f"vublk{m.n}"] = slot
                else:
                    free_slots.insert(0, slot)
            elif what == "dimm" and model.used() < 6:
                ok = model.fits(1) and model.used_region() + GiB <= space
                r = m.add_memory("pc-dimm", 1 * GiB, shared=True)
                if ok != ("return" in r):
                    problems.append(f"step {step}: DIMM: {r}, model {ok}")
                if "return" in r:
                    model.devices[f"md{m.n}"] = (1 * GiB, 1, "dimm")
            elif what == "vmem":
                size = rnd.choice([16 * GiB, 64 * GiB, 256 * GiB, 1 * TiB])
                unused = space - model.used_region()
                free = min((lim - model.used() for lim in model.vhost.values()),
                           default=1 << 32)
                limit = memslot_limit(model.max_limit(), max(free, 0),
                                      model.required(), model.reserved(),
                                      size, unused)
                n = virtio_mem_memslots(size, limit)
                ok = size <= unused and model.fits(n)
                slot = free_slots.pop(0)
                r, dev = m.add_virtio_mem(size, addr=f"{slot:#x}", **{
                    "unplugged-inaccessible": "on"})
                got = m.memslots(dev) if "return" in r else None
                if "return" in r:
                    slots[dev] = slot
                else:
                    free_slots.insert(0, slot)
                # unplugs leave holes: a fitting size may find no place
                # (not the budget's business), the model stays as it was
                if "fragmented" in error(r):
                    continue
                if ok != ("return" in r) or (ok and got != n):
                    problems.append(f"step {step}: virtio-mem {size >> 30} "
                                    f"GiB: {r} memslots {got}, model "
                                    f"{ok} {n}")
                if "return" in r:
                    model.devices[dev] = (size, got, "vmem")
            # the invariant QEMU keeps: what is used and reserved fits
            if not model.fits(0):
                problems.append(f"step {step}: the model broke the "
                                f"invariant: {model.__dict__}")
    finally:
        m.close()
    res.check(not problems, f"random sequence (seed {seed}, {steps} plugs "
              "and unplugs, "
              f"{len(model.vhost)} vhost and {len(model.devices)} memory "
              "devices at the end): every answer and memslot count as the "
              "model says, used + reserved within every vhost limit",
              "\n".join(problems))


def main():
    res = Results()
    with tempfile.TemporaryDirectory(prefix="vmem-vhost-") as workdir:
        for name, body in [("small vhost first", small_vhost_first),
                           ("509 vhost first", big_vhost_first),
                           ("vhost after deciding device",
                            vhost_after_deciding_device),
                           ("memory devices beyond vhost limit",
                            memory_devices_beyond_vhost_limit),
                           ("vhost below used + reserved",
                            vhost_below_used_plus_reserved),
                           ("counts survive a refused vhost device",
                            counts_survive_refused_vhost),
                           ("counts survive a vhost hot-unplug",
                            counts_survive_vhost_unplug),
                           ("vhost-user NIC refused",
                            vhost_user_net_refused),
                           ("vhost-user NIC refused after a dropped "
                            "connection", vhost_user_net_refused_after_drop),
                           ("vhost-user NIC reconnects",
                            vhost_user_net_reconnects)]:
            case(res, workdir, name, body)
        for name, body in [("Debian host: vhost-net", debian_vhost_net),
                           ("Debian host: vhost-net, equal memslots",
                            debian_vhost_net_equal),
                           ("Debian host: virtiofsd", debian_virtiofsd),
                           ("DPDK", dpdk), ("509", vhost_509),
                           ("509, equal memslots", vhost_509_equal),
                           ("budget used up", budget_used_up),
                           ("refused device", refused_device_says_nothing)]:
            # DPDK's case adds a small device next to the 1 TiB one
            m = Machine(workdir, {dpdk: 1 * TiB + 1 * GiB,
                                  budget_used_up: 68 * GiB}.get(body, 1 * TiB))
            try:
                body(m, res)
            except AssertionError as e:
                res.check(False, f"{name}: set-up", repr(e))
            finally:
                m.close()
        cold_plugged(workdir, res)
        seed = int(os.environ.get("VHOST_TEST_SEED", random.randrange(1 << 30)))
        print(f"# random sequence seed {seed} (VHOST_TEST_SEED replays it)")
        random_sequence(workdir, res, seed)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
