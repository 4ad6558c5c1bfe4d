#!/usr/bin/env python3
"""Real KVM memslot metadata of a virtio-mem device, per QEMU and KVM config.

There is no /dev/kvm here, so KVM runs inside a TCG guest (the "KVM host",
bench/nested/init): TCG offers AMD SVM with nested paging. The host's /usr
and the project folder are shared into it over 9p; bench/nested/l1_run.py
runs each QEMU under test there with -accel kvm, in a memory cgroup of its
own, and reads what KVM charged for the device's memslots. One KVM host
boot per kvm.tdp_mmu value; SMM on/off is a machine property of the inner
QEMU.

For a 64 GiB and a 1 TiB device, a real inner guest plugs 0, 1, 4, 16, 64
GiB; the table gives per plugged size the metadata of
stock 7.2, upstream 10.0 on, ours off and ours on, with the memslots
mapped and the ratio to stock, and the physical limit: the metadata of
exactly the plugged memory at the per-GiB cost measured in the same run.

Raw records go to bench/results/kvm_metadata.jsonl, tables to
bench/results/kvm_metadata.md, the plot to bench/results/kvm_metadata.png.
Fails if any measurement could not be taken; never on a number.
Environment: KVM_BENCH_TDP="1 0", KVM_BENCH_SIZES="64G 1T",
KVM_BENCH_HOST_MEM=16G, KVM_BENCH_KEEP=1 (keep the records of the other
tdp_mmu value from an earlier run).
"""

import filecmp
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from peers import TOP  # noqa: E402
from vmemguest import GiB, MiB, TiB, size_str  # noqa: E402
from need import need  # noqa: E402

PEERS = ["stock 7.2", "upstream 10.0 on", "ours off", "ours on"]
SIZES = {"64G": 64 * GiB, "1T": 1 * TiB}
STEPS = {64 * GiB: [0, 1, 4, 16, 64], 1 * TiB: [0, 1, 4, 16, 64]}
STOCK_QEMU = "/usr/bin/qemu-system-x86_64"    # has virtfs; ours is built without
RESULTS = os.path.join(TOP, "bench", "results")
WORK = os.path.join(TOP, "build", "bench-kvm")
KERNEL = os.path.join(TOP, "build", "guest", "vmlinuz")
KVMHOST = os.path.join(TOP, "build", "guest", "kvmhost.img")


def job_runs(sizes):
    runs = []
    for smm in ("on", "off"):
        for peer in PEERS:
            runs.append({"kind": "baseline", "peer": peer, "smm": smm})
            for size in sizes:
                runs.append({"kind": "static", "peer": peer, "smm": smm,
                             "size": size})
                runs.append({"kind": "guest", "peer": peer, "smm": smm,
                             "size": size, "dirty": True,
                             "steps": [s * GiB for s in STEPS[size]]})
    return runs


def run_kvm_host(tdp_mmu, runs, out, name="kvmhost"):
    """Boot the KVM host under TCG with one job of runs (for
    bench/nested/l1_run.py); its records go to out."""
    os.makedirs(WORK, exist_ok=True)
    job = os.path.join(WORK, f"job-{name}-tdp{tdp_mmu}.json")
    with open(job, "w", encoding="utf-8") as f:
        json.dump({"tdp_mmu": tdp_mmu, "out": out, "runs": runs}, f)
    console = os.path.join(WORK, f"{name}-tdp{tdp_mmu}.log")
    with open(console, "w", encoding="utf-8") as log:
        subprocess.run(
            [STOCK_QEMU, "-machine", "q35", "-accel", "tcg",
             "-cpu", "max,phys-bits=48", "-smp", "2",
             "-m", os.environ.get("KVM_BENCH_HOST_MEM", "16G"),
             "-nodefaults", "-display", "none", "-no-reboot",
             "-kernel", KERNEL, "-initrd", KVMHOST,
             "-append", f"console=ttyS0 panic=-1 quiet "
                        f"kvmbench.tdp_mmu={tdp_mmu} kvmbench.top={TOP} "
                        f"kvmbench.job={job}",
             "-virtfs", "local,path=/usr,mount_tag=usr,"
                        "security_model=none,readonly=on",
             "-virtfs", f"local,path={TOP},mount_tag=top,security_model=none",
             "-serial", "stdio"],
            stdout=log, stderr=subprocess.STDOUT, timeout=4 * 3600, check=True)
    with open(console, encoding="utf-8", errors="replace") as f:
        text = f.read()
    fatal = [line for line in text.splitlines()
             if line.startswith("KVMHOST: FATAL:")]
    if fatal:
        raise RuntimeError(f"the KVM host failed: {fatal[0][16:]}; "
                           f"see {console}")
    if "KVMHOST: ready" not in text or "kvm=yes" not in text:
        raise RuntimeError(f"the KVM host did not get /dev/kvm; see {console}")
    if "KVMHOST: done 0" not in text:
        raise RuntimeError(f"the KVM host's job did not finish; see {console}")


def keep_others(path, tdps):
    """Drop the records of the KVM configurations about to be measured;
    with KVM_BENCH_KEEP=1, keep those of the others (a run per tdp_mmu)."""
    recs = []
    if os.environ.get("KVM_BENCH_KEEP") == "1" and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            recs = [line for line in f
                    if json.loads(line)["tdp_mmu"] not in tdps]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(recs)


def load(path):
    with open(path, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    errors = [r for r in recs if r["kind"] == "error"]
    if errors:
        raise RuntimeError("measurements failed:\n" + "\n".join(
            f"  {r['peer']} tdp_mmu={r['tdp_mmu']} smm={r['smm']} "
            f"{size_str(r.get('size', 0))}: {r['error']}" for r in errors))
    return recs


def human(n):
    if n >= GiB:
        return f"{n / GiB:.2f} GiB"
    if n >= MiB:
        return f"{n / MiB:.1f} MiB"
    return f"{n / 1024:.0f} KiB"


class Matrix:
    """Metadata per (tdp_mmu, smm, size, peer, plugged) from the records."""

    def __init__(self, recs):
        self.base, self.static, self.steps, self.dirty = {}, {}, {}, {}
        for r in recs:
            key = (r["tdp_mmu"], r["smm"], r.get("size"), r["peer"])
            if r["kind"] == "baseline":
                self.base[key[:2] + (r["peer"],)] = r["kmem"]
            elif r["kind"] == "static":
                self.static[key] = r
            elif r["kind"] == "step":
                self.steps[key + (r["plugged"],)] = r
                if "dirty_bitmap" in r:
                    self.dirty[key] = (r["plugged"], r["dirty_bitmap"])

    def static_metadata(self, tdp, smm, size, peer):
        return (self.static[(tdp, smm, size, peer)]["kmem"] -
                self.base[(tdp, smm, peer)])

    def metadata(self, tdp, smm, size, peer, plugged):
        """Static metadata plus what plugging added (cgroup kernel memory
        growth since the guest booted with nothing plugged)."""
        step = self.steps[(tdp, smm, size, peer, plugged)]
        return (max(0, self.static_metadata(tdp, smm, size, peer)) +
                step["kmem_growth"]), step["memslots"]

    def per_byte(self, tdp, smm, size):
        """Metadata per byte of memslot: ours off maps the whole device."""
        return self.static_metadata(tdp, smm, size, "ours off") / size

    def complete(self, tdp, smm, size):
        """Every peer measured at every step (and its baseline)."""
        return all((tdp, smm, peer) in self.base and
                   (tdp, smm, size, peer) in self.static and
                   all((tdp, smm, size, peer, p * GiB) in self.steps
                       for p in STEPS[size]) for peer in PEERS)

    def configs(self):
        """(tdp_mmu, smm, size) measured; incomplete ones raise."""
        configs = sorted({k[:3] for k in self.static}, key=lambda k:
                         (-k[0], k[1] != "on", k[2]))
        missing = [c for c in configs if not self.complete(*c)]
        if missing:
            raise RuntimeError(f"measurements missing for {missing}")
        return configs


def table(m, tdp, smm, size):
    mmu = "TDP MMU" if tdp else "shadow MMU"
    lines = [f"### {size_str(size)} device, {mmu} (kvm.tdp_mmu={tdp}), "
             f"SMM {smm}", "",
             "| plugged | " + " | ".join(PEERS) + " | physical limit |",
             "|---|" + "---|" * (len(PEERS) + 1)]
    for plugged in STEPS[size]:
        plugged *= GiB
        cells = []
        stock = m.metadata(tdp, smm, size, "stock 7.2", plugged)[0]
        for peer in PEERS:
            meta, slots = m.metadata(tdp, smm, size, peer, plugged)
            ratio = f", {meta / stock:.3f}×" if peer != "stock 7.2" else ""
            cells.append(f"{human(meta)} ({slots}{ratio})")
        limit = human(m.per_byte(tdp, smm, size) * plugged)
        lines.append(f"| {size_str(plugged)} | " + " | ".join(cells) +
                     f" | {limit} |")
    dirty = []
    for peer in PEERS:
        plugged, extra = m.dirty[(tdp, smm, size, peer)]
        dirty.append(f"{peer} {human(extra)}")
    lines += ["", f"Dirty bitmaps during calc-dirty-rate (mode=dirty-bitmap) "
                  f"at {size_str(plugged)} plugged: " + ", ".join(dirty) + ".",
              ""]
    return lines


def plot(m, png):
    """Metadata vs plugged size, 1 TiB device, one panel per KVM config."""
    size = max(s for (_, _, s) in m.configs())
    data = os.path.join(WORK, "plot.dat")
    configs = [c for c in m.configs() if c[2] == size]
    with open(data, "w", encoding="ascii") as f:
        for tdp, smm, _ in configs:
            f.write(f'"tdp_mmu={tdp} smm={smm}"\n')
            for plugged in STEPS[size]:
                vals = [m.metadata(tdp, smm, size, p, plugged * GiB)[0] / MiB
                        for p in PEERS]
                limit = m.per_byte(tdp, smm, size) * plugged * GiB / MiB
                f.write(f"{plugged} " + " ".join(f"{max(v, 0.01):.3f}"
                                                for v in vals + [limit]) + "\n")
            f.write("\n\n")
    cmds = [f'set terminal pngcairo size 1200,900 font ",10"',
            f'set output "{png}"',
            f'set multiplot layout 2,2 title "KVM memslot metadata of a '
            f'{size_str(size)} virtio-mem device vs plugged memory '
            f'(measured in nested KVM)"',
            'set logscale y', 'set xlabel "plugged (GiB)"',
            'set ylabel "metadata (MiB)"', 'set key bottom right',
            'set xrange [-8:*]', 'set grid']
    for i, (tdp, smm, _) in enumerate(configs):
        cmds.append(f'set title "{"TDP" if tdp else "shadow"} MMU, SMM {smm}"')
        styles = [f'"{data}" index {i} using 1:{c + 2} with linespoints '
                  f'title "{p}"' for c, p in enumerate(PEERS)]
        styles.append(f'"{data}" index {i} using 1:{len(PEERS) + 2} with lines '
                      f'dashtype 2 lc rgb "black" title "physical limit"')
        cmds.append("plot " + ", ".join(styles))
    cmds.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(cmds), text=True, check=True)


def guest_kernel():
    """The release of build/guest/vmlinuz (scripts/guest.sh unpacks more
    kernels next to it, for the kernel matrix)."""
    for path in glob.glob(os.path.join(TOP, "build", "guest", "linux-image-*",
                                       "boot", "vmlinuz-*")):
        if filecmp.cmp(path, KERNEL, shallow=False):
            return os.path.basename(path)[len("vmlinuz-"):]
    return "unknown"


def report(recs):
    m = Matrix(recs)
    lines = ["## Real KVM memslot metadata (nested KVM)", "",
             "Kernel memory KVM charged for the device's memslots, by "
             "bench/kvm_metadata.py (the KVM host: Debian's "
             f"{guest_kernel()} kernel under TCG, -cpu max, kvm_amd; the "
             "inner guest: the same kernel, 2 GiB boot memory). "
             "Each cell: metadata (memslots mapped, ratio to stock 7.2). "
             "Plugged sizes were reached by a real inner guest's virtio_mem "
             "driver. Physical limit: the metadata of exactly the plugged "
             "memory, at the per-GiB cost measured in the same run.", ""]
    for tdp, smm, size in m.configs():
        lines += table(m, tdp, smm, size)
    return m, lines


def main():
    need("gnuplot", "gnuplot-nox")   # the plot, hours later
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    for f in (STOCK_QEMU, KERNEL, KVMHOST):
        if not os.path.exists(f):
            raise SystemExit(f"kvm_metadata: {f} is missing")
    sizes = [SIZES[s] for s in
             os.environ.get("KVM_BENCH_SIZES", "64G 1T").split()]
    raw = os.path.join(RESULTS, "kvm_metadata.jsonl")
    tmp = os.path.join(WORK, "kvm_metadata.jsonl")
    tdps = [int(t) for t in os.environ.get("KVM_BENCH_TDP", "1 0").split()]
    keep_others(tmp, tdps)
    for tdp in tdps:
        run_kvm_host(tdp, job_runs(sizes), tmp)
    recs = load(tmp)
    m, lines = report(recs)
    os.replace(tmp, raw)
    with open(os.path.join(RESULTS, "kvm_metadata.md"), "w",
              encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    plot(m, os.path.join(RESULTS, "kvm_metadata.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        # tables and plot (to the path given) of an earlier run's records
        m, lines = report(load(sys.argv[2]))
        if len(sys.argv) > 3:
            plot(m, sys.argv[3])
        print("\n".join(lines))
    else:
        main()
