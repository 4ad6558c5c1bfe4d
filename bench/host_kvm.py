#!/usr/bin/env python3
"""KVM memslot metadata of a virtio-mem device, measured on host KVM.

Where /dev/kvm works (tests/lib/hostkvm.py's probe), every QEMU under test
runs paused (-S) under KVM in a memory cgroup of its own; the kernel
memory charged to the cgroup gives what KVM allocated. Side by side in
one run: Debian's stock 7.2, upstream 10.0.2 off and on, ours off and on;
64 GiB, 1 TiB and 16 TiB devices (sparse RAM backends).

- start: each QEMU with the device and without it, paused: the device's
  KVM metadata with nothing plugged and the time until QMP is ready. A
  QEMU that maps the whole device pays for it whatever the guest plugs.
  Its cgroup may charge at most half of the host's available memory, so
  that a device whose metadata does not fit fails inside its cgroup.
- plugged: a real guest under TCG (ours, dynamic-memslots=on) plugs 0, 1,
  4 and 16 GiB with its virtio_mem driver; at each size its state migrates
  into a paused KVM destination of each QEMU with dynamic memslots, and
  into the same QEMU under TCG: the difference of what the two grew by is
  KVM's metadata for the memslots the destination mapped (receiving the
  pages costs both the same page tables).
- dirty logging: calc-dirty-rate (mode=dirty-bitmap) on the paused
  destinations at 16 GiB plugged, and on the paused "off" QEMUs: the
  kernel memory that dirty logging adds (KVM's dirty bitmaps).

What this host cannot run (SMM, the TDP MMU, a running KVM guest) stays
with bench/kvm_metadata.py (KVM nested in a TCG guest). Without host KVM
this part says so and measures nothing. Raw records go to
bench/results/host_kvm.jsonl, the plot to bench/results/host_kvm.png; the
Markdown tables are printed. Fails only if a measurement could not be
taken. HOST_KVM_SIZES="64G 1T" measures fewer device sizes.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from peers import RESULTS, TOP, peers, save_jsonl  # noqa: E402
import hostkvm  # noqa: E402
from need import need  # noqa: E402
from vmemguest import (GiB, MiB, TiB, QEMUMachine,  # noqa: E402
                       VMemGuest, mapped_memslots, size_str)

UNITS = {"G": GiB, "T": TiB}
# HOST_KVM_SIZES="64G 1T": fewer device sizes (default all three)
SIZES = [int(s[:-1]) * UNITS[s[-1]] for s in
         os.environ.get("HOST_KVM_SIZES", "64G 1T 16T").split()]
STEPS = [0, 1 * GiB, 4 * GiB, 16 * GiB]
BASE_RAM = 1 * GiB
MACHINE = "pc-q35-7.2"      # what ours and stock call q35; upstream knows it
WORK = os.path.join(TOP, "build", "bench-host-kvm")


def cpu():
    return f"qemu64,phys-bits=48,vendor={hostkvm.cpu_vendor()}"


def human(n):
    if n is None:
        return "-"
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB"
    if abs(n) >= MiB:
        return f"{n / MiB:.1f} MiB"
    return f"{n / 1024:.0f} KiB"


def machine_args(size, accel):
    return ["-machine", MACHINE, "-accel", accel, "-nodefaults",
            "-cpu", cpu(), "-smp", "1",
            "-m", f"{BASE_RAM // MiB}M,maxmem={(BASE_RAM + size) // MiB}M"]


def device_args(peer, size):
    return ["-object", f"memory-backend-ram,id=vmem0,size={size},reserve=off",
            "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,"
                       "unplugged-inaccessible=on" + peer.device_props()]


def launch(peer, args, cg):
    """A launched QEMUMachine of peer in cg and the seconds to QMP."""
    # no core dump when a QEMU that does not fit aborts
    wrapper = ["/bin/sh", "-c", "ulimit -c 0; " + cg.wrapper[2],
               cg.wrapper[3]]
    with peer:
        vm = QEMUMachine(peer.binary, args=args + peer.args, wrapper=wrapper,
                         base_temp_dir=WORK, sock_dir=WORK)
        t0 = time.monotonic()
        vm.launch()
    return vm, time.monotonic() - t0


def dirty_logging(vm, cg):
    """Kernel memory that calc-dirty-rate's dirty logging adds, at peak."""
    def qmp(cmd, **args):
        r = vm.qmp(cmd, **args)
        if "error" in r:
            raise RuntimeError(f"{cmd}: {r['error']}")
        return r["return"]
    return hostkvm.dirty_logging(qmp, cg.kmem)


def start_run(peer, size, limit):
    """The device's metadata with nothing plugged, paused, and start-up."""
    rec = {"kind": "start", "peer": peer.name, "size": size}
    for with_device in (False, True):
        args = ["-S"] + machine_args(size, "kvm") + \
            (device_args(peer, size) if with_device else [])
        with hostkvm.cgroup(limit) as cg:
            try:
                vm, took = launch(peer, args, cg)
            except Exception as e:  # pylint: disable=broad-except
                # the QEMU could not get its memslots: why, in its own words
                log = getattr(e, "output", "") or str(e)
                rec["failed"] = (" ".join(log.split())[-300:] +
                                 (" (the cgroup's OOM killer struck)"
                                  if cg.oom_killed() else ""))
                rec["limit"] = limit
                return rec
            try:
                kmem = cg.kmem()
                if with_device:
                    rec["took"] = took
                    rec["metadata"] = kmem - rec.pop("base")
                    if peer.dynamic is not True:
                        rec["dirty"] = dirty_logging(vm, cg)
                else:
                    rec["base"] = kmem
            finally:
                vm.shutdown()
    return rec


def destination(peer, src, accel, name, dirty=True):
    """(growth of kernel memory, {index: (gpa start, gpa end)} of the
    memslots mapped, dirty) of a paused destination of peer that src
    migrates into; dirty: measure dirty logging (KVM only), else None."""
    try:
        with hostkvm.cgroup(hostkvm.available_limit()) as cg:
            vm, _ = launch(peer, hostkvm.destination_args(src.vm.args, accel),
                           cg)
            try:
                before = cg.kmem()
                hostkvm.migrate_to(src.qmp, vm, f"unix:{WORK}/{name}.sock")
                growth = cg.kmem() - before
                tree = vm.qmp("human-monitor-command",
                              **{"command-line": "info mtree"})["return"]
                dirty = dirty_logging(vm, cg) \
                    if accel == "kvm" and dirty else None
                return growth, mapped_memslots(tree), dirty
            finally:
                vm.shutdown()
    finally:
        src.qmp("cont")


def plugged_runs(size, dynamic_peers, out):
    """A TCG guest plugs each step; every dynamic peer receives it."""
    workdir = tempfile.mkdtemp(dir=WORK)
    src = VMemGuest(workdir, size, True, name="src", base_ram=BASE_RAM,
                    machine=MACHINE, extra_args=["-cpu", cpu()])
    src.start(timeout=120)
    try:
        for step in STEPS:
            if step:
                src.resize(step)
                src.wait_size(step, timeout=300)
            for peer in dynamic_peers:
                tag = f"{peer.name.replace(' ', '_')}-{size}-{step}"
                kvm, slots, dirty = destination(peer, src, "kvm", tag + "-k")
                tcg, tcg_slots, _ = destination(peer, src, "tcg", tag + "-t")
                rec = {"kind": "plugged", "peer": peer.name, "size": size,
                       "plugged": step, "metadata": kvm - tcg,
                       "memslots": len(slots),
                       "memslots_tcg": len(tcg_slots),
                       "dirty": dirty if step == STEPS[-1] else None}
                out(rec)
    finally:
        src.stop()


class Results:
    """Records by kind, peer, size (and plugged)."""

    def __init__(self, recs):
        self.start = {(r["peer"], r["size"]): r for r in recs
                      if r["kind"] == "start"}
        self.plugged = {(r["peer"], r["size"], r["plugged"]): r for r in recs
                        if r["kind"] == "plugged"}

    def metadata(self, peer, size, plugged):
        """(bytes or None, cell text) of peer at a plugged size."""
        start = self.start[(peer.name, size)]
        if "failed" in start:
            if "Invalid argument" in start["failed"]:
                return None, "fails: KVM refuses a memslot this large (EINVAL)"
            return None, f"fails in a {human(start['limit'])} cgroup"
        if peer.dynamic is not True:
            return start["metadata"], human(start["metadata"])
        r = self.plugged[(peer.name, size, plugged)]
        return r["metadata"], f"{human(r['metadata'])} ({r['memslots']})"


def tables(res, all_peers, kvm):
    lines = ["## Host KVM: memslot metadata measured directly", "",
             f"On this host's KVM: {kvm.flavour()}, {kvm.memslots} "
             f"memslots, memory cgroup v{kvm.cgroup}. Paused QEMUs "
             "(-S), each in a memory cgroup of its own (bench/host_kvm.py). "
             "QEMUs without dynamic memslots map the whole device at start: "
             "their cost is measured there and holds for every plugged "
             "size. With dynamic memslots the plugged sizes were reached by "
             "a real guest's virtio_mem driver under TCG and migrated into "
             "the paused KVM QEMU; cells give the metadata and the "
             "memslots mapped. \"fails\": the QEMU could not create its "
             "memslot (the reason follows; each QEMU's cgroup may charge "
             "half the available memory).", ""]
    for size in SIZES:
        lines += [f"### {size_str(size)} device ({kvm.flavour()})", "",
                  "| plugged | " + " | ".join(p.name for p in all_peers) +
                  " |", "|---|" + "---|" * len(all_peers)]
        for step in STEPS:
            cells = [res.metadata(p, size, step)[1] for p in all_peers]
            lines.append(f"| {size_str(step)} | " + " | ".join(cells) + " |")
        starts = []
        dirties = []
        for p in all_peers:
            s = res.start[(p.name, size)]
            starts.append(f"{p.name} " + (f"{s['took']:.2f} s"
                                          if "took" in s else "fails"))
            if p.dynamic is True:
                d = res.plugged[(p.name, size, STEPS[-1])]["dirty"]
            else:
                d = s.get("dirty")
            dirties.append(f"{p.name} {human(d)}")
        lines += ["", "Start-up to QMP ready, paused, nothing plugged: " +
                  ", ".join(starts) + ".", "",
                  "Dirty logging (calc-dirty-rate mode=dirty-bitmap) adds, "
                  f"at {size_str(STEPS[-1])} plugged: " +
                  ", ".join(dirties) + ".", ""]
    return lines


def plot(res, all_peers, kvm, png):
    data = os.path.join(WORK, "plot.dat")
    with open(data, "w", encoding="ascii") as f:
        for size in SIZES:
            f.write(f'"{size_str(size)}"\n')
            for step in STEPS:
                vals = [res.metadata(p, size, step)[0] for p in all_peers]
                f.write(f"{step // GiB} " + " ".join(
                    "NaN" if v is None else f"{max(v / MiB, 0.01):.3f}"
                    for v in vals) + "\n")
            f.write("\n\n")
    cmds = ['set terminal pngcairo size 1500,500 font ",10" noenhanced',
            f'set output "{png}"',
            'set multiplot layout 1,3 title "KVM memslot metadata vs plugged '
            f'memory, measured on host KVM ({kvm.flavour()})"',
            'set logscale y', 'set xlabel "plugged (GiB)"',
            'set ylabel "metadata (MiB)"', 'set key top left',
            'set xrange [-1:17]', 'set grid']
    for i, size in enumerate(SIZES):
        cmds.append(f'set title "{size_str(size)} device"')
        cmds.append("plot " + ", ".join(
            f'"{data}" index {i} using 1:{c + 2} with linespoints '
            f'title "{p.name}"' for c, p in enumerate(all_peers)))
    cmds.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(cmds), text=True, check=True)


def main():
    kvm = hostkvm.probe()
    print(f"_{kvm.describe()}._\n")
    if not kvm.ok:
        print("## Host KVM\n\nNot measured: no usable host KVM "
              f"({kvm.reason}). bench/kvm_metadata.py measures KVM nested "
              "in a TCG guest instead.")
        return 0
    need("gnuplot", "gnuplot-nox")
    os.makedirs(WORK, exist_ok=True)
    all_peers = peers()
    dynamic_peers = [p for p in all_peers if p.dynamic is True]
    recs = []

    def out(rec):
        recs.append(dict(rec, kvm=kvm.flavour()))
        print(f"host_kvm: {json.dumps(rec, sort_keys=True)}",
              file=sys.stderr, flush=True)
    limit = hostkvm.available_limit()
    for size in SIZES:
        for peer in all_peers:
            out(start_run(peer, size, limit))
    failed = [r for r in recs if "failed" in r and r["peer"] in
              [p.name for p in dynamic_peers]]
    if failed:
        raise RuntimeError(f"a QEMU with dynamic memslots failed: {failed}")
    for size in SIZES:
        plugged_runs(size, dynamic_peers, out)
    save_jsonl("host_kvm", recs)
    res = Results(recs)
    plot(res, all_peers, kvm, os.path.join(RESULTS, "host_kvm.png"))
    print("\n".join(tables(res, all_peers, kvm)))
    return 0


def report(path):
    """Tables and plot of an earlier run's records (bench/results)."""
    with open(path, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    kvm = hostkvm.probe()
    res = Results(recs)
    plot(res, peers(), kvm, os.path.join(RESULTS, "host_kvm.png"))
    print(f"_{kvm.describe()}._\n")
    print("\n".join(tables(res, peers(), kvm)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        sys.exit(report(sys.argv[2]))
    sys.exit(main())
