#!/usr/bin/env python3
"""tests/lib/hostkvm.py's own behaviour, where it does not need KVM.

- a cgroup of ours is removed however its block is left: a QEMU that
  fails to start, a limit the kernel refuses;
- the kernel memory of a cgroup v2 is read from memory.stat "kernel", and
  before Linux 5.18 (no "kernel") from memory.current minus anon and file;
- cgroup v2 counts only with the memory controller enabled for the
  root's children;
- the KVM flavour says when kvm.tdp_mmu is absent;
- test-host-kvm skips its cost checks only where the host's MMU and
  kernel make them unable to fail, not by what it measured.

The cgroup cases need root and a memory cgroup controller (skipped with
the reason otherwise); the others replace hostkvm's file reads.
Prints one PASS/FAIL/SKIP line per check and "N passed, N failed[, N
skipped]".
"""

import errno
import glob
import importlib.util
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import hostkvm  # noqa: E402
from results import Results  # noqa: E402
from vmemguest import QEMU, QEMUMachine  # noqa: E402
from qemu.machine.machine import VMLaunchFailure  # noqa: E402


def ours():
    """This process's cgroups that still exist."""
    base = f"{hostkvm.CGROUP}/memory" if hostkvm.cgroup_version() == 1 \
        else hostkvm.CGROUP
    return glob.glob(f"{base}/vmem-{os.getpid()}-*")


def cleanup_cases(res):
    cases = ["a QEMU that fails to start leaves no cgroup behind",
             "a limit the kernel refuses leaves no cgroup behind",
             "a measurement's QEMU that fails is a KVMCostError naming it"]
    if os.geteuid() != 0 or hostkvm.cgroup_version() is None:
        for case in cases:
            res.skip(case, "needs root and a memory cgroup controller")
        return
    workdir = tempfile.mkdtemp(prefix="vmem-hostkvm-")
    raised = None
    existed = False
    try:
        with hostkvm.cgroup(hostkvm.available_limit()) as cg:
            existed = os.path.isdir(cg.path)
            with hostkvm.launched(QEMUMachine(
                    QEMU, args=["-device", "no-such-device"],
                    wrapper=cg.wrapper, base_temp_dir=workdir,
                    sock_dir=workdir)):
                pass
    except Exception as e:  # pylint: disable=broad-except
        raised = e
    # the cgroup was made and QEMU itself refused to start (any other
    # exception would be a test that did not get that far)
    res.check(existed and isinstance(raised, VMLaunchFailure) and not ours(),
              cases[0], f"cgroup made {existed}, raised {raised!r}, "
              f"left {ours()}")
    raised = None
    try:
        limit = hostkvm.available_limit()
        with hostkvm.cgroup(limit) as cg, \
                hostkvm.cost_error("bad", cg, limit), \
                hostkvm.launched(QEMUMachine(
                    QEMU, args=["-device", "no-such-device"],
                    wrapper=cg.wrapper, base_temp_dir=workdir,
                    sock_dir=workdir)):
            pass
    except Exception as e:  # pylint: disable=broad-except
        raised = e
    res.check(isinstance(raised, hostkvm.KVMCostError) and
              str(raised).startswith("bad: VMLaunchFailure") and not ours(),
              cases[2], f"raised {raised!r}, left {ours()}")
    raised = None
    try:
        hostkvm.Cgroup(limit="not-a-number")
    except OSError as e:
        raised = e
    # the kernel refused the limit (EINVAL), after the cgroup was made
    res.check(isinstance(raised, OSError) and raised.errno == errno.EINVAL
              and not ours(), cases[1], f"raised {raised!r}, left {ours()}")
    for path in ours():
        os.rmdir(path)


class FakeFiles:
    """hostkvm._read and os.path.exists over a dict of path -> text."""

    def __init__(self, files):
        self.files = files
        self.saved = (hostkvm._read, hostkvm.os.path.exists)

    def __enter__(self):
        hostkvm._read = lambda path, default=None: \
            self.files.get(path, default)
        hostkvm.os.path.exists = lambda path: path in self.files
        return self

    def __exit__(self, *exc):
        hostkvm._read, hostkvm.os.path.exists = self.saved


def v2_cases(res):
    root = hostkvm.CGROUP
    stat = "anon 4096\nfile 8192\nkernel_stack 16384\nslab 100\n"
    cg = hostkvm.Cgroup.__new__(hostkvm.Cgroup)
    cg.version, cg.path = 2, f"{root}/vmem-x"
    with FakeFiles({f"{cg.path}/memory.stat": stat + "kernel 65536\n",
                    f"{cg.path}/memory.current": "1000000"}):
        res.check(cg.kmem() == 65536, "v2: kernel memory from memory.stat",
                  f"read {cg.kmem()}")
    with FakeFiles({f"{cg.path}/memory.stat": stat,
                    f"{cg.path}/memory.current": "1000000"}):
        res.check(cg.kmem() == 1000000 - 4096 - 8192,
                  "v2 before Linux 5.18: current - anon - file",
                  f"read {cg.kmem()}")
    with FakeFiles({f"{root}/cgroup.controllers": "cpu io memory pids",
                    f"{root}/cgroup.subtree_control": "cpu io pids"}):
        res.check(hostkvm.cgroup_version() is None,
                  "v2 without memory in the root's subtree_control: none",
                  f"version {hostkvm.cgroup_version()}")
    with FakeFiles({f"{root}/cgroup.controllers": "cpu io memory pids",
                    f"{root}/cgroup.subtree_control": "cpu io memory"}):
        res.check(hostkvm.cgroup_version() == 2,
                  "v2 with memory in the root's subtree_control: 2",
                  f"version {hostkvm.cgroup_version()}")


def flavour_case(res):
    info = hostkvm.KVMInfo()
    info.tdp_mmu = None
    res.check("kvm.tdp_mmu absent" in info.flavour(),
              "flavour without kvm.tdp_mmu says it is absent", info.flavour())


def resolvable_cases(res):
    """test-host-kvm skips its cost checks by what the host is, never
    because the measurement came out small."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "test-host-kvm.py")
    spec = importlib.util.spec_from_file_location("test_host_kvm", path)
    thk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thk)
    info = hostkvm.KVMInfo()
    info.backend, info.tdp_mmu, info.kernel = "kvm_pvm", False, "6.1.0-28"
    res.check(thk.unresolvable(info, 0) is None,
              "shadow MMU: a device cost of 0 is checked (fails), not skipped")
    info.backend, info.tdp_mmu = "kvm_amd", True
    res.check(thk.unresolvable(info, 0) is None,
              "TDP MMU before Linux 6.9: checked, not skipped")
    info.kernel = "6.12.57+deb13-amd64"
    why = thk.unresolvable(info, 2 << 20)
    res.check(why is not None and "TDP MMU" in why,
              "TDP MMU from Linux 6.9: skipped, saying why", why)


def main():
    res = Results("none (host cgroups only)")
    cleanup_cases(res)
    v2_cases(res)
    flavour_case(res)
    resolvable_cases(res)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
