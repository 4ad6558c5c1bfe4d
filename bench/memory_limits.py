#!/usr/bin/env python3
"""The smallest memory limit under which a VM with a virtio-mem device starts.

KVM allocates a memslot's metadata (rmap, gfn_track, lpage_info) with
kernel memory charged to the memory cgroup of the QEMU process: the cgroup
that libvirt's <memtune><hard_limit>, systemd's MemoryMax= and Kubernetes
pods limit. Where host KVM works (tests/lib/hostkvm.py's probe), each QEMU
runs paused (-S) under KVM, nothing plugged, in a memory cgroup of its own
whose limit (memory.limit_in_bytes, v2 memory.max) is bisected: the VM
"starts" under a limit when QEMU answers QMP and query-status says it is
paused (prelaunch) within DEADLINE seconds; it does not when QEMU dies
(the cgroup's OOM killer, an error) or misses the deadline. First a start
under a generous limit (half the available memory) gives the peak usage;
the bisection then runs between 0 and that peak, to RESOLUTION. Side by
side: Debian's stock 7.2, upstream 10.0.2 with dynamic memslots, ours off
and ours on, at 64 GiB, 1 TiB and 16 TiB (MEMORY_LIMITS_SIZES="64G 1T"
measures fewer). The limit includes what QEMU itself needs (its heap,
libraries, the page cache it reads first) besides KVM's metadata; base
RAM is 1 GiB, untouched while paused.

Prints the Markdown tables (bench/run.sh adds the date and command); raw
records go to bench/results/memory_limits.jsonl. Without host KVM this
part says so and measures nothing. Fails only if a measurement could not
be taken. scripts/demo.py reuses smallest_limit().
"""

import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from peers import peers, save_jsonl  # noqa: E402
from host_kvm import (UNITS, WORK, device_args, human,  # noqa: E402
                      machine_args)
import hostkvm  # noqa: E402
from vmemguest import MiB, QEMUMachine, size_str  # noqa: E402

SIZES = [int(s[:-1]) * UNITS[s[-1]] for s in
         os.environ.get("MEMORY_LIMITS_SIZES", "64G 1T 16T").split()]
RESOLUTION = 8 * MiB
DEADLINE = 60           # seconds to QMP and "prelaunch"
# QEMUs that do not fit are killed on purpose: not a warning here
logging.getLogger("qemu.machine").setLevel(logging.ERROR)
PEERS = ("stock 7.2", "upstream 10.0 on", "ours off", "ours on")


def limit_peers():
    """The QEMUs compared here (bench/peers.py): stock, upstream with
    dynamic memslots, ours off and on."""
    return [p for p in peers() if p.name in PEERS]


def start(peer, size, limit):
    """Start peer paused with a size device in a memory cgroup limited to
    limit bytes: (None, peak bytes, kernel bytes) if it started, else
    (why it did not, None, None)."""
    args = ["-S"] + machine_args(size, "kvm") + device_args(peer, size)
    with hostkvm.cgroup(limit) as cg:
        # no core dump when a QEMU that does not fit aborts
        wrapper = ["/bin/sh", "-c", "ulimit -c 0; " + cg.wrapper[2],
                   cg.wrapper[3]]
        with peer:
            vm = QEMUMachine(peer.binary, args=args + peer.args,
                             wrapper=wrapper, base_temp_dir=WORK,
                             sock_dir=WORK, qmp_timer=DEADLINE)
            try:
                vm.launch()
            except Exception as e:  # pylint: disable=broad-except
                log = " ".join((getattr(e, "output", "") or "").split())
                if cg.oom_killed():
                    why = "the cgroup's OOM killer struck"
                elif "Invalid argument" in log:
                    why = "KVM refuses a memslot this large (EINVAL)"
                elif vm.exitcode() is None or vm.exitcode() == 0:
                    why = f"no QMP within {DEADLINE} s"
                else:
                    why = f"exit {vm.exitcode()}: {log[-200:]}"
                return why, None, None
        try:
            status = vm.qmp("query-status")
            if status.get("return", {}).get("status") not in ("prelaunch",
                                                               "paused"):
                return f"query-status: {status}", None, None
            return None, hostkvm.cgroup_peak(cg), cg.kmem()
        finally:
            vm.shutdown()


def smallest_limit(peer, size, resolution=RESOLUTION, log=None):
    """The smallest limit (a multiple of resolution) under which peer
    starts with a size device, by bisection: a dict with "limit", "peak"
    and "kmem" (what it charged without a tight limit), "starts" (QEMUs
    started) and "seconds"; or "failed" (why) if it does not start even
    under half the available memory. log(text) reports each start."""
    t0 = time.monotonic()
    os.makedirs(WORK, exist_ok=True)
    # multiples of resolution throughout, so that every bisection step
    # lands strictly between lo and hi
    generous = hostkvm.available_limit() // resolution * resolution
    rec = {"peer": peer.name, "size": size, "resolution": resolution}
    why, peak, kmem = start(peer, size, generous)
    runs = 1
    if why:
        rec.update(failed=why, limit_tried=generous,
                   seconds=time.monotonic() - t0, starts=runs)
        return rec
    rec.update(peak=peak, kmem=kmem)
    # lo: known not to start (0: nothing does); hi: known to start
    lo, hi = 0, -(-peak // resolution) * resolution
    while True:
        why, _, _ = start(peer, size, hi)
        runs += 1
        if log:
            log(f"{peer.name} {size_str(size)}: {hi >> 20} MiB: "
                f"{why or 'starts'}")
        if not why:
            break
        if hi >= generous:
            # it started under this limit a moment ago: not a limit's doing
            raise RuntimeError(f"{peer.name} {size_str(size)} started under "
                               f"{generous >> 20} MiB once, then not: {why}")
        lo, hi = hi, min(generous, 2 * hi)
    while hi - lo > resolution:
        mid = (lo + hi) // 2 // resolution * resolution
        why, _, _ = start(peer, size, mid)
        runs += 1
        if log:
            log(f"{peer.name} {size_str(size)}: {mid >> 20} MiB: "
                f"{why or 'starts'}")
        if why:
            lo = mid
        else:
            hi = mid
    rec.update(limit=hi, starts=runs, seconds=time.monotonic() - t0)
    return rec


def cell(rec):
    if "failed" in rec:
        return f"does not start: {rec['failed']}"
    return human(rec["limit"])


def tables(recs, kvm):
    by = {(r["peer"], r["size"]): r for r in recs}
    names = [n for n in PEERS if any(r["peer"] == n for r in recs)]
    head = "| device | " + " | ".join(names) + " |"
    rule = "|---|" + "---:|" * len(names)
    lines = ["## Memory limits: the smallest limit under which the VM "
             "starts", "",
             f"On this host's KVM ({kvm.flavour()}, memory cgroup "
             f"v{kvm.cgroup}): a paused QEMU (-S) with base RAM 1 GiB and "
             "one virtio-mem device, nothing plugged, in a memory cgroup "
             "of its own (bench/memory_limits.py). A limit lets the VM "
             "start when QEMU answers QMP and is paused within "
             f"{DEADLINE} s; the smallest such limit, bisected to "
             f"{RESOLUTION // MiB} MiB, is what libvirt's <hard_limit>, "
             "systemd's MemoryMax= or a pod's limit must at least be for "
             "this VM to start (its guest memory and QEMU's needs while "
             "running come on top, see docs/memory-limits.md). Upstream "
             "10.0 runs with dynamic-memslots=on.", "", head, rule]
    for size in SIZES:
        lines.append(f"| {size_str(size)} | " + " | ".join(
            cell(by[(n, size)]) for n in names) + " |")
    lines += ["", "Charged to the cgroup at its peak under a generous "
              "limit (of it kernel memory, KVM's memslot metadata "
              "included, after the start):", "", head, rule]
    for size in SIZES:
        cells = []
        for n in names:
            r = by[(n, size)]
            cells.append("-" if "failed" in r else
                         f"{human(r['peak'])} ({human(r['kmem'])})")
        lines.append(f"| {size_str(size)} | " + " | ".join(cells) + " |")
    starts = sum(r.get("starts", 0) for r in recs)
    secs = sum(r.get("seconds", 0) for r in recs)
    lines += ["", f"{starts} QEMU starts in {secs:.0f} s. \"does not "
              "start\": not even under half the available memory "
              f"({human(max(r.get('limit_tried', 0) for r in recs))}); "
              "the reason follows (a memslot larger than KVM accepts "
              "fails whatever the limit). With dynamic memslots KVM's "
              "share stays a few MiB; what grows with the device is "
              "QEMU's own: three dirty bitmaps (1 bit per 4 KiB page each, "
              "set at start for every RAM block), 96 MiB per TiB, in "
              "every QEMU. The limit also covers page "
              "cache QEMU is first to read (its binary, firmware): on a "
              "host where another process read them first it can be a few "
              "MiB smaller.", ""]
    return lines


def main():
    kvm = hostkvm.probe()
    print(f"_{kvm.describe()}._\n")
    if not kvm.ok:
        print("## Memory limits\n\nNot measured: no usable host KVM "
              f"({kvm.reason}).")
        return 0
    recs = []
    for size in SIZES:
        for peer in limit_peers():
            rec = smallest_limit(peer, size, log=lambda t: print(
                f"memory_limits: {t}", file=sys.stderr, flush=True))
            print(f"memory_limits: {json.dumps(rec, sort_keys=True)}",
                  file=sys.stderr, flush=True)
            recs.append(dict(rec, kvm=kvm.flavour()))
    dynamic = [r for r in recs if "failed" in r and
               r["peer"] in ("upstream 10.0 on", "ours on")]
    if dynamic:
        raise RuntimeError(f"a QEMU with dynamic memslots failed: {dynamic}")
    save_jsonl("memory_limits", recs)
    print("\n".join(tables(recs, kvm)))
    return 0


def report(path):
    """The tables of an earlier run's records (bench/results)."""
    with open(path, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    kvm = hostkvm.probe()
    print(f"_{kvm.describe()}._\n")
    print("\n".join(tables(recs, kvm)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        sys.exit(report(sys.argv[2]))
    sys.exit(main())
