"""Debian's own QEMU 7.2: the oracle of the tests and benchmarks.

It is package qemu-system-x86 (scripts/deps.sh installs it). Once make
deb's packages replace it, /usr/bin/qemu-system-x86_64 is ours: comparing
with it would compare ours with ours and pass without testing anything.
So every user of the oracle asks stock_problem() first and fails with its
answer.
"""

import os
import subprocess

# VMEM_STOCK_QEMU: Debian's binary somewhere else
STOCK = os.path.abspath(os.environ.get("VMEM_STOCK_QEMU") or
                        "/usr/bin/qemu-system-x86_64")


def qemu_version(binary=STOCK):
    """The first line of binary --version, "" if it does not run."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True,
                             text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.splitlines()[0] if out else ""


def stock_problem(binary=STOCK):
    """None if binary is Debian's own QEMU 7.2, else what is wrong."""
    if not os.access(binary, os.X_OK):
        return (f"{binary} is missing: Debian package qemu-system-x86 "
                "(scripts/deps.sh installs it)")
    first = qemu_version(binary)
    if "memslots" in first:
        return (f"{binary} has the series ({first}), not Debian's QEMU: "
                "the tests compare with Debian's own; if make deb's "
                "packages are installed, go back to Debian's (README, "
                "'Going back to Debian's')")
    if " 7.2." not in first or "(Debian " not in first:
        return f"{binary} is not Debian's QEMU 7.2: {first or 'it does not run'}"
    return None
