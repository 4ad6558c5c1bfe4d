"""Host KVM: one probe, memory cgroups, and paused KVM destinations.

probe() decides whether this machine's /dev/kvm can run VMs: it opens
/dev/kvm and creates a VM (KVM_CREATE_VM), and records what KVM is here:
the vendor module or backend (kvm_intel, kvm_amd, kvm_pvm), kvm.tdp_mmu,
SMM support, the memslot limit, the host kernel and the cgroup version.
Every test, the demo and the bench print its describe() line, and skip
their KVM cases with its reason when it failed. VMEM_NO_KVM=1 makes the
probe fail on purpose (the run without KVM, on a machine with it).

What KVM allocates for memslots (rmap, gfn_track, lpage_info, dirty
bitmaps) is charged to the memory cgroup of the process that creates the
memslot (GFP_KERNEL_ACCOUNT). Cgroup puts a QEMU process into a memory
cgroup of its own before it execs and reads the kernel memory charged to
it: memory.kmem.usage_in_bytes on cgroup v1, memory.stat "kernel" on v2.
Both also count page tables and other kernel objects of the process, so
callers compare runs that differ only in the memslots.

A guest cannot run under every host KVM (kvm_pvm emulates privileged
instructions too slowly for an unmodified Linux), but the memslots of a
paused VM are what we measure: a paused KVM QEMU started with
destination_args() waits for a migration, and migrate_to() moves a TCG
guest's state into it, plug state included; the destination then maps what the guest has plugged.
"""

import contextlib
import errno
import fcntl
import os
import platform
import time

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_NR_MEMSLOTS = 10
KVM_CAP_X86_SMM = 117
CGROUP = "/sys/fs/cgroup"


def _read(path, default=None):
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return default


def cpu_vendor():
    """The host CPU's vendor string (GenuineIntel, AuthenticAMD)."""
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    return "GenuineIntel"


def cgroup_version():
    """1 or 2 for the memory controller's hierarchy, None without one.

    On v2 the controller must also be enabled for the root's children
    (cgroup.subtree_control), or a cgroup of ours would have no
    memory.stat to read.
    """
    if os.path.exists(f"{CGROUP}/memory/memory.kmem.usage_in_bytes"):
        return 1
    if "memory" in (_read(f"{CGROUP}/cgroup.subtree_control") or "").split():
        return 2
    return None


def available_limit():
    """Half of the memory available now: what one QEMU may charge."""
    with open("/proc/meminfo", encoding="ascii") as f:
        avail = next(int(line.split()[1]) * 1024 for line in f
                     if line.startswith("MemAvailable:"))
    return avail // 2


class KVMInfo:
    """What the probe found; ok is False with reason when KVM is unusable."""

    def __init__(self):
        self.ok = False
        self.reason = ""
        self.api = self.memslots = None
        self.smm = False
        self.backend = next((m for m in ("kvm_pvm", "kvm_intel", "kvm_amd")
                             if os.path.isdir(f"/sys/module/{m}")), None)
        tdp = _read("/sys/module/kvm/parameters/tdp_mmu")
        self.tdp_mmu = None if tdp is None else tdp in ("Y", "1")
        self.kernel = platform.release()
        self.cgroup = cgroup_version()

    def mmu(self):
        if self.backend == "kvm_pvm" or self.tdp_mmu is False:
            return "shadow MMU"
        return "TDP MMU" if self.tdp_mmu else "MMU unknown"

    def flavour(self):
        """One phrase for tables: backend, MMU, SMM, kernel."""
        tdp = {True: "kvm.tdp_mmu=Y", False: "kvm.tdp_mmu=N",
               None: "kvm.tdp_mmu absent"}[self.tdp_mmu]
        return (f"{self.backend or 'kvm'}, {self.mmu()} ({tdp}), "
                f"SMM {'yes' if self.smm else 'no'}, host kernel {self.kernel}")

    def describe(self):
        if not self.ok:
            return f"host KVM: not used ({self.reason})"
        return (f"host KVM: {self.flavour()}, API {self.api}, "
                f"{self.memslots} memslots, memory cgroup v{self.cgroup}")


def probe():
    """KVMInfo of this machine: /dev/kvm opens and KVM_CREATE_VM works."""
    info = KVMInfo()
    if os.environ.get("VMEM_NO_KVM") == "1":
        info.reason = "VMEM_NO_KVM=1"
        return info
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        info.reason = f"/dev/kvm: {e.strerror}"
        return info
    try:
        info.api = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        try:
            vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        except OSError as e:
            info.reason = f"KVM_CREATE_VM: {e.strerror}"
            return info
        info.memslots = fcntl.ioctl(vm, KVM_CHECK_EXTENSION,
                                    KVM_CAP_NR_MEMSLOTS)
        info.smm = fcntl.ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_X86_SMM) > 0
        os.close(vm)
    finally:
        os.close(fd)
    if os.geteuid() != 0:
        info.reason = "not root: no memory cgroup of our own"
    elif info.cgroup is None:
        info.reason = ("no memory cgroup controller (v1 memory.kmem, or v2 "
                       "with memory in the root's cgroup.subtree_control)")
    else:
        info.ok = True
    return info


def probe_with_stock(res, cases, oracle):
    """probe() for a test that compares with Debian's stock 7.2 under host
    KVM, or None when it cannot run: without usable KVM each of cases is
    skipped with the reason; without a usable stock 7.2 the check named
    oracle fails, saying why (tests/lib/stockqemu.py)."""
    from stockqemu import stock_problem  # pylint: disable=import-outside-toplevel
    info = probe()
    if not info.ok:
        for case in cases:
            res.skip(case, f"no usable host KVM ({info.reason})")
        return None
    problem = stock_problem()
    if problem:
        res.check(False, oracle, problem)
        return None
    return info


class Cgroup:
    """A memory cgroup of its own for one process (see the module's doc).

    limit: bytes the cgroup may charge, so that a QEMU asking KVM for more
    metadata than the host has fails inside its cgroup instead of pushing
    the whole machine into the OOM killer.
    """
    count = 0

    def __init__(self, limit=None, name=None):
        Cgroup.count += 1
        self.name = name or f"vmem-{os.getpid()}-{Cgroup.count}"
        self.version = cgroup_version()
        base = f"{CGROUP}/memory" if self.version == 1 else CGROUP
        self.path = f"{base}/{self.name}"
        os.mkdir(self.path)
        if limit:
            try:
                self.set_limit(limit)
            except OSError:
                os.rmdir(self.path)
                raise
        self.wrapper = ["/bin/sh", "-c",
                        f'echo $$ > {self.path}/cgroup.procs && exec "$@"',
                        "qemu-in-cgroup"]

    def set_limit(self, limit):
        """Limit the cgroup to limit bytes; None: no limit."""
        knob = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        value = str(limit) if limit else ("-1" if self.version == 1
                                          else "max")
        with open(f"{self.path}/{knob}", "w", encoding="ascii") as f:
            f.write(value)

    def kmem(self):
        """Kernel memory charged to the cgroup, in bytes."""
        if self.version == 1:
            return int(_read(f"{self.path}/memory.kmem.usage_in_bytes"))
        stat = dict(line.split() for line in
                    _read(f"{self.path}/memory.stat").splitlines())
        if "kernel" in stat:
            return int(stat["kernel"])
        # before Linux 5.18 memory.stat has no "kernel": what is neither
        # anonymous nor page cache is the kernel's
        current = int(_read(f"{self.path}/memory.current"))
        return current - int(stat["anon"]) - int(stat["file"])

    def oom_killed(self):
        """Whether the cgroup's OOM killer struck (its limit was hit)."""
        if self.version == 1:
            text = _read(f"{self.path}/memory.oom_control") or ""
        else:
            text = _read(f"{self.path}/memory.events") or ""
        return any(line.split()[0] == "oom_kill" and line.split()[1] != "0"
                   for line in text.splitlines() if line.strip())

    def remove(self, timeout=10):
        """rmdir once the process has left (charges move to the parent)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(self.path)
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)


@contextlib.contextmanager
def cgroup(limit=None):
    """A Cgroup(limit) that is removed when the block is left."""
    cg = Cgroup(limit)
    try:
        yield cg
    finally:
        cg.remove()


@contextlib.contextmanager
def launched(vm):
    """vm (a QEMUMachine) launched, and shut down when the block is left.

    Use it inside the cgroup() block of vm's cgroup, so that the process
    has left the cgroup before it is removed.
    """
    vm.launch()
    try:
        yield vm
    finally:
        vm.shutdown()


def replace_arg(args, option, value):
    """args with the value of every "option value" pair replaced."""
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a == option:
            out[i + 1] = value
    return out


def destination_args(src_args, accel="kvm"):
    """The source's command line for a paused destination under accel,
    waiting for "migrate-incoming", without a serial log of its own."""
    args = replace_arg(replace_arg(src_args, "-accel", accel),
                       "-serial", "null")
    return args + ["-S", "-incoming", "defer"]


def dirty_logging(qmp, kmem, calc_time=1):
    """Kernel memory (kmem()) that calc-dirty-rate's dirty logging adds at
    its peak; qmp(cmd, **args) returns a command's "return"."""
    before = peak = kmem()
    qmp("calc-dirty-rate", **{"calc-time": calc_time, "mode": "dirty-bitmap"})
    deadline = time.monotonic() + 60
    while qmp("query-dirty-rate")["status"] != "measured":
        peak = max(peak, kmem())
        if time.monotonic() > deadline:
            raise RuntimeError("calc-dirty-rate did not finish")
        time.sleep(0.02)
    return peak - before


def migrate_to(src_qmp, dst, uri, timeout=120):
    """Stop the source, migrate it into dst, wait for completion.

    src_qmp(cmd, **args) returns a command's "return". The source is left
    in postmigrate: "cont" resumes it (for the next size).
    """
    r = dst.qmp("migrate-incoming", uri=uri)
    if "error" in r:
        raise RuntimeError(f"migrate-incoming: {r['error']}")
    src_qmp("stop")
    src_qmp("migrate", uri=uri)
    deadline = time.monotonic() + timeout
    while True:
        status = src_qmp("query-migrate").get("status")
        if status == "completed":
            break
        if status in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"migration {status}: "
                               f"{src_qmp('query-migrate')}")
        time.sleep(0.05)
    # the destination's post_load has run once it reports "paused"
    # after the incoming migration (not "inmigrate")
    while dst.qmp("query-status")["return"]["status"] == "inmigrate":
        if time.monotonic() > deadline:
            raise RuntimeError("the destination stays in inmigrate")
        time.sleep(0.05)


class KVMCostError(Exception):
    """A paused KVM QEMU of a measurement did not start or died."""


def _migrate_into(src, workdir, name, setting):
    """(kernel memory before, after, mapped memslots) of a paused KVM
    destination with dynamic-memslots=setting that src migrates into."""
    # pylint: disable=import-outside-toplevel
    from vmemguest import QEMU, QEMUMachine, mapped_memslots
    args = [a.replace("dynamic-memslots=on", f"dynamic-memslots={setting}")
            for a in src.vm.args]
    limit = available_limit()
    try:
        # "off" pays KVM for the whole device: in a cgroup with a limit,
        # a device bigger than the host fails alone, not the host
        with cgroup(limit) as cg, cost_error(name, cg, limit), \
                launched(QEMUMachine(QEMU, args=destination_args(args),
                                     name=name, wrapper=cg.wrapper,
                                     base_temp_dir=workdir,
                                     sock_dir=workdir)) as dst:
            before = cg.kmem()
            migrate_to(src.qmp, dst, f"unix:{workdir}/{name}.sock")
            after = cg.kmem()
            tree = dst.qmp("human-monitor-command",
                           **{"command-line": "info mtree"})["return"]
            return before, after, mapped_memslots(tree)
    finally:
        # the source stopped for the migration (or before it failed)
        src.qmp("cont")


@contextlib.contextmanager
def cost_error(name, cg, limit):
    """Turns any failure of the QEMU in cg inside the block into a
    KVMCostError that says why, the cgroup's OOM killer first."""
    try:
        yield
    except Exception as e:
        if cg.oom_killed():
            why = (f"KVM and QEMU needed more than the cgroup limit of "
                   f"{limit >> 20} MiB (half of the memory available; OOM "
                   f"killed)")
        else:
            why = f"{type(e).__name__}: {e}"
        raise KVMCostError(f"{name}: {why}") from e


def kvm_cost(src, workdir, name):
    """What KVM allocates for src's device (a VMemGuest with
    dynamic-memslots=on, under TCG, with the host CPU's vendor) as it is
    plugged right now: (on, off, memslots the "on" destination mapped).

    src migrates into a paused KVM QEMU with dynamic-memslots=on, resumes,
    then into one with "off". "off" maps the whole device before the
    migration starts, "on" only when the plug state arrives. Both receive
    the same pages, so what receiving them costs the kernel (page tables)
    cancels out: on = growth(on) - growth(off), off = the difference of
    the two before the migration.
    """
    on0, on1, slots = _migrate_into(src, workdir, f"{name}-on", "on")
    off0, off1, _ = _migrate_into(src, workdir, f"{name}-off", "off")
    return (on1 - on0) - (off1 - off0), off0 - on0, slots



# Memory limits (tests/test-memory-limits.py, bench/memory_limits.py): what
# a QEMU needs under a memory cgroup's limit, and how it fails without it.

def cgroup_peak(cg):
    """The most memory (user and kernel) charged to cg (a Cgroup) at once:
    memory.max_usage_in_bytes on cgroup v1, memory.peak on v2 (Linux 5.19
    and later; before that memory.current, what is charged now)."""
    return cgroup_peak_at(cg.path, cg.version)


def cgroup_peak_at(path, version):
    """cgroup_peak() of the memory cgroup directory path."""
    if version == 1:
        return int(_read(f"{path}/memory.max_usage_in_bytes"))
    peak = _read(f"{path}/memory.peak")
    return int(peak if peak is not None else _read(f"{path}/memory.current"))


def cgroup_limit_at(path, version):
    """The memory limit of the memory cgroup directory path, as its file
    says it (None if it cannot be read)."""
    return _read(f"{path}/memory.limit_in_bytes" if version == 1
                 else f"{path}/memory.max")


def cgroup_limit_hits(path, version):
    """How often the memory cgroup at path reached its limit: v1
    memory.failcnt; v2 the "max" count of memory.events (which counts its
    descendants' too). None if the file cannot be read (cgroup gone)."""
    if version == 1:
        text = _read(f"{path}/memory.failcnt")
        return None if text is None else int(text)
    text = _read(f"{path}/memory.events")
    if text is None:
        return None
    events = dict(line.split() for line in text.splitlines() if line.strip())
    return int(events.get("max", 0))


def systemd_cgroup2():
    """Whether systemd manages this host (sd_booted(): /run/systemd/system)
    on the unified cgroup hierarchy (cgroup v2) with the memory controller:
    where "systemd-run --scope -p MemoryMax=" limits a process."""
    return (os.path.isdir("/run/systemd/system") and
            os.path.exists(f"{CGROUP}/cgroup.controllers") and
            "memory" in (_read(f"{CGROUP}/cgroup.controllers") or "").split())


class KernelLog:
    """The kernel log's records (/dev/kmsg) from the moment of creation on.

    ok is False where it cannot be read (no CAP_SYSLOG, a container);
    then lines() is always empty and callers rely on other evidence.
    """

    def __init__(self):
        self.ok = True
        self.fd = None
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK |
                              os.O_CLOEXEC)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.ok = False
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    def lines(self):
        """The messages logged since the last call (or creation)."""
        out = []
        while self.fd is not None:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:
                continue    # records were overwritten: read on
            except OSError:
                break
            text = rec.decode("utf-8", "replace")
            out.append(text.split(";", 1)[1].split("\n")[0]
                       if ";" in text else text.strip())
        return out

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def oom_kills(lines, needle):
    """The kernel's "oom-kill:" records among lines (KernelLog.lines())
    whose victim is in a memory cgroup whose path contains needle, or whose
    pid is needle (an int)."""
    found = []
    for line in lines:
        if not line.startswith("oom-kill:"):
            continue
        fields = dict(f.split("=", 1) for f in line[len("oom-kill:"):]
                      .split(",") if "=" in f)
        if (isinstance(needle, int) and fields.get("pid") == str(needle)) or \
                (isinstance(needle, str) and
                 needle in fields.get("task_memcg", "")):
            found.append(line)
    return found

if __name__ == "__main__":
    print(probe().describe())
