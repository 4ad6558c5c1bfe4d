"""PASS/FAIL lines and the final "N passed, N failed" of our tests."""

import sys


class Results:
    def __init__(self):
        self.passed = self.failed = 0

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

    def finish(self):
        """Print the totals; the exit status for the test."""
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
