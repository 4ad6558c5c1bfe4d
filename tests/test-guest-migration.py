#!/usr/bin/env python3
"""Live migration of a real guest between Debian's QEMU 7.2 and ours.

A Debian 12 guest (TCG) with a 1 TiB virtio-mem device plugs 512 MiB and
writes a 32 MiB random pattern into a tmpfs file (movable pages: the
hot-plugged memory); its /init prints the file's md5sum every ~2 s. The VM
then hops, each hop a live migration over a UNIX socket:

  chain "stock": Debian's qemu-system-x86 7.2 (installed by package name,
    no dynamic-memslots property) -> ours, dynamic-memslots=on (growing
    memslots) -> stock;
  chain "legacy": ours on -> ours off -> ours on;
  chain "layouts": ours on (growing memslots: 205 of 1 to 8 GiB) ->
    ours on with equal-memslots=on (upstream's: 256 of 4 GiB) -> ours on,
    with unplugged-inaccessible=on, where the mapped memslots are exactly
    those holding plugged blocks.

(At 1 TiB the two layouts differ; at 64 GiB both are 64 memslots of
1 GiB.) Apart from the chain "layouts", unplugged-inaccessible is never
given: "auto" resolves to "off" for anonymous memory everywhere (legacy
mode). For every hop: the plugged memory's bytes (QMP pmemsave of what the
guest added) are identical on the paused source and the paused
destination; a destination with dynamic memslots has its own layout (the
one tests/lib/layout.py gives for its setting, whatever the source's) and
maps exactly what the mode's rule says with it (memslots holding plugged
blocks, in legacy mode also those overlapping the usable region), and its
mapped-size is the model's; one without maps the backend whole; the guest
carries on there (a new md5sum line equal to the first) and plugs 512 MiB
more. Before the first hop, a destination that does not match (ours on
with unplugged-inaccessible=on) must refuse the stream with our message
and exit, and the stock source must keep running (return-path).

Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import hashlib
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import layout  # noqa: E402
from results import Results  # noqa: E402
from stockqemu import STOCK, stock_problem  # noqa: E402
from vmemguest import (QEMU, MiB, TiB, GuestError,  # noqa: E402
                       VMemGuest, covered_memslots, size_str)

DEVICE_SIZE = 1 * TiB
BLOCK_SIZE = 2 * MiB
USABLE_EXTENT = 256 * MiB
PATTERN_MIB = 32
FIRST_PLUG = 512 * MiB
# the memslot budget of a device that has all of device memory
LIMIT = 256
# name: (kinds of QEMU, unplugged-inaccessible: None is "auto")
CHAINS = {"stock": (["stock", "on", "stock"], None),
          "legacy": (["on", "off", "on"], None),
          "layouts": (["on", "equal", "on"], "on")}
DYNAMIC = ("on", "equal")
LABELS = {"equal": "on,equal-memslots=on"}
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
    return VMemGuest(workdir, DEVICE_SIZE, kind in DYNAMIC,
                     qemu=STOCK if kind == "stock" else QEMU,
                     name=name, dynamic_prop=kind != "stock",
                     unplugged_inaccessible=ui, extra_args=extra,
                     block_size=BLOCK_SIZE,
                     device_props=("equal-memslots=on",) if kind == "equal"
                     else (),
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


def check_layout(res, g, kind, label):
    """A destination lays out its memslots itself: the model's layout for
    its own setting, whatever the source had."""
    offsets = g.memslot_offsets()
    model = layout.layout(DEVICE_SIZE, BLOCK_SIZE, LIMIT, kind == "equal")
    sizes = [b - a for a, b in zip(offsets, offsets[1:])]
    info = g.info()
    name = layout.layout_name(DEVICE_SIZE, BLOCK_SIZE, LIMIT, kind == "equal")
    res.check(offsets == model and
              (info.get("min-memslot-size"), info.get("max-memslot-size")) ==
              (min(sizes), max(sizes)),
              f"{label}: its own layout, {name} memslots: "
              f"{len(offsets) - 1} of {size_str(min(sizes))} to "
              f"{size_str(max(sizes))}, as tests/lib/layout.py says",
              f"{len(offsets) - 1} memslots, model {len(model) - 1}; "
              f"{g.context()}")
    return offsets


def check_mapping(res, g, kind, state, label, spans):
    addr = g.info()["memaddr"]
    usable = state["usable"] if state["legacy"] else 0
    if kind in DYNAMIC:
        offsets = g.memslot_offsets()
        want = covered_memslots(spans, addr, offsets) | \
            {i for i in range(len(offsets) - 1) if offsets[i] < usable}
        mapped = set(g.mapped_memslots())
        model_spans = [(s - addr, e - addr) for s, e in spans]
        if usable:
            model_spans.append((0, usable))
        model = layout.mapped(offsets, model_spans)
        got = g.info().get("mapped-size")
        rule = (f"as the legacy rule says (usable region {size_str(usable)})"
                if state["legacy"] else "exactly those holding plugged blocks")
        res.check(mapped == want and got == model,
                  f"{label}: mapped memslots {sorted(mapped)} "
                  f"({size_str(got)}) of its layout, {rule}",
                  f"want {sorted(want)}, mapped-size {got}, model {model}"
                  f"\n{g.context()}")
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
    dst = launch(kind, workdir, name, incoming=uri, ui=state["ui"])
    dst.vm.launch()
    try:
        return hop_to(res, src, dst, kind, workdir, uri, state)
    except BaseException:
        dst.stop()
        raise


def hop_to(res, src, dst, kind, workdir, uri, state):
    label = f"{state['label']} -> {LABELS.get(kind, kind)}"
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
    if kind in DYNAMIC:
        check_layout(res, dst, kind, label)
    check_mapping(res, dst, kind, state, label, spans)
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
    check_mapping(res, dst, kind, state,
                  f"{label}: plugged {size_str(state['requested'])}",
                  dst.guest_report()[1])
    state["label"] = LABELS.get(kind, kind)
    return dst


def run_chain(res, chain_name, kinds, ui, workdir):
    started = time.monotonic()
    try:
        run_hops(res, chain_name, kinds, ui, workdir)
    finally:
        print(f"# chain {chain_name} ({' -> '.join(kinds)}): "
              f"{time.monotonic() - started:.0f} s")
        sys.stdout.flush()


def run_hops(res, chain_name, kinds, ui, workdir):
    state = {"label": kinds[0], "requested": FIRST_PLUG,
             "usable": usable_region(FIRST_PLUG), "ui": ui,
             "legacy": ui != "on"}
    g = launch(kinds[0], workdir, f"{chain_name}-0", ui=ui)
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
        for name, (kinds, ui) in CHAINS.items():
            run_chain(res, name, kinds, ui, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
