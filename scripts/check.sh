#!/usr/bin/env bash
# make check: fetch, apply and build as needed, then run every test and end
# with "N passed, N failed[, N skipped]".  Exits non-zero on any failure.
#
# Test logs go to build/test-logs/<name>.log; a failing test's tail is
# printed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bd="$top/build/qemu-build"
logs="$top/build/test-logs"
. "$top/scripts/testlib.sh"
mkdir -p "$logs"
t_start=$SECONDS

# 1. Set-up: any failure here is one failed test and the end of the run.
for step in deps fetch-base apply; do
    run_test "setup-$step" "$top/scripts/$step.sh"
    [ "${failures[*]:-}" = "" ] || finish
done
# The binary, and the series' qtest that tests/test-valgrind-hotplug.py
# runs (QEMU's own suites are built by check-qemu-suites.py below)
targets=()
[ ! -f "$top/build/qemu/tests/qtest/virtio-mem-test.c" ] ||
    targets+=(tests/qtest/virtio-mem-test)
run_test setup-build "$top/scripts/build.sh" ${targets[@]+"${targets[@]}"}
[ "${failures[*]:-}" = "" ] || finish
run_test setup-guest "$top/scripts/guest.sh"
[ "${failures[*]:-}" = "" ] || finish

# Which accelerators the tests use here: qtests the qtest accelerator,
# guests TCG, tests/test-host-kvm.py host KVM if the probe finds it usable
echo "accelerators: qtest (qtests), TCG (guests);" \
     "$(python3 "$top/tests/lib/hostkvm.py")"

# 2. The series itself.
while read -r status rest; do
    count "$status" "$rest"
    echo "$status $rest"
done < <("$top/scripts/check-series.sh" 2>&1 | grep -E '^(PASS|FAIL) ')

# 3. QEMU's own test suites for x86_64 (every qtest, virtio-mem-test
# among them, and the unit tests), as QEMU's "make check" runs them; what
# fails runs on the unpatched base too (scripts/check-qemu-suites.py).
run_test qemu-suites "$top/scripts/check-qemu-suites.py"

# 4. The project's own tests (tests/*.sh, tests/*.py with a main).
for t in "$top"/tests/test-*; do
    [ -x "$t" ] || continue
    run_test "$(basename "${t%.*}")" "$t"
done

# 5. The series' tests against an ASan+UBSan build, and a short fuzz run
# (scripts/check-asan.sh; CHECK_ASAN=0 leaves them out).
if [ "${CHECK_ASAN:-1}" != 0 ]; then
    run_test check-asan "$top/scripts/check-asan.sh"
fi

echo "make check took $(( (SECONDS - t_start) / 60 )) min $(( (SECONDS - t_start) % 60 )) s"
finish
