#!/usr/bin/env python3
"""The memory device memslot budget next to real vhost-user devices.

A vhost-user backend (tests/lib/vhost_user_stub.py) tells QEMU how many
memory slots it supports; vhost-user-blk-pci devices and memory devices
(pc-dimm, virtio-mem-pci with dynamic-memslots=on) are hot-plugged over
QMP in different orders, and the test checks what QEMU accepts, refuses
(with which error) and decides (query-memory-devices' memslots).

Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
from results import Results  # noqa: E402
from vhost_user_stub import GET_MAX_MEM_SLOTS, VhostUserStub  # noqa: E402
from vmemguest import GiB, MiB, QEMU, QEMUMachine  # noqa: E402

DEVICE_MEMORY = 64 * GiB + 1 * GiB


class Machine:
    """A stopped pc machine with room for memory devices, driven by QMP."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.stubs = []
        self.vm = QEMUMachine(QEMU, base_temp_dir=workdir, sock_dir=workdir,
                              args=["-M", "pc", "-accel", "tcg", "-S",
                                    "-nodefaults", "-m",
                                    f"1G,slots=8,maxmem="
                                    f"{(1 * GiB + DEVICE_MEMORY) // MiB}M"])
        self.vm.launch()
        self.n = 0

    def close(self):
        self.vm.shutdown()
        for stub in self.stubs:
            stub.close()

    def qmp(self, cmd, **args):
        return self.vm.qmp(cmd, **args)

    def add_vhost(self, memslots, **props):
        """Hot-plug a vhost-user-blk device; the QMP response."""
        self.n += 1
        path = os.path.join(self.workdir, f"vu{self.n}.sock")
        stub = VhostUserStub(path, memslots)
        self.stubs.append(stub)
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

    def add_virtio_mem(self, size):
        r = self.add_memory("virtio-mem-pci", size, **{
            "dynamic-memslots": True, "block-size": 2 * MiB})
        return r, f"md{self.n}"

    def memslots(self, dev_id):
        for d in self.qmp("query-memory-devices")["return"]:
            if d["data"].get("id") == dev_id:
                return d["data"].get("memslots")
        return None

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
    res.check("return" in r and m.memslots(dev) == 1,
              "with a vhost backend below 509 memslots, virtio-mem decides "
              "on 1 memslot", f"{r} memslots={m.memslots(dev)}")


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
    res.check("vhost backend memory slots limit (128) is less than 509" in
              error(r) and "plug vhost devices before such memory devices"
              in error(r), "a 128-memslot vhost device plugged after it is "
              "refused, saying what to do", r)
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
                            counts_survive_vhost_unplug)]:
            case(res, workdir, name, body)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
