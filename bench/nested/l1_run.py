"""Runs inside the KVM host (bench/nested/init): one job of kvm_metadata.py.

The job (JSON) lists runs; each starts one inner QEMU with -accel kvm in a
memory cgroup of its own and writes JSON lines to the job's output file:

- "static" runs start QEMU stopped (-S): the memslots exist once the
  machine is created, no guest code needs to run. A run without the
  virtio-mem device gives the baseline of the same QEMU.
- "zap" runs (bench/zap_cost.py) time a running inner guest's hot memory
  while memslots are deleted: see zap_run();
- "guest" runs boot the real test guest and let its virtio_mem driver plug
  each step's size; the device's metadata at a step is the static metadata
  plus what the cgroup's kernel memory grew by since the guest booted with
  nothing plugged (so the guest's own kernel footprint cancels out).

KVM charges memslot metadata (rmap, gfn_track, lpage_info, dirty bitmaps)
to the memory cgroup of the process creating the memslot
(GFP_KERNEL_ACCOUNT). Small arrays come from kmalloc, large ones from
vmalloc, so /proc/vmallocinfo alone would miss memslots of a few GiB: the
cgroup's "kernel" counter, minus page tables and stacks, sees both.
/proc/vmallocinfo by KVM caller is recorded as well.
"""

import json
import os
import re
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "bench"))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
# pylint: disable=wrong-import-position
from peers import peers  # noqa: E402
from hostkvm import dirty_logging  # noqa: E402
from vmemguest import GiB, MiB, QEMUMachine, VMemGuest  # noqa: E402

# The inner guest keeps the memmap of what it plugs (1.6 %) in boot memory
BASE_RAM = 2 * GiB
# whole lines only: the console log grows byte by byte
HOT_RE = re.compile(r"^HOT: passes=(\d+) total_us=(\d+) max_us=(\d+) "
                    r"wall_us=(\d+)\r?\n", re.M)
KVM_STATS = ("pf_fixed", "pages_4k", "pages_2m", "pages_1g",
             "remote_tlb_flush")
NOT_METADATA = ("kernel_stack", "pagetables", "sec_pagetables", "percpu",
                "sock")


class Cgroup:
    """A memory cgroup that the inner QEMU enters before it execs."""
    count = 0

    def __init__(self):
        Cgroup.count += 1
        self.path = f"/sys/fs/cgroup/run{Cgroup.count}"
        os.mkdir(self.path)
        self.wrapper = ["/bin/sh", "-c",
                        f'echo $$ > {self.path}/cgroup.procs && exec "$@"',
                        "inner-qemu"]

    def kmem(self):
        """Kernel memory charged to the cgroup that is not page tables,
        stacks, per-cpu or socket memory."""
        with open(f"{self.path}/memory.stat", encoding="ascii") as f:
            stat = dict((k, int(v)) for k, v in
                        (line.split() for line in f))
        return stat["kernel"] - sum(stat.get(k, 0) for k in NOT_METADATA)


def kvm_vmalloc():
    """{caller: bytes} of the vmalloc areas that KVM's modules allocated."""
    by_caller = {}
    with open("/proc/vmallocinfo", encoding="ascii") as f:
        for line in f:
            if "[kvm" not in line:
                continue
            fields = line.split()
            caller = fields[2].split("+")[0]
            pages = [int(x[6:]) for x in fields if x.startswith("pages=")]
            by_caller[caller] = by_caller.get(caller, 0) + \
                (pages[0] if pages else 0) * 4096
    return by_caller


def mapped_memslots(peer, g):
    """Memslots of the device in QEMU's memory map."""
    return len(g.mapped_memslots()) if peer.dynamic else 1


def inner_guest(run, peer, cg, extra_args=(), **kwargs):
    workdir = tempfile.mkdtemp(dir="/tmp")
    return VMemGuest(workdir, run["size"], bool(peer.dynamic),
                     qemu=peer.binary, accel="kvm",
                     machine=f"q35,smm={run['smm']}", base_ram=BASE_RAM,
                     wrapper=cg.wrapper, extra_args=peer.args + list(extra_args),
                     dynamic_prop=peer.dynamic is not None, **kwargs)


def baseline_run(run, peer, out):
    """The same QEMU without the virtio-mem device."""
    cg = Cgroup()
    workdir = tempfile.mkdtemp(dir="/tmp")
    args = ["-S", "-machine", f"q35,smm={run['smm']}", "-accel", "kvm",
            "-nodefaults", "-cpu", "qemu64,phys-bits=48", "-smp", "1",
            "-m", f"{BASE_RAM // MiB}M"] + peer.args
    with peer:
        vm = QEMUMachine(peer.binary, wrapper=cg.wrapper, args=args,
                         base_temp_dir=workdir, sock_dir=workdir)
        vm.launch()
    try:
        vm.qmp("query-status")
        out({"kmem": cg.kmem(), "vmalloc": kvm_vmalloc()})
    finally:
        vm.shutdown()


def static_run(run, peer, out):
    """The device with nothing plugged, QEMU stopped before any guest code."""
    cg = Cgroup()
    with peer:
        g = inner_guest(run, peer, cg, ["-S"])
        g.vm.launch()
    try:
        g.qmp("query-status")
        out({"kmem": cg.kmem(), "vmalloc": kvm_vmalloc(),
             "memslots": mapped_memslots(peer, g)})
    finally:
        g.stop()


def guest_run(run, peer, out):
    cg = Cgroup()
    with peer:
        g = inner_guest(run, peer, cg)
        t0 = time.monotonic()
        g.start(timeout=240)
    try:
        booted = cg.kmem()
        out({"kind": "boot", "took": time.monotonic() - t0})
        for step in run["steps"]:
            t0 = time.monotonic()
            g.resize(step)
            g.wait_size(step, timeout=1800)
            rec = {"kind": "step", "plugged": step,
                   "took": time.monotonic() - t0,
                   "kmem_growth": cg.kmem() - booted,
                   "vmalloc": kvm_vmalloc(),
                   "memslots": mapped_memslots(peer, g)}
            if step == run["steps"][-1] and run.get("dirty"):
                rec["dirty_bitmap"] = dirty_logging(g.qmp, cg.kmem, 2)
            out(rec)
    finally:
        g.stop()


def wait_hot(g, since, count, timeout):
    """Where in the guest's console log the count-th memhot report after
    offset since ends."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(HOT_RE.finditer(g.serial(), since))
        if len(found) >= count:
            return found[count - 1].end()
        g.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} memhot reports after offset {since} "
                               f"did not come in {timeout} s")
        time.sleep(0.2)


def hot_window(text, start, end):
    """(passes, microseconds in passes, slowest pass, wall-clock
    microseconds) of memhot's reports in text[start:end]."""
    reports = [tuple(int(x) for x in m.groups())
               for m in HOT_RE.finditer(text, start, end)]
    if not reports or not sum(r[0] for r in reports):
        raise RuntimeError(f"no memhot passes between {start} and {end}")
    return (sum(r[0] for r in reports), sum(r[1] for r in reports),
            max(r[2] for r in reports), sum(r[3] for r in reports))


def kvm_stats():
    """KVM's counters summed over every VM (debugfs, bench/nested/init);
    pages_* are the sizes KVM maps guest memory with right now."""
    stats = {}
    for name in KVM_STATS:
        try:
            with open(f"/sys/kernel/debug/kvm/{name}", encoding="ascii") as f:
                stats[name] = int(f.read())
        except OSError:
            stats[name] = None
    return stats


def thp_setting():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled",
                  encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "absent"


def zap_run(run, peer, out):
    """What deleting memslots costs the rest of a running guest: memhot
    (bench/nested/memhot.c, started by the bench's initramfs) keeps
    run["hot"] MiB of boot memory hot and reports its passes every second,
    while the guest plugs run["plug"] and unplugs it all again. Recorded:
    the faults KVM fixed during the unplug (after a zap every page of the
    guest's working set faults back in) and the page sizes KVM maps with;
    memhot's pace during the unplug's window (from the request until the
    device is empty, plus two reports) against the steady state after the
    plug (five reports). Stock 7.2 never deletes a memslot; its figures
    are what the unplug costs the guest anyway."""
    cg = Cgroup()
    with peer:
        g = inner_guest(run, peer, cg, ["-smp", "2"], initrd=run["initrd"],
                        append=f"rdinit=/hotinit vmemhot={run['hot']}")
    try:
        g.start(timeout=240)
        wait_hot(g, 0, 3, 120)
        g.resize(run["plug"])
        g.wait_size(run["plug"], timeout=1800)
        steady = len(g.serial())
        start = wait_hot(g, steady, 5, 120)
        removed = mapped_memslots(peer, g) if peer.dynamic else 0
        before = kvm_stats()
        t0 = time.monotonic()
        g.resize(0)
        g.wait_size(0, timeout=1800)
        took = time.monotonic() - t0
        after = kvm_stats()
        left = mapped_memslots(peer, g) if peer.dynamic else 0
        if left:
            raise RuntimeError(f"{left} memslots still mapped after the "
                               "unplug")
        end = wait_hot(g, len(g.serial()), 2, 120)
        text = g.serial()
        base = hot_window(text, steady, start)
        win = hot_window(text, start, end)
        pace = base[3] / base[0]        # wall-clock per pass, steady
        out({"kind": "zap", "removed": removed, "unplug_s": took,
             "thp": thp_setting(), "kvm_before": before, "kvm_after": after,
             "base_passes": base[0], "base_us": base[1],
             "base_max_us": base[2], "base_wall_us": base[3],
             "passes": win[0], "window_us": win[1], "max_us": win[2],
             "wall_us": win[3], "excess_us": win[3] - win[0] * pace})
    finally:
        g.stop()


def run_with_retry(run, peer, out):
    """Nested KVM under TCG now and then stalls an inner guest's boot: a
    run that failed is tried once more, and both outcomes are recorded."""
    body = {"baseline": baseline_run, "static": static_run,
            "guest": guest_run, "zap": zap_run}[run["kind"]]
    try:
        body(run, peer, out)
    except Exception as e:  # pylint: disable=broad-except
        out({"kind": "retry", "error": f"{type(e).__name__}: {e}"})
        body(run, peer, out)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    by_name = {p.name: p for p in peers()}
    with open(job["out"], "a", encoding="utf-8") as results:
        for run in job["runs"]:
            peer = by_name[run["peer"]]

            def out(rec, run=run):
                full = dict(run, tdp_mmu=job["tdp_mmu"])
                full.update(rec)
                line = json.dumps(full, sort_keys=True)
                results.write(line + "\n")
                results.flush()
                print("KVMHOST:", line, flush=True)
            try:
                run_with_retry(run, peer, out)
            except Exception as e:  # pylint: disable=broad-except
                out({"kind": "error", "error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
