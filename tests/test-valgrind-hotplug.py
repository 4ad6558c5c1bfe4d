#!/usr/bin/env python3
"""virtio-mem hot-plug cycles under valgrind: no invalid access, no leak of ours.

Runs the qtest's hotplug-cycles case (hot-plug a virtio-mem-pci with
dynamic memslots, plug memory, unplug it, hot-unplug the device; 100 times)
with QEMU under valgrind memcheck and checks its report:
- no memory error (invalid read/write/free, uninitialised jump);
- no "definitely lost" block allocated by the series' code.
QEMU 7.2 itself loses flat views and PCI device objects on hot-unplug under
valgrind (with dynamic-memslots=off as well); those are reported as
information, not counted.

Prints PASS/FAIL lines and "N passed, N failed"; skips (exit 77) without
valgrind.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
from results import Results  # noqa: E402
from vmemguest import BUILD  # noqa: E402

BD = os.path.join(BUILD, "qemu-build")
# Functions of the series that allocate; a lost block allocated by one of
# them is our leak.
OURS = {
    "virtio_mem_prepare_mr", "virtio_mem_prepare_memslots",
    "virtio_mem_release_memslots", "virtio_mem_decide_memslots",
    "virtio_mem_decide_layout",
    "virtio_mem_fill_device_info", "virtio_mem_unplug_request_check",
    "memory_devices_start_listening", "memory_device_decide_memslots",
    "vhost_dev_check_memslots", "pc_virtio_md_pci_unplug_request",
    "pc_virtio_md_pci_unplug", "virtio_mem_update_memslots",
}
ALLOCATORS = re.compile(r"^(g_malloc0?|g_new0?|g_realloc|g_slice_alloc0?|"
                        r"g_strdup\w*|g_memdup2?|malloc|calloc|realloc|"
                        r"memory_region_init\w*|object_\w+|g_hash_table_\w+|"
                        r"g_ptr_array_\w+|qemu_\w*alloc\w*)$")
FRAME = re.compile(r"==\d+==\s+(?:at|by) 0x[0-9A-F]+: (\w+) \(")


def records(log):
    """The loss records and errors of a valgrind log, as lists of lines."""
    out, cur = [], []
    for line in log.splitlines():
        if re.match(r"==\d+== $", line):
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(line)
    if cur:
        out.append(cur)
    return out


def allocating_function(rec):
    """The first frame above the allocators: who asked for the memory."""
    for line in rec[1:]:
        m = FRAME.match(line)
        if m and not ALLOCATORS.match(m.group(1)):
            return m.group(1)
    return None


def main():
    res = Results()
    if not shutil.which("valgrind"):
        print("valgrind is not installed")
        return 77
    with tempfile.TemporaryDirectory(prefix="vmem-vg-") as tmp:
        wrapper = (f"valgrind -q --leak-check=full "
                   f"--show-leak-kinds=definite --log-file={tmp}/vg.%p.log "
                   f"{BD}/qemu-system-x86_64")
        env = dict(os.environ, QTEST_QEMU_BINARY=wrapper,
                   VIRTIO_MEM_TEST_SIZE_MIB="8192",
                   VIRTIO_MEM_TEST_CYCLES="100")
        run = subprocess.run(
            [f"{BD}/tests/qtest/virtio-mem-test", "--tap", "-p",
             "/x86_64/virtio-mem/dynamic-memslots/hotplug-cycles"],
            env=env, cwd=BD, capture_output=True, text=True, timeout=1200,
            check=False)
        res.check(run.returncode == 0 and "\nok 1 " in run.stdout,
                  "hotplug-cycles passes with QEMU under valgrind",
                  run.stdout[-2000:] + run.stderr[-2000:])
        logs = [open(f, encoding="utf-8", errors="replace").read()
                for f in glob.glob(f"{tmp}/vg.*.log")]
    res.check(len(logs) == 1, "valgrind wrote one report", f"{len(logs)}")
    recs = [r for log in logs for r in records(log)]
    errors = [r for r in recs if re.search(
        r"Invalid (read|write|free)|uninitialised|Mismatched free", r[0])]
    res.check(not errors, "no invalid access or use of uninitialised memory",
              "\n".join("\n".join(r[:12]) for r in errors[:3]))
    lost = [r for r in recs if "definitely lost in loss record" in r[0]]
    ours = [r for r in lost if allocating_function(r) in OURS]
    res.check(not ours, "no definitely lost block allocated by the series",
              "\n".join("\n".join(r[:14]) for r in ours[:3]))
    base = sorted({allocating_function(r) or "?" for r in lost} - OURS)
    print(f"info: {len(lost)} definitely lost records allocated elsewhere "
          f"(QEMU 7.2 on hot-unplug): {', '.join(base)}")
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
