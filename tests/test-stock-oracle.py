#!/usr/bin/env python3
"""The oracle of the tests is Debian's own QEMU 7.2, never ours.

tests/lib/stockqemu.py's stock_problem(), which test-diff-stock,
test-guest-migration, test-host-kvm and the benchmarks ask before they
compare: Debian's binary passes; a binary with the series (our build,
which says so in its version as make deb's packages do) is refused with
the way back to Debian's; a missing binary names the package.
Prints one PASS/FAIL line per check and "N passed, N failed".
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
from results import Results  # noqa: E402
from stockqemu import STOCK, qemu_version, stock_problem  # noqa: E402
from vmemguest import QEMU  # noqa: E402


def main():
    res = Results("none (--version only)")
    problem = stock_problem()
    res.check(problem is None, f"{STOCK} is Debian's QEMU 7.2 "
              f"({qemu_version() or 'absent'})", problem)
    problem = stock_problem(QEMU) or ""
    res.check("has the series" in problem and "Going back" in problem,
              "our build is refused as the oracle, with the way back",
              problem or f"{QEMU} accepted as Debian's")
    problem = stock_problem("/nonexistent/qemu-system-x86_64") or ""
    res.check("qemu-system-x86" in problem and "missing" in problem,
              "a missing oracle names its package", problem)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
