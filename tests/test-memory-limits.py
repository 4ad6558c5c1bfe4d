#!/usr/bin/env python3
"""A 1 TiB virtio-mem device under a memory limit: stock 7.2 dies, ours runs.

KVM charges a memslot's metadata to the memory cgroup of the QEMU process,
the cgroup that libvirt's <memtune><hard_limit>, systemd's MemoryMax= and
Kubernetes pods limit. The VM of tests/libvirt/vmem-limit.xml (256 MiB of
RAM, a 1 TiB device, nothing plugged, paused) under LIMIT (512 MiB, see
docs/memory-limits.md, "Sizing memory limits"): Debian's stock 7.2 maps
the whole device and KVM's metadata for it does not fit, so the cgroup's
OOM killer kills QEMU while it starts; ours with dynamic memslots starts
and uses a fraction of the limit. Needs host KVM (tests/lib/hostkvm.py's
probe; without it every case is skipped with the reason).

- libvirt 11.3 (scripts/libvirt.sh) as a system daemon (qemu:///system,
  root), private: libvirtd runs in a mount namespace of its own where
  /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt
  and /run are directories of the test's (so it neither sees nor touches
  a libvirt the host runs, nor the host's D-Bus and systemd-machined), it
  loads only the QEMU driver (LIBVIRT_DRIVER_DIR), and its domains'
  cgroups live in a <resource><partition> the test creates and removes
  (never /machine). On a host with the memory controller on cgroup v1 the
  namespace also unmounts the cgroup2 hierarchy, which libvirt 11.3 would
  otherwise take for a v2 host ("v2 controller '(null)' is not
  available" where it has only hugetlb). virsh talks to it through the
  socket in the test's directory. At the end: the daemon, its QEMUs, its
  cgroups and its files are gone, and /sys/fs/cgroup/*machine* is as
  before.
  - <memtune><hard_limit>: the domain starts with virsh start --paused;
    stock fails with libvirt's error, state "shut off (failed)", the
    kernel's OOM kill in the domain's cgroup; ours is paused, answers
    QMP, dynamic-memslots=on, well under the limit. libvirt sets
    RLIMIT_MEMLOCK to hard_limit for every QEMU it starts; where this
    process may not raise it (no CAP_SYS_RESOURCE, a container) both are
    skipped with libvirt's message;
  - the same limit on the domains' partition (the cgroup above the
    domain's: the limit of a slice, of a pod) instead, which works
    everywhere: stock fails (libvirt's error, "shut off (failed)", the
    partition reached its limit, the OOM kill), ours runs, and a live
    `virsh memtune --hard-limit` of LIMIT holds it; for stock started
    without a limit libvirt cannot set that hard_limit (v1 refuses it:
    the metadata is unreclaimable kernel memory; v2 kills the VM).
  After each: the daemon answers, no QEMU of the domain is left, the
  domain's cgroup is gone.
- without libvirt: QEMU with the same VM under `systemd-run --scope -p
  MemoryMax=` where systemd runs the host on cgroup v2, else (cgroup v1
  like this host, or no systemd) in a memory cgroup of the test's own with
  the limit (memory.limit_in_bytes, v2 memory.max), removed afterwards:
  stock is OOM-killed while it starts, ours runs.

Where stock 7.2 fits under LIMIT (measured first, in a cgroup limited to
2 x LIMIT: the TDP MMU from Linux 6.9 allocates neither rmap nor gfn_track
until shadow paging is needed) its cases are skipped, saying so.
VMEM_MEMLIMITS_OURS=off runs ours with dynamic memslots off: its checks
must then fail as stock does. Prints PASS/FAIL/SKIP lines and "N passed,
N failed[, N skipped]"; gives up after TIMEOUT seconds.
"""

import contextlib
import glob
import json
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import hostkvm  # noqa: E402
from need import missing  # noqa: E402
from results import Results  # noqa: E402
from stockqemu import STOCK  # noqa: E402
from vmemguest import QEMU, TOP, MiB, TiB, QEMUMachine  # noqa: E402

LIMIT = 512 * MiB       # docs/memory-limits.md; tests/libvirt/vmem-limit.xml
RAM = 256 * MiB
DEVICE = 1 * TiB
TIMEOUT = 360
XML = os.path.join(TOP, "tests", "libvirt", "vmem-limit.xml")
OURS_SETTING = os.environ.get("VMEM_MEMLIMITS_OURS", "on")
# what libvirt says when QEMU died while it started
QEMU_DIED = re.compile(r"QEMU unexpectedly closed the monitor|process exited "
                       r"while connecting|Child quit|terminated unexpectedly")
MEMLOCK_EPERM = "cannot limit locked memory"
MIB = 1 << 20
CAP_SYS_RESOURCE = 24
# the QEMUs that do not fit are killed on purpose: not a warning here
logging.getLogger("qemu.machine").setLevel(logging.ERROR)
HOST_LIBVIRT = ("/etc/libvirt", "/var/lib/libvirt", "/var/cache/libvirt",
                "/var/log/libvirt", "/run/libvirt")

HARD = "<memtune><hard_limit> at start"
PART = "limit on the domains' partition"
LIBVIRT_CASES = [
    f"libvirt {HARD}: stock 7.2 does not start, libvirt says why, the host "
    "is unharmed",
    f"libvirt {HARD}: ours starts paused under the limit",
    f"libvirt {PART}: stock 7.2 does not start, libvirt says why",
    f"libvirt {PART}: stock 7.2 was stopped by the limit",
    f"libvirt {PART}: stock 7.2: the host is unharmed",
    f"libvirt {PART}: ours starts paused under the limit",
    "libvirt: a live hard_limit holds ours",
    "libvirt: ours destroyed: the host is unharmed",
    "libvirt: a live hard_limit cannot hold stock 7.2",
    "libvirt: the private daemon leaves nothing behind",
]
DIRECT_CASES = ["without libvirt: stock 7.2 is OOM-killed while it starts",
                "without libvirt: ours starts paused under the limit"]


def mib(n):
    return f"{n / MIB:.0f} MiB"


def stock_fits(workdir):
    """Why stock 7.2 fits under LIMIT on this host's KVM, or None.
    Measured: the VM on stock 7.2, paused, in a memory cgroup of ours
    limited to 2 x LIMIT (enough to tell), which stock either fits in or
    is OOM-killed by
    (what a 1 TiB memslot costs depends on the MMU, the kernel and its
    configuration: ~2.5 GiB with the shadow MMU, ~515 MiB with the TDP
    MMU before Linux 6.9, ~2 MiB from 6.9 until shadow paging is
    needed)."""
    peak, why = None, ""
    with hostkvm.cgroup(2 * LIMIT) as cg:
        vm = QEMUMachine(STOCK, args=qemu_args(None), wrapper=cg.wrapper,
                         base_temp_dir=workdir, sock_dir=workdir,
                         qmp_timer=60)
        try:
            with hostkvm.launched(vm):
                peak = hostkvm.cgroup_peak(cg)
        except TimeoutError:
            raise
        except Exception as e:  # pylint: disable=broad-except
            why = f" ({e})"
        killed = cg.oom_killed()
    if peak is None or killed:
        print(f"    stock 7.2 under {mib(2 * LIMIT)}: "
              f"{'OOM-killed' if killed else 'did not start' + why}")
        return None
    print(f"    stock 7.2 under {mib(2 * LIMIT)}: peak {mib(peak)} "
          f"(the limit: {mib(LIMIT)})")
    if peak >= LIMIT:
        return None
    return (f"stock 7.2 fits here: it peaks at {mib(peak)} (KVM here "
            f"allocates little metadata for a memslot until shadow paging "
            f"is needed), under {mib(LIMIT)} too")


def can_raise_memlock():
    """Whether this process may raise RLIMIT_MEMLOCK to LIMIT, as libvirt
    does for a QEMU with a hard_limit; (bool, why not)."""
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard == resource.RLIM_INFINITY or hard >= LIMIT:
        return True, ""
    with open("/proc/self/status", encoding="ascii") as f:
        caps = next(int(line.split()[1], 16) for line in f
                    if line.startswith("CapEff:"))
    if caps >> CAP_SYS_RESOURCE & 1:
        return True, ""
    return False, (f"the hard RLIMIT_MEMLOCK here is {mib(hard)} and this "
                   "process lacks CAP_SYS_RESOURCE (not in its capability "
                   "bounding set: a container), so nothing here can raise it")


def qemu_pids(needle):
    """Pids of processes whose command line contains needle."""
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if needle in cmd and int(d[6:]) != os.getpid():
            pids.append(int(d[6:]))
    return pids


def said(err):
    """libvirt's error without virsh's "error: Failed to start ..." lead."""
    return err.split("error: ")[-1]


def host_libvirt_files():
    """Every path under the host's libvirt directories (with the
    private daemon they must not change)."""
    found = set()
    for top in HOST_LIBVIRT:
        for d, dirs, files in os.walk(top):
            found.update(os.path.join(d, n) for n in dirs + files)
        found.add(top if os.path.exists(top) else f"{top} (absent)")
    return found


def machine_cgroups():
    return set(glob.glob(f"{hostkvm.CGROUP}/*machine*") +
               glob.glob(f"{hostkvm.CGROUP}/memory/*machine*"))


class Partition(hostkvm.Cgroup):
    """A memory cgroup the domains go into (<resource><partition>), with a
    limit or none; created and removed by the test."""

    def __init__(self):
        super().__init__(name=f"vmem-limits-{os.getpid()}.partition")

    def hits(self):
        return hostkvm.cgroup_limit_hits(self.path, self.version) or 0

    def domain_cgroups(self, name):
        return glob.glob(f"{self.path}/*-{name}.libvirt-qemu")


class PrivateLibvirtd:
    """libvirt's system daemon (root, qemu:///system) in a mount namespace
    with directories of its own (see the module's doc)."""

    BINDS = {"etc": "/etc/libvirt", "lib": "/var/lib/libvirt",
             "cache": "/var/cache/libvirt", "log": "/var/log/libvirt",
             "run": "/run"}

    def __init__(self, workdir):
        self.dir = workdir
        self.proc = None
        self.sock = f"{workdir}/run/libvirt/libvirt-sock"
        for d in self.BINDS:
            os.makedirs(f"{workdir}/{d}")
        with open(f"{workdir}/etc/libvirtd.conf", "w", encoding="ascii") as f:
            f.write('unix_sock_group = "root"\n'
                    'unix_sock_ro_perms = "0700"\n'
                    'unix_sock_rw_perms = "0700"\n'
                    'auth_unix_ro = "none"\n'
                    'auth_unix_rw = "none"\n'
                    'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
        # QEMU as root without relabelling, its output to a file (no
        # virtlogd), no /dev namespace; the memory controller only
        with open(f"{workdir}/etc/qemu.conf", "w", encoding="ascii") as f:
            f.write('user = "root"\ngroup = "root"\n'
                    'dynamic_ownership = 0\nremember_owner = 0\n'
                    'security_driver = "none"\nstdio_handler = "file"\n'
                    'namespaces = [ ]\ncgroup_controllers = [ "memory" ]\n')
        # the QEMU driver alone: no network, storage or nodedev driver
        os.makedirs(f"{workdir}/drivers")
        self.qemu_driver = glob.glob("/usr/lib/*/libvirt/connection-driver/"
                                     "libvirt_driver_qemu.so")
        if self.qemu_driver:
            os.symlink(self.qemu_driver[0],
                       f"{workdir}/drivers/libvirt_driver_qemu.so")

    def why_not(self):
        """Why the daemon cannot run privately here, or None."""
        absent = [t for t in self.BINDS.values() if not os.path.isdir(t)]
        if not self.qemu_driver:
            absent.append("libvirt's QEMU driver")
        if not os.access("/usr/sbin/libvirtd", os.X_OK):
            absent.append("/usr/sbin/libvirtd")
        if absent:
            return (f"{', '.join(absent)} missing (Debian packages "
                    "libvirt-daemon, libvirt-daemon-driver-qemu)")
        return None

    def start(self):
        script = ["set -e"]
        if hostkvm.cgroup_version() == 1:
            with open("/proc/self/mounts", encoding="utf-8") as f:
                for line in f:
                    _, where, fstype = line.split()[:3]
                    if fstype == "cgroup2":
                        script.append(f"umount {where}")
        for d, target in self.BINDS.items():
            script.append(f"mount --bind {self.dir}/{d} {target}")
        script.append('exec "$@"')
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                "\n".join(script), "sh", "env", "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
                f"LIBVIRT_DRIVER_DIR={self.dir}/drivers",
                "/usr/sbin/libvirtd", "--timeout=0",
                "--pid-file", "/run/libvirtd.pid",
                "--config", "/etc/libvirt/libvirtd.conf"]
        with open(f"{self.dir}/daemon.out", "w", encoding="utf-8") as out:
            self.proc = subprocess.Popen(argv, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"libvirtd did not start: {self.log()}")
            time.sleep(0.05)

    def log(self):
        text = ""
        for f in ("daemon.out", "log/libvirtd.log"):
            try:
                with open(f"{self.dir}/{f}", encoding="utf-8",
                          errors="replace") as fh:
                    text += fh.read()
            except OSError:
                pass
        return text[-1500:]

    def virsh(self, *args):
        """(exit status, stdout, stderr) of virsh on the private daemon."""
        uri = f"qemu:///system?socket={self.sock}"
        r = subprocess.run(["virsh", "-c", uri] + list(args),
                           capture_output=True, text=True, timeout=120,
                           check=False, env={"PATH": os.environ["PATH"],
                                             "LC_ALL": "C", "HOME": self.dir})
        return r.returncode, r.stdout.strip(), " ".join(r.stderr.split())

    def ok(self, *args):
        rc, out, err = self.virsh(*args)
        if rc:
            raise RuntimeError(f"virsh {' '.join(args)}: {err}")
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def domain_xml(name, emulator, setting, partition, hard_limit):
    """vmem-limit.xml for one run: setting "on"/"off" for dynamicMemslots,
    None for stock (which lacks the property)."""
    with open(XML, encoding="utf-8") as f:
        xml = f.read()
    xml = re.sub(r"<!--.*?-->\n", "", xml, flags=re.S)
    xml = xml.replace("<name>vmem-limit</name>", f"<name>{name}</name>")
    xml = re.sub(r"<emulator>[^<]*</emulator>",
                 f"<emulator>{emulator}</emulator>", xml)
    if setting is None:
        xml = xml.replace(" dynamicMemslots='yes'", "")
    else:
        yes = "yes" if setting == "on" else "no"
        xml = xml.replace("dynamicMemslots='yes'", f"dynamicMemslots='{yes}'")
    if not hard_limit:
        xml = re.sub(r"\s*<memtune>.*?</memtune>", "", xml, flags=re.S)
    xml = xml.replace("<vcpu>", f"<resource><partition>/{partition}"
                      "</partition></resource>\n  <vcpu>", 1)
    return xml


class LibvirtRun:
    """One domain definition on the private daemon."""

    def __init__(self, lv, part, kmsg, tag, emulator, setting, hard_limit):
        self.lv, self.part, self.kmsg = lv, part, kmsg
        self.name = f"vmem-limit-{os.getpid()}-{tag}"
        path = f"{lv.dir}/{self.name}.xml"
        with open(path, "w", encoding="utf-8") as f:
            f.write(domain_xml(self.name, emulator, setting, part.name,
                               hard_limit))
        lv.ok("define", path)

    def start(self):
        """(exit status, libvirt's error) of virsh start --paused."""
        self.kmsg.lines()       # only what this start logs
        self.hits0 = self.part.hits()
        rc, _, err = self.lv.virsh("start", "--paused", self.name)
        return rc, err

    def state(self):
        return self.lv.virsh("domstate", "--reason", self.name)[1]

    def qmp(self, cmd, **args):
        out = self.lv.ok("qemu-monitor-command", self.name,
                         json.dumps({"execute": cmd, "arguments": args}))
        return json.loads(out)["return"]

    def oom_evidence(self):
        """What says the limit stopped QEMU: the kernel's oom-kill in the
        domain's cgroup, how often the partition reached its limit."""
        kills = hostkvm.oom_kills(self.kmsg.lines(),
                                  f"-{self.name}.libvirt-qemu")
        hits = self.part.hits() - self.hits0
        text = (f"kernel log: {len(kills)} oom-kill in the domain's cgroup"
                if self.kmsg.ok else "kernel log not readable here")
        return kills, hits, text

    def unharmed(self):
        """"" if the daemon answers, no QEMU of the domain runs and its
        cgroup is gone, else what is wrong."""
        rc, _, err = self.lv.virsh("list", "--all", "--name")
        wrong = [] if rc == 0 else [f"the daemon does not answer: {err}"]
        pids = qemu_pids(f"guest={self.name},")
        if pids:
            wrong.append(f"QEMU left: {pids}")
        deadline = time.monotonic() + 10
        while self.part.domain_cgroups(self.name) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        if self.part.domain_cgroups(self.name):
            wrong.append(f"cgroup left: {self.part.domain_cgroups(self.name)}")
        return "; ".join(wrong)

    def destroy(self):
        self.lv.virsh("destroy", self.name)

    def undefine(self):
        self.lv.virsh("destroy", self.name)
        self.lv.virsh("undefine", self.name)


def check_stock_fails(res, run, what, skip_why):
    """stock's start under the limit: it must fail, libvirt say why, and
    the host be unharmed; with the limit on the partition, the partition
    must also have reached it (with a hard_limit the domain's cgroup,
    which libvirt removes, held the count: the kernel log tells)."""
    cases = [c for c in LIBVIRT_CASES
             if c.startswith(f"libvirt {what}: stock")]
    if skip_why:
        for c in cases:
            res.skip(c, skip_why)
        return
    rc, err = run.start()
    state = run.state()
    kills, hits, evidence = run.oom_evidence()
    wrong = run.unharmed()
    says = f"libvirt {what}: stock 7.2 does not start, libvirt says why: " \
        f"\"{said(err)[:110]}\", state {state}"
    if what == HARD:
        res.check(rc != 0 and QEMU_DIED.search(err) and
                  state == "shut off (failed)" and
                  (kills or not run.kmsg.ok) and not wrong,
                  f"{says}, {evidence}; the host is unharmed",
                  f"virsh start: exit {rc}, {err!r}; state {state!r}; "
                  f"{evidence}; {wrong}")
        return
    res.check(rc != 0 and QEMU_DIED.search(err) and
              state == "shut off (failed)", says,
              f"virsh start: exit {rc}, {err!r}; state {state!r}")
    res.check(hits > 0 and (kills or not run.kmsg.ok),
              f"libvirt {what}: stock 7.2 was stopped by the limit: the "
              f"partition reached it {hits} times, {evidence}",
              f"partition limit reached {hits} times; {evidence}")
    res.check(not wrong, f"libvirt {what}: stock 7.2: the host is unharmed "
              "(the daemon answers, no QEMU left, the domain's cgroup gone)",
              wrong)


def check_ours_runs(res, run, what):
    """ours' start under the limit: paused, QMP, dynamic memslots, usage."""
    rc, err = run.start()
    if rc:
        kills, hits, evidence = run.oom_evidence()
        res.check(False, f"libvirt {what}: ours starts paused under the "
                  "limit", f"virsh start: {err}; the limit reached {hits} "
                  f"times, {evidence}; state {run.state()}")
        return False
    status = run.qmp("query-status")
    dynamic = run.qmp("qom-get", path="ua-vmem0",
                      property="dynamic-memslots")
    cgs = run.part.domain_cgroups(run.name)
    peak = hostkvm.cgroup_peak_at(cgs[0], run.part.version) if cgs else None
    res.check(run.state().startswith("paused") and
              status["status"] == "prelaunch" and not status["running"] and
              dynamic is True and peak is not None and peak < LIMIT // 2,
              f"libvirt {what}: ours starts paused under the limit "
              f"(QMP: {status['status']}, dynamic-memslots={dynamic}, peak "
              f"{mib(peak or 0)} of {mib(LIMIT)})",
              f"state {run.state()}, query-status {status}, "
              f"dynamic-memslots {dynamic}, peak {peak}")
    return True


def libvirt_part(res, kvm_fits):
    """The libvirt cases; returns after cleaning up."""
    setup = subprocess.run([os.path.join(TOP, "scripts", "libvirt.sh")],
                           capture_output=True, text=True, check=False)
    absent = missing("virsh", "libvirt-clients", "unshare", "util-linux",
                     "mount", "mount")
    if setup.returncode or absent:
        why = (f"libvirt cannot be installed here: {setup.stderr.strip()}"
               if setup.returncode else f"missing {' '.join(absent)}")
        for c in LIBVIRT_CASES:
            res.skip(c, why)
        return
    print(setup.stdout.strip())
    machines = machine_cgroups()
    host_files = host_libvirt_files()
    workdir = tempfile.mkdtemp(prefix="vmem-limits-")
    lv = PrivateLibvirtd(workdir)
    why = lv.why_not()
    if why:
        for c in LIBVIRT_CASES:
            res.skip(c, f"no private system daemon: {why}")
        shutil.rmtree(workdir)
        return
    try:
        part = Partition()
    except OSError as e:
        for c in LIBVIRT_CASES:
            res.skip(c, f"no memory cgroup for the domains: {e}")
        shutil.rmtree(workdir)
        return
    kmsg = hostkvm.KernelLog()
    runs = []
    daemon_pid = None
    try:
        lv.start()
        daemon_pid = lv.proc.pid
        print(f"    private libvirtd (pid {daemon_pid}, "
              f"{lv.ok('version', '--daemon').splitlines()[-1].strip()}) in "
              f"{workdir}; domains in {part.path}")

        def run(tag, emulator, setting, hard_limit):
            r = LibvirtRun(lv, part, kmsg, tag, emulator, setting, hard_limit)
            runs.append(r)
            return r

        # 1. <memtune><hard_limit> at start
        ours = run("ours-hard", QEMU, OURS_SETTING, True)
        rc, err = ours.start()
        able, why_not = can_raise_memlock()
        if rc and MEMLOCK_EPERM in err and not able:
            why = (f"libvirt raises RLIMIT_MEMLOCK to hard_limit for every "
                   f"QEMU it starts, and {why_not}; libvirt: \"{said(err)}\"")
            res.skip(LIBVIRT_CASES[0], why)
            res.skip(LIBVIRT_CASES[1], why)
        else:
            if rc:
                res.check(False, LIBVIRT_CASES[1], f"virsh start: {err}")
            else:
                cgs = part.domain_cgroups(ours.name)
                limit = hostkvm.cgroup_limit_at(cgs[0], part.version) if cgs else None
                status = ours.qmp("query-status")
                peak = hostkvm.cgroup_peak_at(cgs[0], part.version)
                res.check(limit == str(LIMIT) and not status["running"] and
                          peak < LIMIT // 2,
                          f"libvirt {HARD}: ours starts paused under the "
                          f"limit (the domain's cgroup limit {limit}, peak "
                          f"{mib(peak)})",
                          f"limit {limit}, query-status {status}, peak {peak}")
                ours.destroy()
            check_stock_fails(res, run("stock-hard", STOCK, None, True), HARD,
                              kvm_fits)

        # 2. the limit on the partition
        part.set_limit(LIMIT)
        check_stock_fails(res, run("stock", STOCK, None, False), PART,
                          kvm_fits)
        ours = run("ours", QEMU, OURS_SETTING, False)
        if check_ours_runs(res, ours, PART):
            rc, _, err = lv.virsh("memtune", ours.name, "--hard-limit",
                                  str(LIMIT >> 10), "--live")
            cgs = part.domain_cgroups(ours.name)
            limit = hostkvm.cgroup_limit_at(cgs[0], part.version) if cgs else None
            shown = lv.virsh("memtune", ours.name)[1]
            res.check(rc == 0 and limit == str(LIMIT) and
                      f"hard_limit     : {LIMIT >> 10}" in shown and
                      not ours.qmp("query-status")["running"],
                      f"libvirt: a live hard_limit holds ours (virsh memtune "
                      f"--hard-limit {LIMIT >> 10} --live: the domain's "
                      f"cgroup limit {limit}, still paused)",
                      f"virsh memtune: exit {rc} {err}; limit {limit}; "
                      f"{shown}")
            ours.destroy()
            wrong = ours.unharmed()
            res.check(not wrong, "libvirt: ours destroyed: the host is "
                      "unharmed (the daemon answers, no QEMU left, the "
                      "domain's cgroup gone)", wrong)
        else:
            res.skip(LIBVIRT_CASES[6], "ours did not start")
            res.skip(LIBVIRT_CASES[7], "ours did not start")

        # 3. a live hard_limit on stock started without one
        part.set_limit(None)
        if kvm_fits:
            res.skip(LIBVIRT_CASES[8], kvm_fits)
        else:
            stock = run("stock-live", STOCK, None, False)
            rc, err = stock.start()
            if rc:
                res.check(False, LIBVIRT_CASES[8],
                          f"stock did not start without a limit: {err}")
            else:
                rc, _, err = lv.virsh("memtune", stock.name, "--hard-limit",
                                      str(LIMIT >> 10), "--live")
                state = stock.state()
                refused = rc != 0 and state.startswith("paused")
                killed = state.startswith("shut off")
                res.check(refused or killed,
                          "libvirt: a live hard_limit cannot hold stock 7.2: "
                          + (f"refused (\"...{err[-70:]}\"), it stays {state}"
                             if refused else f"the VM is killed: {state}"),
                          f"virsh memtune: exit {rc} {err}; state {state}")
                stock.destroy()
    except Exception as e:  # pylint: disable=broad-except
        res.check(False, "libvirt", f"{type(e).__name__}: {e}\n"
                  f"    daemon: {lv.log()}")
    finally:
        for r in runs:
            r.undefine()
        lv.stop()
        kmsg.close()
        # processes the daemon started and left (none, normally): ours
        left = [p for r in runs for p in qemu_pids(f"guest={r.name},")]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        try:
            part.remove()
            part_gone = True
        except OSError as e:
            part_gone = f"{part.path}: {e}"
        alive = daemon_pid is not None and \
            os.path.exists(f"/proc/{daemon_pid}")
        shutil.rmtree(workdir, ignore_errors=True)
        wrong = [w for w in (
            alive and f"the daemon (pid {daemon_pid}) still runs",
            left and f"QEMUs left: {left}",
            part_gone is not True and f"partition left: {part_gone}",
            machine_cgroups() != machines and
            f"machine cgroups changed: {machines} -> {machine_cgroups()}",
            os.path.exists(workdir) and f"{workdir} left",
            host_libvirt_files() != host_files and
            f"the host's libvirt files changed: "
            f"{host_libvirt_files() ^ host_files}") if w]
        res.check(not wrong, "libvirt: the private daemon leaves nothing "
                  "behind (no daemon, no QEMU, no cgroup, no files; the "
                  "host's libvirt directories and machine cgroups as "
                  "before)",
                  "; ".join(wrong))


def qemu_args(setting):
    """The VM of vmem-limit.xml on QEMU's command line."""
    device = "" if setting is None else f",dynamic-memslots={setting}"
    return ["-S", "-machine", "q35", "-accel", "kvm", "-nodefaults",
            "-cpu", "qemu64,phys-bits=48", "-smp", "1",
            "-m", f"{RAM // MiB}M,slots=2,maxmem={(RAM + DEVICE) // MiB}M",
            "-object", f"memory-backend-ram,id=vmem0,size={DEVICE},"
                       "reserve=off",
            "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,requested-size=0"
                       + device]


def scope_path(pid):
    """The cgroup v2 directory of process pid (systemd-run's scope)."""
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        rel = next(line.split(":", 2)[2].strip() for line in f
                   if line.startswith("0::"))
    return hostkvm.CGROUP + rel


def direct_start(binary, setting, workdir, systemd, unit):
    """Start binary under LIMIT without libvirt: (started, status, peak,
    exit code, oom killed, limit hits, kernel log's oom-kills)."""
    kmsg = hostkvm.KernelLog()
    started = False
    status = peak = hits = None
    ctx = contextlib.nullcontext() if systemd else hostkvm.cgroup(LIMIT)
    with ctx as cg:
        if systemd:
            wrapper = ["systemd-run", "--scope", "--quiet", f"--unit={unit}",
                       "-p", f"MemoryMax={LIMIT}", "-p", "MemorySwapMax=0",
                       "--"]
        else:
            wrapper = cg.wrapper
        vm = QEMUMachine(binary, args=qemu_args(setting), wrapper=wrapper,
                         base_temp_dir=workdir, sock_dir=workdir,
                         qmp_timer=60)
        try:
            vm.launch()
            started = True
        except Exception:  # pylint: disable=broad-except
            pass
        if started:
            try:
                status = vm.qmp("query-status")["return"]
                peak = hostkvm.cgroup_peak_at(scope_path(vm.get_pid()), 2) \
                    if systemd else hostkvm.cgroup_peak(cg)
            finally:
                vm.shutdown()
        if not systemd:
            oom = cg.oom_killed()
            hits = hostkvm.cgroup_limit_hits(cg.path, cg.version)
    kills = hostkvm.oom_kills(kmsg.lines(), f"{unit}.scope" if systemd
                              else os.path.basename(cg.path))
    kmsg.close()
    if systemd:
        result = subprocess.run(
            ["systemctl", "show", "-p", "Result", "--value", f"{unit}.scope"],
            capture_output=True, text=True, check=False).stdout.strip()
        subprocess.run(["systemctl", "reset-failed", f"{unit}.scope"],
                       capture_output=True, check=False)
        oom = result == "oom-kill" or bool(kills)
    return started, status, peak, vm.exitcode(), oom, hits, kills


def direct_part(res, kvm_fits, workdir):
    """QEMU under systemd-run --scope -p MemoryMax= or a cgroup of ours."""
    systemd = hostkvm.systemd_cgroup2()
    version = hostkvm.cgroup_version()
    if systemd:
        how = f"systemd-run --scope -p MemoryMax={LIMIT}"
    else:
        how = (f"a memory cgroup of the test's own (cgroup v{version}, "
               f"memory.{'limit_in_bytes' if version == 1 else 'max'} "
               f"{LIMIT})")
        with open("/proc/1/comm", encoding="utf-8") as f:
            pid1 = f.read().strip()
        why = (f"PID 1 is {pid1}, not systemd"
               if not os.path.isdir("/run/systemd/system")
               else "no cgroup v2 with the memory controller")
        res.skip(f"systemd-run --scope -p MemoryMax={LIMIT}",
                 f"{why}; the same with {how} instead")
    print(f"    without libvirt: {how}")
    for tag, binary, setting in (("stock 7.2", STOCK, None),
                                 ("ours", QEMU, OURS_SETTING)):
        if binary == STOCK and kvm_fits:
            res.skip(f"{how}: stock 7.2 is OOM-killed while it starts",
                     kvm_fits)
            continue
        unit = f"vmem-limits-{os.getpid()}-{tag.split()[0]}"
        started, status, peak, exitcode, oom, hits, kills = direct_start(
            binary, setting, workdir, systemd, unit)
        evidence = (f"exit {exitcode}, OOM kill {oom}, the limit reached "
                    f"{hits} times, kernel log: {len(kills)} oom-kill")
        if binary == STOCK:
            res.check(not started and exitcode == -signal.SIGKILL and oom,
                      f"{how}: stock 7.2 is OOM-killed while it starts "
                      f"({evidence})", f"started {started}, {evidence}")
        else:
            res.check(started and not status["running"] and
                      peak < LIMIT // 2,
                      f"{how}: ours starts paused under the limit" +
                      (f" (QMP: {status['status']}, peak {mib(peak)})"
                       if started else ""),
                      f"query-status {status}, peak {peak}" if started else
                      f"did not start: {evidence}")
    left = glob.glob(f"{hostkvm.CGROUP}/vmem-{os.getpid()}-*") + \
        glob.glob(f"{hostkvm.CGROUP}/*/vmem-{os.getpid()}-*")
    res.check(not left, f"{how}: the cgroups are gone", f"left: {left}")


def main():
    res = Results("KVM (paused VMs)")
    if OURS_SETTING != "on":
        print(f"VMEM_MEMLIMITS_OURS={OURS_SETTING}: ours runs with "
              f"dynamic-memslots={OURS_SETTING}; its checks must fail")
    if not hostkvm.probe_with_stock(res, LIBVIRT_CASES + DIRECT_CASES,
                                    "Debian's stock 7.2 is the oracle"):
        return res.finish()

    def timeout(*_):
        raise TimeoutError(f"the test took more than {TIMEOUT} s")
    signal.signal(signal.SIGALRM, timeout)
    signal.alarm(TIMEOUT)
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="vmem-limits-direct-")
    try:
        kvm_fits = stock_fits(workdir)
        libvirt_part(res, kvm_fits)
        direct_part(res, kvm_fits, workdir)
    except TimeoutError as e:
        res.check(False, "the test finishes in time", str(e))
    finally:
        signal.alarm(0)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"    took {time.monotonic() - t0:.0f} s")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
