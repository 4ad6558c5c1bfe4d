#!/usr/bin/env python3
"""QEMU's own test suites for x86_64 on our build, against the unpatched base.

Runs the meson suites qtest-x86_64 and unit on our build (build/qemu-build),
as QEMU's "make check" runs them. Every test that fails there runs again on
an unpatched build of the same base and configuration: the tag "base" of
build/qemu, checked out afresh in build/base/qemu and built by
scripts/build.sh in build/base/qemu-build (laid out like build/qemu, so
that ccache shares the objects). Verdicts:
- passes on ours (or skips, saying why): PASS;
- fails on ours, passes unpatched, or is not in the base: FAIL;
- fails on both: the test runs again subtest by subtest (a GLib test stops
  at its first failure, which would hide the others) on both builds; a
  subtest that passes unpatched and fails on ours is a FAIL, and the
  failures both share must have their reason in
  tests/qemu-suites/base-failures.
A test listed by meson that gives no result is a FAIL too, as is a run
that gives none at all.

Where /dev/kvm exists and we are root, the tests run in a mount namespace
where /dev/kvm is an empty read-only file, so that tests that pick KVM by
themselves (qtest_has_accel: access(R_OK|W_OK)) use TCG on every host;
this workplace's kvm_pvm fails pxe-test and migration-test patched or not.

Prints "PASS|FAIL qemu <test>" per test and "N passed, N failed".
"""

import json
import os
import shutil
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(TOP, "build")
OURS = os.environ.get("QEMU_BUILD_DIR") or os.path.join(BUILD, "qemu-build")
BASE_WT = os.path.join(BUILD, "base", "qemu")
BASE_BD = os.path.join(BUILD, "base", "qemu-build")
KNOWN = os.path.join(TOP, "tests", "qemu-suites", "base-failures")
SUITES = ["qtest-x86_64", "unit"]
GOOD = ("OK", "SKIP", "EXPECTEDFAIL")
# A read-only empty regular file in place of /dev/kvm: access(W_OK) fails
# for it even as root (a device node would still be writable)
HIDE_KVM = ["unshare", "-m", "sh", "-c",
            "f=$(mktemp) && mount --bind \"$f\" /dev/kvm && rm -f \"$f\" && "
            "mount -o remount,bind,ro /dev/kvm && exec \"$@\"", "hide-kvm"]


class Failure(Exception):
    """The check cannot give a verdict per test."""


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, **kw)


def kvm_prefix():
    """The command prefix that hides /dev/kvm, if it exists and can be."""
    if not os.path.exists("/dev/kvm"):
        print("# no /dev/kvm: the tests use TCG and qtest")
        return []
    if os.geteuid() == 0 and run(HIDE_KVM + ["true"]).returncode == 0:
        print("# /dev/kvm hidden (an empty read-only file): the tests use "
              "TCG and qtest")
        return HIDE_KVM
    print("# /dev/kvm not hidden (needs root and a mount namespace): tests "
          "may pick this host's KVM")
    return []


def listed(builddir):
    """The tests of SUITES that meson knows in builddir."""
    args = ["meson", "test", "-C", builddir, "--no-rebuild", "--list"]
    for s in SUITES:
        args += ["--suite", s]
    p = run(args)
    if p.returncode:
        raise Failure(f"meson test --list failed:\n{p.stdout[-2000:]}")
    return [line.split(" / ", 1)[1] for line in p.stdout.splitlines()
            if " / " in line]


def meson_test(builddir, prefix, what):
    """{test: (result, command, env)} of one meson test run."""
    log = os.path.join(builddir, "meson-logs", "testlog.json")
    if os.path.exists(log):
        os.unlink(log)
    p = run(prefix + ["meson", "test", "-C", builddir, "--no-rebuild",
                      "--num-processes", "2", "--timeout-multiplier", "3"] +
            what)
    results = {}
    try:
        with open(log, encoding="utf-8") as f:
            for line in f:
                t = json.loads(line)
                # "qemu:<suites> / <test>"
                results[t["name"].split(" / ", 1)[-1]] = (
                    t["result"], t["command"], t.get("env", {}))
    except (OSError, ValueError) as e:
        raise Failure(f"meson test gave no results ({e}):\n"
                      f"{p.stdout[-2000:]}") from e
    if not results:
        raise Failure(f"meson test ran no test:\n{p.stdout[-2000:]}")
    return results, p.stdout


def subtests(prefix, builddir, command, env):
    """{path: passed} of a GLib test, each subtest run on its own, in the
    build directory as meson runs it."""
    cmd = [c for c in command if c not in ("--tap", "-k")]
    p = run(prefix + cmd + ["-l"], env=env, cwd=builddir)
    paths = [line.strip() for line in p.stdout.splitlines()
             if line.startswith("/")]
    return {path: run(prefix + cmd + ["-p", path], env=env,
                      cwd=builddir).returncode == 0
            for path in paths}


def known_reasons():
    reasons = {}
    with open(KNOWN, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, reason = line.split(": ", 1)
                reasons[name.strip()] = reason.strip()
    return reasons


def build_base(tests):
    """Check out and build the unpatched base with these tests."""
    wt = os.path.join(BUILD, "qemu")
    run(["git", "-C", wt, "worktree", "remove", "--force", BASE_WT])
    shutil.rmtree(BASE_WT, ignore_errors=True)
    run(["git", "-C", wt, "worktree", "prune"])
    os.makedirs(os.path.dirname(BASE_WT), exist_ok=True)
    p = run(["git", "-C", wt, "worktree", "add", "-q", "--detach", BASE_WT,
             "base"])
    if p.returncode:
        raise Failure(f"no work tree of the base: {p.stdout}")
    targets = [f"{d}/{t.split('/')[-1]}" for t in tests
               for d in ("tests/qtest", "tests/unit")
               if os.path.exists(os.path.join(BASE_WT, d,
                                              t.split("/")[-1] + ".c"))]
    env = dict(os.environ, QEMU_SOURCE_DIR=BASE_WT, QEMU_BUILD_DIR=BASE_BD)
    p = run([os.path.join(TOP, "scripts", "build.sh")] + targets, env=env)
    if p.returncode:
        raise Failure(f"the unpatched base does not build:\n"
                      f"{p.stdout[-2000:]}")


def check():
    prefix = kvm_prefix()
    p = run(["ninja", "-C", OURS])
    if p.returncode:
        raise Failure(f"the tests do not build:\n{p.stdout[-2000:]}")
    want = listed(OURS)
    ours, out = meson_test(OURS, prefix,
                           [a for s in SUITES for a in ("--suite", s)])
    failing = [t for t, (r, _, _) in ours.items() if r not in GOOD]
    base = {}
    if failing:
        print(f"# failing on ours: {' '.join(failing)}; they run on the "
              "unpatched base too")
        build_base(failing)
        present = [t for t in failing
                   if any(os.path.exists(os.path.join(
                       BASE_WT, d, t.split("/")[-1] + ".c"))
                       for d in ("tests/qtest", "tests/unit"))]
        if present:
            base, _ = meson_test(BASE_BD, prefix, present)
    reasons = known_reasons()
    passed = failed = 0
    for t in want:
        verdict, detail = verdict_of(t, ours, base, reasons, prefix)
        print(f"{verdict} qemu {t}{': ' + detail if detail else ''}")
        if verdict == "PASS":
            passed += 1
        else:
            failed += 1
            excerpt = [line for line in out.splitlines() if t in line]
            print("\n".join("    " + line for line in excerpt[:10]))
    return passed, failed


def verdict_of(t, ours, base, reasons, prefix):
    # pylint: disable=too-many-return-statements
    if t not in ours:
        return "FAIL", "listed by meson, gave no result"
    result, command, env = ours[t]
    if result in GOOD:
        return "PASS", "" if result == "OK" else result
    if t not in base:
        return "FAIL", f"{result} on ours, not in the unpatched base"
    base_result, base_command, base_env = base[t]
    if base_result in GOOD:
        return "FAIL", (f"{result} on ours, {base_result} unpatched: the "
                        "series broke it")
    if t not in reasons:
        return "FAIL", (f"fails on the base too ({base_result}), with no "
                        f"reason in {os.path.relpath(KNOWN, TOP)}")
    ours_subs = subtests(prefix, OURS, command, env)
    base_subs = subtests(prefix, BASE_BD, base_command, base_env)
    broken = [s for s, ok in ours_subs.items()
              if not ok and base_subs.get(s, False)]
    missing = [s for s in base_subs if s not in ours_subs]
    if broken or missing or not ours_subs:
        return "FAIL", (f"subtests failing on ours only: {broken}, "
                        f"missing on ours: {missing}")
    shared = sorted(s for s, ok in ours_subs.items() if not ok)
    return "PASS", (f"fails on the base too, in the same {len(shared)} of "
                    f"{len(ours_subs)} subtests ({', '.join(shared)}): "
                    f"{reasons[t]}")


def main():
    try:
        passed, failed = check()
    except Failure as e:
        print(f"FAIL qemu suites: {e}")
        passed, failed = 0, 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
