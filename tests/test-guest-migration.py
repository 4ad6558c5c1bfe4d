#!/usr/bin/env python3
"""Live migration of a real guest between Debian's QEMU 7.2 and ours.

A Debian 12 guest (TCG) with a 64 GiB virtio-mem device plugs 512 MiB and
writes a 32 MiB random pattern into a tmpfs file (movable pages: the
hot-plugged memory); its /init prints the file's md5sum every ~2 s. The VM
then hops, each hop a live migration over a UNIX socket:

  chain "stock": Debian's qemu-system-x86 7.2 (installed by package name,
    no dynamic-memslots property) -> ours, dynamic-memslots=on -> stock;
  chain "legacy": ours on -> ours off -> ours on.

unplugged-inaccessible is never given: "auto" resolves to "off" for
anonymous memory everywhere (legacy mode). For every hop: the plugged
memory's bytes (QMP pmemsave of what the guest added) are identical on the
paused source and the paused destination; a destination with dynamic
memslots maps exactly what the rule says (memslots overlapping the usable
region or holding plugged blocks), one without maps the backend whole; the
guest carries on there (a new md5sum line equal to the first) and plugs
512 MiB more. Before the first hop, a destination that does not match
(ours on with unplugged-inaccessible=on) must refuse the stream with our
message and exit, and the stock source must keep running (return-path).

Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import hashlib
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
from results import Results  # noqa: E402
from stockqemu import STOCK, stock_problem  # noqa: E402
from vmemguest import (QEMU, GiB, MiB, GuestError,  # noqa: E402
                       VMemGuest, covered_memslots, size_str)

DEVICE_SIZE = 64 * GiB
BLOCK_SIZE = 2 * MiB
USABLE_EXTENT = 256 * MiB
PATTERN_MIB = 32
FIRST_PLUG = 512 * MiB
CHAINS = {"stock": ["stock", "on", "stock"], "legacy": ["on", "off", "on"]}
MISMATCH_MSG = ("virtio-mem: the guest negotiated 'unplugged-inaccessible=off'"
                " with the source, but the destination has "
                "'unplugged-inaccessible=on'")
WRITTEN_RE = re.compile(r"^GUEST: pattern written (\w+)", re.M)
CHECK_RE = re.compile(r"^GUEST: pattern check (\d+) (\w+)", re.M)


def usable_region(requested):
    size = min(DEVICE_SIZE, requested + USABLE_EXTENT) if requested else 0
    return -(-size // BLOCK_SIZE) * BLOCK_SIZE


def launch(kind, workdir, name, incoming=None, ui=None):
    extra = ["-incoming", incoming] if incoming else []
    return VMemGuest(workdir, DEVICE_SIZE, kind == "on",
                     qemu=STOCK if kind == "stock" else QEMU,
                     name=name, dynamic_prop=kind != "stock",
                     unplugged_inaccessible=ui, extra_args=extra,
                     append=f"vmem.pattern={PATTERN_MIB}")


def last_check(g):
    checks = CHECK_RE.findall(g.serial())
    return (int(checks[-1][0]), checks[-1][1]) if checks else (0, None)


def wait_new_check(g, after, timeout=60):
    """The md5sum of the guest's first check after check number @after."""
    found = []

    def newer():
        n, s = last_check(g)
        if n > after:
            found[:] = [s]
        return bool(found)
    g.wait(newer, timeout, "the guest's next pattern check")
    return found[0]


def set_return_path(g):
    g.qmp("migrate-set-capabilities",
          capabilities=[{"capability": "return-path", "state": True}])


def wait_migration(g, states, timeout=120):
    seen = []

    def done():
        seen[:] = [g.qmp("query-migrate").get("status")]
        return seen[0] in states
    g.wait(done, timeout, f"migration status in {states}")
    return seen[0]


def plugged_hash(g, spans, workdir):
    """sha256 of the guest memory in @spans, read by QEMU (QMP pmemsave)."""
    h = hashlib.sha256()
    path = os.path.join(workdir, "pmem.bin")
    for start, end in spans:
        g.qmp("pmemsave", val=start, size=end - start, filename=path)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        os.unlink(path)
    return h.hexdigest()


def check_mapping(res, g, kind, usable, label, spans):
    addr = g.info()["memaddr"]
    if kind == "on":
        offsets = g.memslot_offsets()
        want = covered_memslots(spans, addr, offsets) | \
            {i for i in range(len(offsets) - 1) if offsets[i] < usable}
        mapped = set(g.mapped_memslots())
        res.check(mapped == want,
                  f"{label}: mapped memslots {sorted(mapped)} as the legacy "
                  f"rule says (usable region {size_str(usable)})",
                  f"want {sorted(want)}\n{g.context()}")
    else:
        flat = g.flat_backend_ranges()
        res.check(flat == [(addr, addr + DEVICE_SIZE)],
                  f"{label}: the backend is mapped whole", f"{flat}")


def try_mismatch(res, src, workdir):
    """A destination with the other setting refuses; the source runs on."""
    uri = f"unix:{workdir}/mismatch.sock"
    bad = launch("on", workdir, "mismatch", incoming=uri, ui="on")
    bad.vm.launch()
    try:
        set_return_path(src)
        set_return_path(bad)
        before = last_check(src)[0]
        src.qmp("migrate", uri=uri)
        status = wait_migration(src, ("failed", "completed"))
        try:
            bad.vm.wait(timeout=30)   # it exits by itself
        except Exception:  # pylint: disable=broad-except
            pass
        bad_status = bad.vm.exitcode()
        log = bad.vm.get_log() or ""
        res.check(status == "failed" and bad_status == 1 and
                  MISMATCH_MSG in log,
                  "stock (auto: off) -> ours on with unplugged-inaccessible="
                  "on: the destination refuses with our message and exits",
                  f"source status {status}, destination exit {bad_status}, "
                  f"its output: {log.strip()}")
        running = src.qmp("query-status")["status"]
        md5 = wait_new_check(src, before)
        res.check(running == "running" and md5 == src.pattern,
                  "the source keeps running, its guest's data intact",
                  f"status {running}, md5 {md5} != {src.pattern}")
    finally:
        if bad.vm.is_running():
            bad.vm.kill()


def hop(res, src, kind, workdir, name, state):
    uri = f"unix:{workdir}/{name}.sock"
    dst = launch(kind, workdir, name, incoming=uri)
    dst.vm.launch()
    try:
        return hop_to(res, src, dst, kind, workdir, uri, state)
    except BaseException:
        dst.stop()
        raise


def hop_to(res, src, dst, kind, workdir, uri, state):
    label = f"{state['label']} -> {kind}"
    dst.base_memtotal = src.base_memtotal
    dst.pattern = src.pattern
    src.qmp("stop")
    spans = src.guest_report()[1]
    before = plugged_hash(src, spans, workdir)
    src.qmp("migrate", uri=uri)
    status = wait_migration(src, ("completed", "failed"))
    dst.wait(lambda: dst.qmp("query-status")["status"] == "paused", 60,
             "the destination to finish the incoming migration")
    after = plugged_hash(dst, spans, workdir)
    res.check(status == "completed" and before == after,
              f"{label}: {size_str(sum(e - s for s, e in spans))} of plugged "
              "memory identical on the destination",
              f"status {status}, sha256 {before} != {after}")
    # the destination's guest reports with its next change: until then
    # the guest holds what it reported on the source
    check_mapping(res, dst, kind, state["usable"], label, spans)
    src.stop()
    dst.qmp("cont")
    md5 = wait_new_check(dst, 0)
    res.check(md5 == src.pattern,
              f"{label}: the guest runs on, its pattern intact ({md5})",
              f"md5 {md5} != {src.pattern}")
    state["requested"] += 512 * MiB
    state["usable"] = max(state["usable"], usable_region(state["requested"]))
    dst.resize(state["requested"])
    dst.wait_size(state["requested"])
    check_mapping(res, dst, kind, state["usable"],
                  f"{label}: plugged {size_str(state['requested'])}",
                  dst.guest_report()[1])
    state["label"] = kind
    return dst


def run_chain(res, chain_name, kinds, workdir):
    state = {"label": kinds[0], "requested": FIRST_PLUG,
             "usable": usable_region(FIRST_PLUG)}
    g = launch(kinds[0], workdir, f"{chain_name}-0")
    try:
        g.start()
        g.resize(FIRST_PLUG)
        g.wait_size(FIRST_PLUG)
        g.wait(lambda: WRITTEN_RE.search(g.serial()), 60,
               "the guest to write its pattern")
        g.pattern = WRITTEN_RE.search(g.serial()).group(1)
        if chain_name == "stock":
            try_mismatch(res, g, workdir)
        for i, kind in enumerate(kinds[1:], 1):
            g = hop(res, g, kind, workdir, f"{chain_name}-{i}", state)
    except (GuestError, OSError) as e:
        res.check(False, f"chain {chain_name} ({' -> '.join(kinds)})", str(e))
    finally:
        g.stop()



def main():
    res = Results()
    problem = stock_problem()
    if problem:
        res.check(False, "Debian's QEMU 7.2 is the oracle", problem)
        return res.finish()
    workdir = tempfile.mkdtemp(prefix="vmem-mig-")
    try:
        for name, kinds in CHAINS.items():
            run_chain(res, name, kinds, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
