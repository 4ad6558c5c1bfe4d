#!/usr/bin/env python3
"""tests/lib/hostkvm.py's own behaviour, where it does not need KVM.

- a cgroup of ours is removed however its block is left: a QEMU that
  fails to start, a limit the kernel refuses;
- the kernel memory of a cgroup v2 is read from memory.stat "kernel", and
  before Linux 5.18 (no "kernel") from memory.current minus anon and file;
- cgroup v2 counts only with the memory controller enabled for the
  root's children;
- the KVM flavour says when kvm.tdp_mmu is absent.

The cgroup cases need root and a memory cgroup controller (skipped with
the reason otherwise); the others replace hostkvm's file reads.
Prints one PASS/FAIL/SKIP line per check and "N passed, N failed[, N
skipped]".
"""

import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import hostkvm  # noqa: E402
from results import Results  # noqa: E402
from vmemguest import QEMU, QEMUMachine  # noqa: E402


def ours():
    """This process's cgroups that still exist."""
    base = f"{hostkvm.CGROUP}/memory" if hostkvm.cgroup_version() == 1 \
        else hostkvm.CGROUP
    return glob.glob(f"{base}/vmem-{os.getpid()}-*")


def cleanup_cases(res):
    cases = ["a QEMU that fails to start leaves no cgroup behind",
             "a limit the kernel refuses leaves no cgroup behind"]
    if os.geteuid() != 0 or hostkvm.cgroup_version() is None:
        for case in cases:
            res.skip(case, "needs root and a memory cgroup controller")
        return
    workdir = tempfile.mkdtemp(prefix="vmem-hostkvm-")
    raised = None
    try:
        with hostkvm.cgroup(hostkvm.available_limit()) as cg, \
                hostkvm.launched(QEMUMachine(
                    QEMU, args=["-device", "no-such-device"],
                    wrapper=cg.wrapper, base_temp_dir=workdir,
                    sock_dir=workdir)):
            pass
    except Exception as e:  # pylint: disable=broad-except
        raised = e
    res.check(raised is not None and not ours(), cases[0],
              f"raised {raised!r}, left {ours()}")
    raised = None
    try:
        hostkvm.Cgroup(limit="not-a-number")
    except OSError as e:
        raised = e
    res.check(raised is not None and not ours(), cases[1],
              f"raised {raised!r}, left {ours()}")
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


def main():
    res = Results("none (host cgroups only)")
    cleanup_cases(res)
    v2_cases(res)
    flavour_case(res)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
