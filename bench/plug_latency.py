#!/usr/bin/env python3
"""Plug and unplug latency with a real Linux guest, per QEMU and mode.

Boots Debian's kernel under TCG with a virtio-mem device on each QEMU and
times 0 -> 1 GiB, 1 -> 64 GiB and 64 GiB -> 0: from the QMP qom-set until
the device's size reached the target, and until the guest's MemTotal
agreed. QEMU traces every virtio-mem request (log backend, timestamps in
microseconds): the handling time of a request is the time from its
"request" trace event to its "send_response" event. For ours with dynamic
memslots, requests that mapped or unmapped a memslot are told apart (the
map/unmap events between the two), which gives the cost of one memslot
map/unmap (one memory transaction commit) as the number of mapped memslots
grows, with the q35 machine's usual address spaces and with 24 more PCI
devices (each has an address space of its own for bus-master DMA that
every commit updates).

TCG timings are dominated by the emulated guest; the point is to compare
the QEMUs side by side and to see what mapping memslots on demand adds.
"""

import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from peers import peers, save_jsonl  # noqa: E402
from vmemguest import GiB, TiB, VMemGuest, size_str  # noqa: E402

SIZES = [64 * GiB, 1 * TiB]
STEPS = [1 * GiB, 64 * GiB, 0]
EXTRA_PCI = 24
TRACE_RE = re.compile(r"^\d+@(\d+)\.(\d+):virtio_mem_(\w+)")


def requests(trace_file):
    """[(duration in us, kind, memslot events, mapped after)] per request."""
    out, start, kind, events, mapped = [], None, None, 0, 0
    with open(trace_file, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = TRACE_RE.match(line)
            if not m:
                continue
            t = int(m.group(1)) * 1000000 + int(m.group(2))
            ev = m.group(3)
            if ev in ("plug_request", "unplug_request", "unplug_all_request",
                      "state_request"):
                start, kind, events = t, ev[:-len("_request")], 0
            elif ev in ("map_memslot", "unmap_memslot"):
                events += 1
                mapped += 1 if ev == "map_memslot" else -1
            elif ev == "send_response" and start is not None:
                out.append((t - start, kind, events, mapped))
                start = None
    return out


def run(peer, size, workdir, extra_pci=0):
    name = f"{peer.name.replace(' ', '_')}-{size // GiB}G-{extra_pci}"
    trace = os.path.join(workdir, f"{name}.trace")
    args = list(peer.args) + ["-msg", "timestamp=on", "-D", trace,
                              "-trace", "virtio_mem_*"]
    for i in range(extra_pci):
        args += ["-device", f"virtio-rng-pci,id=rng{i}"]
    times = []
    with peer:
        g = VMemGuest(workdir, size, bool(peer.dynamic), qemu=peer.binary,
                      name=name, extra_args=args,
                      dynamic_prop=peer.dynamic is not None)
        t0 = time.monotonic()
        g.start()
    boot = time.monotonic() - t0
    try:
        for target in STEPS:
            t0 = time.monotonic()
            g.resize(target)
            g.wait(lambda t=target: g.plugged() == t, 600,
                   f"the device's size to reach {size_str(target)}")
            device = time.monotonic() - t0
            g.wait_size(target, timeout=600)
            times.append((device, time.monotonic() - t0))
    finally:
        g.stop()
    return boot, times, requests(trace)


def us(values):
    return f"{statistics.median(values):.0f} µs" if values else "–"


def latency_table(results):
    steps = ["0"] + [size_str(s) for s in STEPS]
    cols = [f"{a} → {b}" for a, b in zip(steps, steps[1:])]
    print("Plug/unplug latency with a real Linux 6.1 guest under TCG: from "
          "qom-set until the device's size reached the target / until the "
          "guest's MemTotal agreed. Requests: median handling time inside "
          "QEMU of the guest's plug and unplug requests (trace events), and "
          "their number.\n")
    print("| device | QEMU | boot | " + " | ".join(cols) +
          " | plug requests | unplug requests |")
    print("|---|---|---:|" + "---:|" * len(cols) + "---:|---:|")
    for (size, name), (boot, times, reqs) in results.items():
        plug = [d for d, k, _, _ in reqs if k == "plug"]
        unplug = [d for d, k, _, _ in reqs if k == "unplug"]
        print(f"| {size_str(size)} | {name} | {boot:.1f} s | " +
              " | ".join(f"{d:.2f} / {g:.2f} s" for d, g in times) +
              f" | {us(plug)} ({len(plug)}) | {us(unplug)} ({len(unplug)}) |")


def map_cost_table(runs):
    print("\nCost of mapping or unmapping a memslot, ours on, 1 TiB device "
          "(256 memslots of 4 GiB): median handling time of the guest's "
          "requests that did not change the memory map, and of those that "
          "mapped or unmapped one memslot, by the memslots mapped after "
          "the request; with the machine's own address spaces and with "
          f"{EXTRA_PCI} more PCI devices.\n")
    print("| PCI devices added | memslots mapped | requests without map "
          "change | requests that mapped/unmapped one memslot |")
    print("|---:|---|---:|---:|")
    for extra, reqs in runs:
        for lo, hi in ((0, 4), (5, 8), (9, 16)):
            same = [d for d, k, e, m in reqs
                    if k in ("plug", "unplug") and e == 0 and lo <= m <= hi]
            one = [d for d, k, e, m in reqs
                   if k in ("plug", "unplug") and e == 1 and lo <= m <= hi]
            print(f"| {extra} | {lo}–{hi} | {us(same)} ({len(same)}) | "
                  f"{us(one)} ({len(one)}) |")


def main():
    results, map_runs = {}, []
    with tempfile.TemporaryDirectory(prefix="vmem-bench-") as workdir:
        for size in SIZES:
            for peer in peers():
                boot, times, reqs = run(peer, size, workdir)
                if not reqs:
                    raise RuntimeError(f"{peer.name}: no request traced")
                results[(size, peer.name)] = (boot, times, reqs)
                if size == 1 * TiB and peer.name == "ours on":
                    map_runs.append((0, reqs))
        ours_on = [p for p in peers() if p.name == "ours on"][0]
        map_runs.append((EXTRA_PCI,
                         run(ours_on, 1 * TiB, workdir, EXTRA_PCI)[2]))
    save_jsonl("plug_latency", [
        {"size": size, "qemu": name, "boot_s": boot,
         "steps": [{"target": t, "device_s": d, "guest_s": g}
                   for t, (d, g) in zip(STEPS, times)],
         "requests": [{"us": d, "kind": k, "memslot_events": e,
                       "mapped": m} for d, k, e, m in reqs]}
        for (size, name), (boot, times, reqs) in results.items()] + [
        {"map_cost_extra_pci": extra,
         "requests": [{"us": d, "kind": k, "memslot_events": e,
                       "mapped": m} for d, k, e, m in reqs]}
        for extra, reqs in map_runs])
    latency_table(results)
    map_cost_table(map_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
