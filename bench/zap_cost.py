#!/usr/bin/env python3
"""What deleting a memslot costs the rest of a running KVM guest.

On x86 before Linux 6.12 (and later unless KVM_X86_QUIRK_SLOT_ZAP_ALL is
disabled), deleting a memslot zaps the page tables of the whole VM: every
vCPU faults its memory back in. Dynamic memslots delete one whenever the
guest unplugs the last block of one. A running KVM guest is needed, which
this host's KVM (kvm_pvm) cannot run, so this runs on the nested KVM host
of bench/kvm_metadata.py (Debian's kernel under TCG, kvm_amd with NPT,
kvm.tdp_mmu=1, SMM off).

The inner guest (the test guest, 2 GiB boot memory, 2 vCPUs, a 64 GiB
device: 1 GiB memslots) runs bench/nested/memhot.c from an initramfs
appended to the test guest's: it writes one byte per page of 512 MiB of
boot memory, over and over, and reports its passes every second. The
host plugs 4 GiB, waits for five reports of steady state, then unplugs
it all: ours and upstream 10.0.2 delete the 4 memslots on the way, stock
7.2 none. The table gives how much longer memhot's passes took during
the unplug than in the steady state before it ("lost"), and the slowest
pass. Stock's figure is what the unplug costs the guest anyway (page
migration, offlining); the difference is the memslots'.

Raw records: bench/results/zap_cost.jsonl; the table on stdout
(bench/run.sh writes it to bench/results/zap_cost.md). Fails if a
measurement could not be taken, never on a number. Environment:
ZAP_HOT_MIB (512), ZAP_PLUG_GIB (4), ZAP_REPEAT (3 rounds).
"""

import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from kvm_metadata import (KERNEL, KVMHOST, STOCK_QEMU, WORK,  # noqa: E402
                          guest_kernel, load, run_kvm_host)
from peers import RESULTS, TOP  # noqa: E402
from vmemguest import INITRD, GiB, size_str  # noqa: E402
from need import need  # noqa: E402

PEERS = ["stock 7.2", "upstream 10.0 on", "ours on"]
DEVICE = 64 * GiB
HOT_MIB = int(os.environ.get("ZAP_HOT_MIB", "512"))
PLUG = int(os.environ.get("ZAP_PLUG_GIB", "4")) * GiB
REPEAT = int(os.environ.get("ZAP_REPEAT", "3"))
# vmemhot=MiB on the kernel command line reaches init as an environment
# variable (no /proc to read yet)
HOTINIT = """#!/bin/busybox sh
# bench/zap_cost.py: memhot first, then the test guest's own /init (a
# job in the background needs /dev/null; /init mounts /dev again)
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/memhot "$vmemhot" &
exec /init
"""


def hot_initrd():
    """The test guest's initramfs with memhot and /hotinit appended."""
    out = os.path.join(WORK, "zap")
    root = os.path.join(out, "root")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(root, "bin"))
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Werror", "-o",
                    os.path.join(root, "bin", "memhot"),
                    os.path.join(TOP, "bench", "nested", "memhot.c")],
                   check=True)
    with open(os.path.join(root, "hotinit"), "w", encoding="ascii") as f:
        f.write(HOTINIT)
    os.chmod(os.path.join(root, "hotinit"), 0o755)
    # the kernel unpacks concatenated archives in order
    files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=root,
                           capture_output=True, text=True, check=True).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                          input=files.encode(), capture_output=True,
                          check=True).stdout
    extra = subprocess.run(["gzip", "-9"], input=cpio, capture_output=True,
                           check=True).stdout
    path = os.path.join(out, "initrd-hot.img")
    with open(path, "wb") as f, open(INITRD, "rb") as base:
        f.write(base.read())
        f.write(extra)
    return path


def runs(initrd):
    """REPEAT rounds of every peer, interleaved: a drift of the machine's
    pace spreads over all of them."""
    return [{"kind": "zap", "peer": peer, "smm": "off", "size": DEVICE,
             "plug": PLUG, "hot": HOT_MIB, "initrd": initrd, "round": n}
            for n in range(REPEAT) for peer in PEERS]


def spread(values, fmt):
    """median (min-max) of values, formatted."""
    values = sorted(values)
    mid = statistics.median(values)
    if len(values) == 1:
        return fmt(mid)
    return f"{fmt(mid)} ({fmt(values[0])}–{fmt(values[-1])})"


def delta(r, stat):
    before, after = r["kvm_before"].get(stat), r["kvm_after"].get(stat)
    return None if before is None or after is None else after - before


def report(recs):
    zaps = {}
    for r in recs:
        if r["kind"] == "zap":
            zaps.setdefault(r["peer"], []).append(r)
    missing = [p for p in PEERS if p not in zaps]
    if missing:
        raise RuntimeError(f"zap_cost: no measurement of {missing}")
    rounds = min(len(v) for v in zaps.values())
    thp = sorted({r["thp"] for v in zaps.values() for r in v})
    lines = ["## Unplug cost to the rest of a running KVM guest (nested KVM)",
             "",
             f"bench/zap_cost.py: the KVM host is Debian's {guest_kernel()} "
             "kernel under TCG (kvm_amd, NPT, kvm.tdp_mmu=1, SMM off, "
             f"transparent huge pages: {', '.join(thp)}); the inner guest "
             f"(2 vCPUs, 2 GiB boot memory, a {size_str(DEVICE)} device) "
             f"keeps {HOT_MIB} MiB of boot memory hot "
             "(bench/nested/memhot.c: a write per page, passes reported "
             f"every second) while it unplugs {size_str(PLUG)}. Faults: "
             "what KVM fixed during the unplug (debugfs pf_fixed; after a "
             "zap the guest's working set faults back in); mappings: "
             "KVM's 2 MiB / 4 KiB mappings after it. Lost: how much longer "
             "memhot's passes took, by the wall clock, during the unplug "
             "than at the steady pace just before it (negative: the steady "
             "pace was the slower). Stock 7.2 deletes no memslot, so its "
             "figures are what the unplug costs the guest anyway. Median "
             f"(min–max) of {rounds} rounds, the peers interleaved.", "",
             "| QEMU | memslots deleted | unplug took | faults | "
             "mappings 2M / 4K | lost | slowest pass |",
             "|---|---|---|---|---|---|---|"]
    for peer in PEERS:
        rs = zaps[peer]
        faults = [delta(r, "pf_fixed") for r in rs]
        maps = [f"{r['kvm_after'].get('pages_2m')} / "
                f"{r['kvm_after'].get('pages_4k')}" for r in rs]
        lines.append(
            f"| {peer} | {spread([r['removed'] for r in rs], '{:g}'.format)} | "
            f"{spread([r['unplug_s'] for r in rs], lambda v: f'{v:.1f} s')} | "
            + (spread(faults, "{:.0f}".format) if None not in faults
               else "not read") + " | " + ", ".join(maps) + " | "
            + spread([r["excess_us"] / 1e6 for r in rs],
                     lambda v: f"{v:.1f} s") + " | "
            + spread([r["max_us"] / 1000 for r in rs],
                     lambda v: f"{v:.0f} ms") + " |")
    return lines + [""]


def main():
    need("gcc", "build-essential", "cpio", "cpio", "gzip", "gzip")
    for f in (STOCK_QEMU, KERNEL, KVMHOST, INITRD):
        if not os.path.exists(f):
            raise SystemExit(f"zap_cost: {f} is missing (scripts/guest.sh)")
    os.makedirs(RESULTS, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    raw = os.path.join(WORK, "zap_cost.jsonl")
    open(raw, "w", encoding="utf-8").close()
    run_kvm_host(1, runs(hot_initrd()), raw, name="zap")
    recs = load(raw)
    lines = report(recs)
    shutil.copy(raw, os.path.join(RESULTS, "zap_cost.jsonl"))
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--report":
        print("\n".join(report(load(sys.argv[2]))))
    else:
        main()
