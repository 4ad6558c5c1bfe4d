"""PASS/FAIL lines and the final "N passed, N failed" of our tests."""

import sys

import hostkvm


class Results:
    """accel: what the test's VMs run under, printed first together with
    what host KVM offers here (tests/lib/hostkvm.py)."""

    def __init__(self, accel="TCG"):
        self.passed = self.failed = self.skipped = 0
        print(f"accelerator: {accel}; {hostkvm.probe().describe()}")
        sys.stdout.flush()

    def check(self, ok, what, detail=""):
        """Count and print one check; detail is printed when it failed."""
        if ok:
            self.passed += 1
            print(f"PASS {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}\n    {detail}")
        sys.stdout.flush()
        return ok

    def skip(self, what, why):
        """Count and print a case that could not run here, and why."""
        self.skipped += 1
        print(f"SKIP {what}: {why}")
        sys.stdout.flush()

    def finish(self):
        """Print the totals; the exit status for the test."""
        print(f"{self.passed} passed, {self.failed} failed" +
              (f", {self.skipped} skipped" if self.skipped else ""))
        return 1 if self.failed else 0
