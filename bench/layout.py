#!/usr/bin/env python3
"""Memslot layouts side by side: what each QEMU maps while guests plug.

Debian's stock 7.2, upstream 10.0.2 with dynamic-memslots=on, ours with
equal memslots (equal-memslots=on, upstream's layout) and ours with the
default growing memslots, in one run (SPEC sections 3 and 4):

a. A real Linux 6.1 guest (build/guest, under TCG) plugs 1, 4, 16 and
   64 GiB and back (16, 4, 1, 0) on devices of 64 GiB, 1 TiB and 16 TiB
   (unplugged-inaccessible=on, block-size=2M; the device owns all
   memory-device space: a budget of 256 memslots). At every step, once the
   device's size and the guest's MemTotal reached the target: the bytes
   mapped and mapped / plugged. Ours (both layouts) run the guest
   themselves and report mapped-size over QMP. Upstream receives the
   state of ours' growing guest at every step in a paused destination
   (migration): its mapped bytes are its memslot aliases in that
   destination's "info mtree" (its query-memory-devices has no
   mapped-size). Stock 7.2 has no dynamic memslots: a paused stock QEMU
   with the same device maps the backend whole (its flat view), whatever
   is plugged. Target of the growing layout while plugging up: mapped
   <= 1.1 x plugged + 1 GiB. Where both of ours lay a device out alike
   (64 GiB: 64 memslots of 1 GiB either way; paused QEMUs tell), one
   guest run stands for both.
b. The same guest, a 1 TiB device next to a vhost-user device whose
   backend allows 64 regions (tests/lib/vhost_user_stub.py, as Debian's
   vhost-net): both of ours run the guest; upstream's layout (its memslot
   aliases over QOM, in a paused upstream QEMU with the same devices) is
   applied to the blocks the guest plugged in ours' growing run; stock as
   above. Target: mapped <= 2 x plugged + 1 GiB.
c. Legacy mode (unplugged-inaccessible=off) with Debian 11's 5.10 kernel
   (its driver lacks VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE): the same steps
   and sizes, with the usable region (requested size + 256 MiB, which
   never shrinks while the driver runs) in place of plugged. Upstream
   refuses dynamic-memslots=on in legacy mode (its message is quoted) and
   maps the whole device like stock.
d. virtio-mem-test's plug-in-order cases (1 TiB device, budget 256, 1000
   steps of Linux's, Windows' and a random order, both modes, a fixed
   seed): median and worst mapped / plugged of both layouts (the test
   computes equal memslots' for the same plugged blocks).
e. KVM kernel memory on host KVM (bench/host_kvm.py's paused-destination
   route: start_run() for stock, destination() under KVM and under TCG
   for the dynamic ones, the difference being KVM's memslot metadata) at
   1, 4 and 16 GiB plugged on the way up of (a). Skipped with the reason
   without a usable /dev/kvm.
f. Plug and unplug latency of both layouts: the seconds from qom-set until
   the device's size reached the target, and until the guest's MemTotal
   agreed, at every step of the runs above.

Prints the Markdown tables; raw records go to bench/results/layout.jsonl,
the plot to bench/results/layout.png. Fails if a measurement could not be
taken; never on a number. LAYOUT_SIZES="1T" measures fewer device sizes;
bench/layout.py --report FILE renders the tables of an earlier run,
--redo-qtest FILE measures (d) again into it.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# pylint: disable=wrong-import-position
from peers import RESULTS, TOP, Peer, peers, save_jsonl  # noqa: E402
import host_kvm  # noqa: E402
import hostkvm  # noqa: E402
from need import need  # noqa: E402
from vhost_user_stub import VhostUserStub  # noqa: E402
from vmemguest import (BUILD, FLAT_RE, QEMU, GiB, MiB, TiB,  # noqa: E402
                       QEMUMachine, VMemGuest, mapped_memslots,
                       mtree_memory_block, size_str)


def _lib_layout():
    """tests/lib/layout.py (the model), which this file's name hides."""
    spec = importlib.util.spec_from_file_location(
        "vmem_layout_model", os.path.join(TOP, "tests", "lib", "layout.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layout_mapped = _lib_layout().mapped
UNITS = {"G": GiB, "T": TiB}
SIZES = [int(s[:-1]) * UNITS[s[-1]] for s in
         os.environ.get("LAYOUT_SIZES", "64G 1T 16T").split()]
UP = [1 * GiB, 4 * GiB, 16 * GiB, 64 * GiB]
STEPS = UP + [16 * GiB, 4 * GiB, 1 * GiB, 0]
KVM_STEPS = UP[:3]          # migrating 64 GiB takes 12 s a destination
BLOCK = 2 * MiB
USABLE_EXTENT = 256 * MiB
BASE_RAM = 2 * GiB          # the memmap of 64 GiB plugged needs 1 GiB
VHOST_REGIONS = 64
VHOST_SIZE = 1 * TiB
LEGACY_KERNEL = "5.10"
WORK = os.path.join(TOP, "build", "bench-layout")
QTEST = os.path.join(BUILD, "qemu-build", "tests", "qtest", "virtio-mem-test")
QTEST_PATHS = ["/x86_64/virtio-mem/dynamic-memslots/plug-in-order",
               "/x86_64/virtio-mem/dynamic-memslots/legacy/plug-in-order"]
QTEST_SEED = "R02Sfcc14229bc4ba8fa297c9133d4b408b8"
QTEST_RE = re.compile(r"^# order (\w+)( legacy)?, (\w+) memslots: (\d+) "
                      r"steps, mapped / plugged median ([\d.]+) "
                      r"worst ([\d.]+)$", re.M)
TIMEOUT = 600

STOCK, UPSTREAM, EQUAL, GROWING = ("stock 7.2", "upstream 10.0", "ours equal",
                                   "ours growing")
NAMES = [STOCK, UPSTREAM, EQUAL, GROWING]


def the_peers():
    """{name: Peer} of the four QEMUs, from bench/peers.py's."""
    by_name = {p.name: p for p in peers()}
    stock, up = by_name["stock 7.2"], by_name["upstream 10.0 on"]
    return {
        STOCK: stock,
        UPSTREAM: Peer(UPSTREAM, up.binary, True, up.env, up.args),
        EQUAL: Peer(EQUAL, QEMU, True,
                    args=["-global", "virtio-mem.equal-memslots=on"]),
        GROWING: Peer(GROWING, QEMU, True),
    }


def human(n):
    if n is None:
        return "-"
    if abs(n) >= TiB and n % TiB == 0:
        return f"{n // TiB} TiB"
    if abs(n) >= GiB and n % GiB == 0:
        return f"{n // GiB} GiB"
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB"
    if abs(n) >= MiB:
        return f"{n // MiB} MiB" if n % MiB == 0 else f"{n / MiB:.1f} MiB"
    return f"{n / 1024:.0f} KiB" if n else "0"


def usable_region(size, requested, usable):
    """QEMU 7.2's usable region after a request (it never shrinks while
    the guest's driver runs: only unplug-all shrinks it)."""
    if not requested:
        return usable
    new = min(size, -(-(requested + USABLE_EXTENT) // BLOCK) * BLOCK)
    return max(new, usable)


def kernel_files(name):
    d = os.path.join(BUILD, "guest", "kernels", name)
    with open(os.path.join(d, "version"), encoding="utf-8") as f:
        version = f.read().strip()
    return os.path.join(d, "vmlinuz"), os.path.join(d, "initrd.img"), version


def device_args(peer, size, legacy):
    return ["-object", f"memory-backend-ram,id=vmem0,size={size},reserve=off",
            "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0,"
                       f"block-size={BLOCK},unplugged-inaccessible="
                       f"{'off' if legacy else 'on'}" + peer.device_props()]


def paused(peer, size, legacy=False, early=()):
    """What a paused TCG QEMU of peer with the device decides before any
    plug: {"flat": bytes of the backend in the flat view, "qom": [sizes
    of the memslot aliases]}, or {"error": QEMU's message}."""
    args = (["-S"] + host_kvm.machine_args(size, "tcg") + list(early) +
            device_args(peer, size, legacy) + peer.args)
    with peer:
        vm = QEMUMachine(peer.binary, args=args, base_temp_dir=WORK,
                         sock_dir=WORK)
        try:
            vm.launch()
        except Exception:  # pylint: disable=broad-except
            log = " ".join((vm.get_log() or "").split())
            # only the refusal it is known for; any other failure fails
            if "requires 'unplugged-inaccessible' to be 'on'" not in log:
                raise
            return {"error": log}
    try:
        flat = mtree_memory_block(vm.qmp("human-monitor-command", **{
            "command-line": "info mtree -f"})["return"], True)
        mapped = sum(int(m.group(2), 16) + 1 - int(m.group(1), 16)
                     for m in map(FLAT_RE.match, flat)
                     if m and m.group(3) == "vmem0")
        path = "/machine/peripheral/vm0/virtio-backend"
        names = {int(x["name"][len("memslot-"):].split("[")[0]): x["name"]
                 for x in vm.qmp("qom-list", path=path)["return"]
                 if x["name"].startswith("memslot-")}
        sizes = [vm.qmp("qom-get", path=f"{path}/{names[i]}",
                        property="size")["return"] for i in sorted(names)]
        return {"flat": mapped, "qom": sizes}
    finally:
        vm.shutdown()


def observe(peer, src, name):
    """{index: (start, end)} of the memslot aliases a paused TCG
    destination of peer maps once src's state arrived (no cgroup)."""
    with peer:
        vm = QEMUMachine(peer.binary, args=hostkvm.destination_args(
            src.vm.args, "tcg") + peer.args, name=name, base_temp_dir=WORK,
            sock_dir=WORK)
        vm.launch()
    try:
        hostkvm.migrate_to(src.qmp, vm, f"unix:{WORK}/{name}.sock")
        return mapped_memslots(vm.qmp("human-monitor-command", **{
            "command-line": "info mtree"})["return"])
    finally:
        vm.shutdown()
        src.qmp("cont")


def slot_bytes(slots):
    return sum(e - s for s, e in slots.values())


class Bench:
    """The runs; every record goes to self.recs (and stderr)."""

    def __init__(self, kvm):
        self.kvm = kvm
        self.peers = the_peers()
        self.recs = []

    def out(self, rec):
        self.recs.append(rec)
        short = {k: v for k, v in rec.items() if k not in ("offsets",
                                                            "spans")}
        print(f"layout: {json.dumps(short, sort_keys=True)}",
              file=sys.stderr, flush=True)

    # -- one real guest on one of ours ------------------------------------
    # pylint: disable=too-many-arguments,too-many-locals
    def guest_run(self, part, name, size, legacy=False, kernel=None,
                  early=(), at_step=None):
        peer = self.peers[name]
        workdir = tempfile.mkdtemp(dir=WORK)
        kw = {}
        if kernel:
            kw["kernel"], kw["initrd"], _ = kernel_files(kernel)
        g = VMemGuest(workdir, size, True, qemu=peer.binary,
                      name=f"{part}-{name.replace(' ', '_')}",
                      base_ram=BASE_RAM, machine=host_kvm.MACHINE,
                      extra_args=["-cpu", host_kvm.cpu()] + peer.args,
                      unplugged_inaccessible="off" if legacy else "on",
                      early_args=early, **kw)
        t0 = time.monotonic()
        g.start(timeout=120)
        try:
            # the destinations of (a) and (e) receive its state: not at
            # 7.2's default of 128 MiB/s (the guest's kernel alone took 1 s)
            g.qmp("migrate-set-parameters", **{"max-bandwidth": 16 * GiB})
            info = g.info()
            addr = info["memaddr"]
            self.out({"kind": "layout", "part": part, "size": size,
                      "qemu": name, "memslots": info["memslots"],
                      "min": info["min-memslot-size"],
                      "max": info["max-memslot-size"],
                      "offsets": g.memslot_offsets(),
                      "boot_s": time.monotonic() - t0})
            usable = 0
            for index, target in enumerate(STEPS):
                t0 = time.monotonic()
                g.resize(target)
                g.wait(lambda t=target: g.plugged() == t, TIMEOUT,
                       f"the device's size to reach {size_str(target)}")
                device_s = time.monotonic() - t0
                g.wait_size(target, timeout=TIMEOUT)
                guest_s = time.monotonic() - t0
                usable = usable_region(size, target, usable)
                info = g.info()
                spans = [(s - addr, e - addr)
                         for s, e in g.guest_report()[1]]
                step = {"kind": "step", "part": part, "size": size,
                        "qemu": name, "index": index, "target": target,
                        "plugged": g.plugged(), "usable": usable,
                        "mapped": info["mapped-size"],
                        "memslots_mapped": info["mapped-memslots"],
                        "how": "QMP mapped-size", "device_s": device_s,
                        "guest_s": guest_s, "spans": spans}
                self.out(step)
                if at_step:
                    at_step(g, step)
        finally:
            g.stop()
        shutil.rmtree(workdir)      # kept when the run failed: its logs

    # -- (a) and (e) ---------------------------------------------------------
    def kvm_step(self, peer, g, step):
        """KVM's metadata for what peer maps of g's state; its mapped
        memslots."""
        tag = (f"{peer.name.replace(' ', '_')}-{step['size'] >> 30}-"
               f"{step['target'] >> 30}")
        kvm, slots, _ = host_kvm.destination(peer, g, "kvm", tag + "-k",
                                             dirty=False)
        tcg, tcg_slots, _ = host_kvm.destination(peer, g, "tcg", tag + "-t",
                                                 dirty=False)
        self.out({"kind": "kvm", "size": step["size"], "qemu": peer.name,
                  "plugged": step["plugged"], "metadata": kvm - tcg,
                  "memslots": len(slots), "mapped": slot_bytes(slots),
                  "memslots_tcg": len(tcg_slots)})
        return slots

    def same_layout(self, part, size, legacy=False, early=()):
        """Whether ours lays the device out the same with equal and with
        growing memslots (paused QEMUs): then one guest run is both's."""
        lay = {n: paused(self.peers[n], size, legacy, early)["qom"]
               for n in (EQUAL, GROWING)}
        same = lay[EQUAL] == lay[GROWING]
        if same:
            self.out({"kind": "same_layout", "part": part, "size": size,
                      "memslots": len(lay[EQUAL])})
        return same

    def linux(self, size):
        up = self.peers[UPSTREAM]
        same = self.same_layout("a", size)

        def growing_step(g, step):
            kvm = self.kvm.ok and step["index"] < len(KVM_STEPS)
            if kvm:
                self.kvm_step(self.peers[GROWING], g, step)
                slots = self.kvm_step(up, g, step)
                how = "info mtree of a paused KVM destination"
            else:
                slots = observe(up, g, f"up-{size >> 30}-{step['index']}")
                how = "info mtree of a paused TCG destination"
            self.out(dict(step, qemu=UPSTREAM, mapped=slot_bytes(slots),
                          memslots_mapped=len(slots), how=how,
                          device_s=None, guest_s=None))

        def equal_step(g, step):
            if self.kvm.ok and step["index"] < len(KVM_STEPS):
                self.kvm_step(self.peers[EQUAL], g, step)

        self.guest_run("a", GROWING, size, at_step=growing_step)
        if not same:
            self.guest_run("a", EQUAL, size, at_step=equal_step)
        for name in (STOCK, UPSTREAM):
            self.out(dict(paused(self.peers[name], size), kind="paused",
                          part="a", size=size, qemu=name))
        if self.kvm.ok:
            rec = host_kvm.start_run(self.peers[STOCK], size,
                                     hostkvm.available_limit())
            self.out(dict(rec, kind="kvm_start", qemu=STOCK))

    # -- (b) -----------------------------------------------------------------
    def vhost(self):
        path = os.path.join(WORK, "vhost.sock")
        stub = VhostUserStub(path, VHOST_REGIONS)
        early = ["-chardev", f"socket,id=vu0,path={path}",
                 "-device", "vhost-user-blk-pci,chardev=vu0"]
        try:
            for name in (GROWING, EQUAL):
                self.guest_run("b", name, VHOST_SIZE, early=early)
            for name in (STOCK, UPSTREAM):
                self.out(dict(paused(self.peers[name], VHOST_SIZE,
                                     early=early),
                              kind="paused", part="b", size=VHOST_SIZE,
                              qemu=name))
        finally:
            stub.close()

    # -- (c) -----------------------------------------------------------------
    def legacy(self, size):
        same = self.same_layout("c", size, legacy=True)
        for name in (GROWING,) if same else (GROWING, EQUAL):
            self.guest_run("c", name, size, legacy=True,
                           kernel=LEGACY_KERNEL)
        for name in (STOCK, UPSTREAM):
            self.out(dict(paused(self.peers[name], size, legacy=True),
                          kind="paused", part="c", size=size, qemu=name))
        # upstream refuses dynamic memslots here: what it does without
        off = self.peers[UPSTREAM]
        off = Peer(UPSTREAM, off.binary, False, off.env, off.args)
        self.out(dict(paused(off, size, legacy=True), kind="paused",
                      part="c", size=size, qemu=UPSTREAM + " off"))

    # -- (d) -----------------------------------------------------------------
    def qtest(self):
        args = [QTEST, "--verbose", f"--seed={QTEST_SEED}"]
        for p in QTEST_PATHS:
            args += ["-p", p]
        env = dict(os.environ, QTEST_QEMU_BINARY=QEMU)
        r = subprocess.run(args, env=env, capture_output=True, text=True,
                           timeout=1200, check=False)
        found = QTEST_RE.findall(r.stdout)
        if r.returncode or len(found) != 12:
            raise RuntimeError(f"virtio-mem-test failed ({r.returncode}) "
                               f"or printed {len(found)} of 12 ratios:\n"
                               f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
        for order, legacy, lay, steps, median, worst in found:
            self.out({"kind": "qtest", "order": order,
                      "legacy": bool(legacy), "layout": lay,
                      "steps": int(steps), "median": float(median),
                      "worst": float(worst), "seed": QTEST_SEED})


# -- the tables ---------------------------------------------------------------
class Results:
    def __init__(self, recs):
        self.recs = recs
        self.meta = next(r for r in recs if r["kind"] == "meta")

    def get(self, kind, **match):
        return [r for r in self.recs if r["kind"] == kind and
                all(r.get(k) == v for k, v in match.items())]

    def one(self, kind, **match):
        found = self.get(kind, **match)
        return found[0] if found else None

    def sizes(self, part):
        """The device sizes measured in part, ascending."""
        return sorted({r["size"] for r in self.get("step", part=part)})


def ratio(mapped, base):
    if not base:
        return "–" if not mapped else "∞"
    r = mapped / base
    return f"{r:.2f}×" if r < 100 else f"{r:.0f}×"


def step_label(index):
    return f"{'↑' if index < len(UP) else '↓'} {human(STEPS[index])}"


def layout_text(res, part, size):
    """One line: how each QEMU lays the device out."""
    texts = []
    for name in NAMES:
        if run_of(res, part, size, name) != name:
            texts.append(f"{name}: the same memslots as growing (one guest "
                         "run stands for both)")
            continue
        lay = res.one("layout", part=part, size=size, qemu=name)
        pz = res.one("paused", part=part, size=size, qemu=name)
        if lay:
            if lay["min"] == lay["max"]:
                texts.append(f"{name}: {lay['memslots']} memslots of "
                             f"{human(lay['min'])}")
            else:
                first = lay["offsets"][1]
                texts.append(f"{name}: {lay['memslots']} memslots, the "
                             f"first {human(first)}, the largest "
                             f"{human(lay['max'])}" +
                             (f", the smallest {human(lay['min'])}"
                              if lay["min"] < first else ""))
        elif pz and "error" in pz:
            texts.append(f"{name}: refuses dynamic-memslots=on "
                         f"(\"{pz['error'].split(': ', 2)[-1]}\")")
        elif pz and pz["qom"]:
            qom = pz["qom"]
            texts.append(f"{name}: {len(qom)} memslot"
                         f"{'s' if len(qom) > 1 else ''} of "
                         f"{human(min(qom))}" +
                         (f" to {human(max(qom))}" if max(qom) != min(qom)
                          else "") + " (its memslot aliases over QOM)")
        elif pz:
            texts.append(f"{name}: the backend as one region, mapped whole "
                         f"at start ({human(pz['flat'])} in the flat view)")
    return "; ".join(texts) + "."


def run_of(res, part, size, name):
    """Whose guest run stands for name's: growing's for equal when the
    two layouts are the same."""
    if name == EQUAL and res.one("same_layout", part=part, size=size):
        return GROWING
    return name


def mapped_of(res, part, size, name, index, spans_of=GROWING):
    """(mapped bytes, base) of name at step index, or (None, why)."""
    step = res.one("step", part=part, size=size,
                   qemu=run_of(res, part, size, name), index=index)
    base_key = "usable" if part == "c" else "plugged"
    if step:
        return step["mapped"], step[base_key]
    ref = res.one("step", part=part, size=size, qemu=spans_of, index=index)
    pz = res.one("paused", part=part, size=size, qemu=name)
    if ref is None or pz is None:
        return None, "not measured"
    if "error" in pz:
        pz = res.one("paused", part=part, size=size, qemu=name + " off")
    if pz["qom"]:
        offsets = [0]
        for s in pz["qom"]:
            offsets.append(offsets[-1] + s)
        return layout_mapped(offsets, ref["spans"]), ref[base_key]
    return pz["flat"], ref[base_key]


def mapping_table(res, part, size, factor):
    base = "usable" if part == "c" else "plugged"
    lines = ["| step | requested | " +
             ("usable region | " if part == "c" else "plugged | ") +
             " | ".join(NAMES) + f" | target {factor} × {base} + 1 GiB |",
             "|---|---:|---:|" + "---:|" * (len(NAMES) + 1)]
    for index, target in enumerate(STEPS):
        ref = res.one("step", part=part, size=size, qemu=GROWING,
                      index=index)
        if ref is None:
            continue
        cells = []
        for name in NAMES:
            mapped, b = mapped_of(res, part, size, name, index)
            if mapped is None:
                cells.append(b)
                continue
            cell = f"{human(mapped)} ({ratio(mapped, b)})"
            if index < len(UP):
                cell += " ✓" if mapped <= factor * b + GiB else " ✗"
            cells.append(cell)
        goal = factor * ref[base] + GiB
        lines.append(f"| {step_label(index)} | {human(target)} | "
                     f"{human(ref[base])} | " + " | ".join(cells) +
                     f" | {human(int(goal)) if index < len(UP) else '–'} |")
    return lines


def per_device(res, part, factor):
    """A section per device size of part: its layout and mapping table."""
    lines = []
    for size in res.sizes(part):
        lines += [f"#### {human(size)} device", "",
                  layout_text(res, part, size), ""]
        lines += mapping_table(res, part, size, factor) + [""]
    return lines


def part_a(res):
    lines = ["### (a) Linux 6.1 guest, unplugged-inaccessible=on, budget 256",
             "",
             "A real Linux 6.1 guest (TCG) plugs up (↑) and back (↓); each "
             "cell: bytes mapped (mapped / plugged), ✓/✗: within the target "
             "1.1 × plugged + 1 GiB while plugging up. Ours: QMP "
             "mapped-size of the device the guest runs on (each layout has "
             "a guest run of its own, unless both lay the device out alike: "
             "then one run stands for both). Upstream 10.0: the memslot "
             "aliases in \"info mtree\" of a paused upstream QEMU that "
             "received the state of ours' growing guest at that step "
             "(migration; under KVM at the steps of (e), else under TCG). "
             "Stock 7.2: a paused stock QEMU with the same device (no "
             "dynamic memslots).", ""]
    return lines + per_device(res, "a", 1.1)


def part_b(res):
    return [f"### (b) {human(VHOST_SIZE)} device next to a "
            f"{VHOST_REGIONS}-region vhost-user backend, Linux 6.1", "",
            "The same guest and steps; a vhost-user-blk device whose "
            f"backend allows {VHOST_REGIONS} regions (realized before the "
            "virtio-mem device). Ours: QMP mapped-size of the guest's "
            "device. Upstream 10.0: its layout (memslot aliases over QOM "
            "in a paused upstream QEMU with the same devices) applied to "
            "the memory blocks the guest added in ours' growing run. "
            "Target: 2 × plugged + 1 GiB while plugging up.", "",
            layout_text(res, "b", VHOST_SIZE), ""] + \
        mapping_table(res, "b", VHOST_SIZE, 2) + [""]


def part_c(res):
    lines = [f"### (c) Legacy mode: Debian 11's {LEGACY_KERNEL} kernel, "
             "unplugged-inaccessible=off", "",
             "A real Linux guest with Debian 11's kernel "
             f"({res.meta.get('legacy_kernel', LEGACY_KERNEL)}); in legacy "
             "mode every memslot that overlaps the usable "
             "region is mapped (the guest may read unplugged memory there). "
             "The usable region is the requested size + 256 MiB and does "
             "not shrink while the guest's driver runs (only unplug-all "
             "shrinks it), so on the way back nothing is unmapped with any "
             "layout. Cells: mapped (mapped / usable region), ✓/✗: within "
             "1.1 × usable + 1 GiB. Upstream 10.0 refuses "
             "dynamic-memslots=on in this mode, so it runs without: the "
             "flat view of a paused upstream QEMU with "
             "dynamic-memslots=off.", ""]
    return lines + per_device(res, "c", 1.1)


def part_d(res):
    recs = res.get("qtest")
    if not recs:
        return []
    lines = ["### (d) virtio-mem-test: Linux's, Windows' and a random order",
             "",
             f"`virtio-mem-test -p .../plug-in-order` (and `legacy/`) "
             f"with seed {recs[0]['seed']}: a 1 TiB device, a budget of "
             "256, a qtest guest plugging and unplugging toward random "
             "requested sizes up to 256 GiB with 1000 plug and unplug "
             "requests (the steps column counts those after which memory "
             "was plugged). Ratios over those steps of mapped / plugged "
             "(legacy: mapped / usable region); the "
             "growing layout is the device's own (the test checks QMP's "
             "mapped-size against its model every step), equal is the "
             "test's model of equal memslots for the same blocks.", "",
             "| mode | order | steps | growing: median | worst | "
             "equal: median | worst |", "|---|---|---:|---:|---:|---:|---:|"]
    for legacy in (False, True):
        for order in ("linux", "windows", "random"):
            g = res.one("qtest", order=order, legacy=legacy,
                        layout="growing")
            e = res.one("qtest", order=order, legacy=legacy, layout="equal")
            if not g or not e:
                continue
            lines.append(f"| {'legacy' if legacy else 'on'} | {order} | "
                         f"{g['steps']} | {g['median']:.3f} | "
                         f"{g['worst']:.3f} | {e['median']:.3f} | "
                         f"{e['worst']:.3f} |")
    return lines + [""]


def part_e(res):
    lines = ["### (e) KVM memslot metadata on host KVM", ""]
    if not res.meta["kvm_ok"]:
        return lines + [f"Not measured: {res.meta['kvm']}.", ""]
    lines += [f"On this host's KVM ({res.meta['kvm']}), by "
              "bench/host_kvm.py's route: stock 7.2 paused with and "
              "without the device (start_run(): it pays for the whole "
              "device whatever is plugged); the dynamic ones: the guest of "
              "(a) migrates into a paused KVM destination and into a TCG one "
              "of that QEMU, the difference of their kernel memory growth "
              "is KVM's metadata for the memslots the destination mapped (in "
              "parentheses: how many, and the bytes they map). "
              "Upstream's destinations receive the state of ours' growing "
              "guest; ours equal its own guest's. "
              f"Plugged {', '.join(human(s) for s in KVM_STEPS)}, not "
              "64 GiB: migrating 64 GiB into a destination takes ~12 s "
              "here, and the 18 destinations it would add (3 device sizes "
              "× 3 QEMUs × KVM and TCG) would take this part past its time "
              "budget; (a) gives what each maps at 64 GiB.", ""]
    for size in res.sizes("a"):
        lines += [f"#### {human(size)} device", "",
                  "| plugged | " + " | ".join(NAMES) + " |",
                  "|---:|" + "---:|" * len(NAMES)]
        start = res.one("kvm_start", size=size, qemu=STOCK)
        for plugged in KVM_STEPS:
            cells = []
            for name in NAMES:
                if name == STOCK:
                    if start is None:
                        cells.append("not measured")
                    elif "failed" in start:
                        cells.append(
                            "fails: KVM refuses a memslot this large"
                            if "Invalid argument" in start["failed"] else
                            f"fails in a {human(start['limit'])} cgroup")
                    else:
                        cells.append(human(start["metadata"]))
                    continue
                r = res.one("kvm", size=size, plugged=plugged,
                            qemu=run_of(res, "a", size, name))
                cells.append(f"{human(r['metadata'])} ({r['memslots']}, "
                             f"{human(r['mapped'])})" if r else "-")
            lines.append(f"| {human(plugged)} | " + " | ".join(cells) + " |")
        if start and "metadata" in start:
            lines += ["", "Stock's cost per GiB of device (memslot): "
                      f"{start['metadata'] * GiB // size:,} B."]
        lines.append("")
    return lines


def part_f(res):
    runs = []
    for part, what in (("a", "Linux 6.1"), ("b", "Linux 6.1, vhost"),
                       ("c", f"Linux {LEGACY_KERNEL}, legacy")):
        for size in res.sizes(part):
            for name in (EQUAL, GROWING):
                steps = sorted(res.get("step", part=part, size=size,
                                       qemu=name), key=lambda r: r["index"])
                if steps and name == GROWING and \
                        run_of(res, part, size, EQUAL) == GROWING:
                    name = "both (same memslots)"
                if steps:
                    runs.append((f"{what}, {human(size)}", name, steps))
    if not runs:
        return []
    cols = [f"{human(a)} → {human(b)}" for a, b in
            zip([0] + STEPS, STEPS)]
    lines = ["### (f) Plug and unplug latency of both layouts", "",
             "Seconds from qom-set until the device's size reached the "
             "target / until the guest's MemTotal agreed, in the runs "
             "above. Under TCG the emulated guest dominates, and on this "
             "shared 2-core machine the 48 GiB unplug (64 → 16 GiB) "
             "varies by several seconds from one run to the next.", "",
             "| guest, device | layout | " + " | ".join(cols) + " |",
             "|---|---|" + "---:|" * len(cols)]
    for what, name, steps in runs:
        lines.append(f"| {what} | {name} | " + " | ".join(
            f"{s['device_s']:.2f} / {s['guest_s']:.2f}" for s in steps) +
            " |")
    return lines + [""]


def plot(res, png):
    sizes = res.sizes("a")
    if not sizes:
        return
    data = os.path.join(WORK, "plot.dat")
    with open(data, "w", encoding="ascii") as f:
        for size in sizes:
            f.write(f'"{human(size)}"\n')
            for index, target in enumerate(STEPS):
                vals = [mapped_of(res, "a", size, n, index)[0]
                        for n in NAMES]
                f.write(f"{index} {target / GiB:.3f} " + " ".join(
                    "NaN" if v is None else f"{max(v / GiB, 0.05):.3f}"
                    for v in vals) + "\n")
            f.write("\n\n")
    tics = ", ".join(f'"{"↑" if i < len(UP) else "↓"}{t // GiB}" {i}'
                     for i, t in enumerate(STEPS))
    cmds = ['set terminal pngcairo size 1500,500 font ",10" noenhanced',
            f'set output "{png}"',
            'set multiplot layout 1,' + str(len(sizes)) + ' title "Mapped '
            'memory while a Linux 6.1 guest plugs up and back (budget 256)"',
            'set logscale y', f'set xtics ({tics})',
            'set xlabel "requested GiB (↑ plugging up, ↓ back)"',
            'set ylabel "mapped GiB (0 drawn at 0.05)"',
            'set key bottom left', 'set grid']
    # drawn in NAMES' order, later on top: equal values stay visible
    styles = ['lw 2 lc "red" pt 2', 'lw 7 lc "#9ec5fe" pt 6 ps 2',
              'lw 3 dt 2 lc "orange" pt 4', 'lw 1.5 lc "dark-green" pt 7']
    for i, size in enumerate(sizes):
        cmds.append(f'set title "{human(size)} device"')
        cmds.append(f'plot "{data}" index {i} using 1:($2 > 0 ? $2 : 0.05) '
                    'with lines dashtype 3 lc "black" title "plugged", ' +
                    ", ".join(f'"{data}" index {i} using 1:{c + 3} with '
                              f'linespoints {styles[c]} title "{n}"'
                              for c, n in enumerate(NAMES)))
    cmds.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(cmds), text=True, check=True)


def part_g(res):
    """How many memslots each layout maps: every map and unmap is a KVM
    memslot update (and, before Linux 6.12, deleting one zaps all of the
    guest's shadow pages: see docs/benchmarks.md)."""
    lines = ["### (g) Memslots mapped at each step, and memslot updates", "",
             "The same runs as (a) and (b): the memslots ours maps (QMP "
             "mapped-memslots); in parentheses, the memslots mapped or "
             "unmapped since the previous step (KVM memslot updates, each "
             "~1 ms of QEMU and KVM; deleting a memslot zaps the guest's "
             "shadow pages before Linux 6.12). Growing memslots are smaller "
             "at the bottom, so they map and unmap more of them for the "
             "same memory.", "",
             "| device | layout | " + " | ".join(
                 step_label(i) for i in range(len(STEPS))) + " |",
             "|---|---|" + "---:|" * len(STEPS)]
    for part, size in [("a", s) for s in res.sizes("a")] + \
            [("b", VHOST_SIZE)]:
        for name in (EQUAL, GROWING):
            qemu = run_of(res, part, size, name)
            cells, last = [], 0
            for index in range(len(STEPS)):
                step = res.one("step", part=part, size=size, qemu=qemu,
                               index=index)
                if step is None:
                    cells.append("–")
                    continue
                n = step["memslots_mapped"]
                cells.append(f"{n} ({abs(n - last)})")
                last = n
            where = human(size) + (f", {VHOST_REGIONS}-region vhost"
                                   if part == "b" else "")
            lines.append(f"| {where} | {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def render(recs, png):
    res = Results(recs)
    plot(res, png)
    lines = ["## Memslot layouts side by side", "",
             f"_{res.meta['kvm_line']}._", "",
             "Stock 7.2 (Debian's), upstream 10.0.2 (bookworm-backports, "
             "dynamic-memslots=on), ours with equal memslots "
             "(equal-memslots=on: upstream's layout) and ours with growing "
             "memslots (the default), by bench/layout.py. Block size 2 MiB, "
             "base RAM 2 GiB; the virtio-mem device owns all memory-device "
             "space (budget 256).", ""]
    lines += part_a(res) + part_b(res) + part_c(res) + part_d(res) + \
        part_e(res) + part_f(res) + part_g(res)
    lines += [f"The plot of (a): bench/results/{os.path.basename(png)}.",
              ""]
    took = res.meta.get("took")
    if took:
        lines.append("Runtime: " + ", ".join(
            f"{k} {took[k]:.0f} s" for k in ("(a)+(e)", "(b)", "(c)",
                                             "(d) qtest", "total")
            if k in took) + ".")
    print("\n".join(lines))


def main():
    need("gnuplot", "gnuplot-nox")
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(host_kvm.WORK, exist_ok=True)
    kvm = hostkvm.probe()
    bench = Bench(kvm)
    _, _, legacy_version = kernel_files(LEGACY_KERNEL)
    meta = {"kind": "meta", "kvm_ok": kvm.ok, "kvm_line": kvm.describe(),
            "kvm": kvm.flavour() if kvm.ok else kvm.reason,
            "legacy_kernel": legacy_version, "took": {}}
    bench.recs.append(meta)
    t00 = t0 = time.monotonic()

    def lap(what):
        nonlocal t0
        meta["took"][what] = time.monotonic() - t0
        t0 = time.monotonic()
    bench.qtest()
    lap("(d) qtest")
    for size in SIZES:
        bench.linux(size)
    lap("(a)+(e)")
    bench.vhost()
    lap("(b)")
    for size in SIZES:
        bench.legacy(size)
    lap("(c)")
    meta["took"]["total"] = time.monotonic() - t00
    save_jsonl("layout", bench.recs)
    render(bench.recs, os.path.join(RESULTS, "layout.png"))
    return 0


def report(path, redo_qtest=False):
    """Tables and plot of an earlier run's records; with redo_qtest, (d)
    measured again (the qtest alone, seconds) into those records."""
    with open(path, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    os.makedirs(WORK, exist_ok=True)
    if redo_qtest:
        kvm = hostkvm.probe()
        bench = Bench(kvm)
        bench.recs = [r for r in recs if r.get("kind") != "qtest"]
        t0 = time.monotonic()
        bench.qtest()
        for r in bench.recs:
            if r.get("kind") == "meta":
                r.setdefault("took", {})["(d) qtest"] = time.monotonic() - t0
        recs = bench.recs
        save_jsonl("layout", recs)
    render(recs, os.path.join(RESULTS, "layout.png"))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] in ("--report", "--redo-qtest"):
        sys.exit(report(sys.argv[2], sys.argv[1] == "--redo-qtest"))
    sys.exit(main())
