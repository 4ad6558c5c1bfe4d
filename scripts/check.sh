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
passed=0 failed=0 skipped=0
failures=()

# QEMU's own tests that guard what the series touches, and the series'
# qtests (present once the series adds them).
QTESTS=(qom-test device-introspect-test qmp-cmd-test test-hmp device-plug-test
        virtio-mem-test)
UNIT_TESTS=(test-bitmap test-bitops)

count() { # status name
    case "$1" in
    PASS) passed=$((passed + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)); failures+=("$2") ;;
    esac
}

run_test() { # name command...
    local name=$1 rc
    shift
    local t0=$SECONDS
    "$@" >"$logs/$name.log" 2>&1
    rc=$?
    # A test that reports its own "N passed, N failed" counts as N tests
    local summary
    summary=$(tail -1 "$logs/$name.log" |
              sed -n 's/^\([0-9]\+\) passed, \([0-9]\+\) failed.*/\1 \2/p')
    if [ -n "$summary" ] && [ $rc -ne 77 ]; then
        set -- $summary
        passed=$((passed + $1))
        failed=$((failed + $2))
        if [ $rc -eq 0 ] && [ "$2" -eq 0 ]; then
            echo "PASS $name: $1 checks ($((SECONDS - t0)) s)"
            return
        fi
        [ "$2" -gt 0 ] || failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL $name (exit $rc), failed checks in $logs/$name.log:"
        grep -A8 '^FAIL' "$logs/$name.log" | head -40 | sed 's/^/    /'
        return
    fi
    if [ $rc -eq 0 ]; then
        echo "PASS $name ($((SECONDS - t0)) s)"
        count PASS "$name"
    elif [ $rc -eq 77 ]; then
        echo "SKIP $name: $(tail -1 "$logs/$name.log")"
        count SKIP "$name"
    else
        echo "FAIL $name (exit $rc), last lines of $logs/$name.log:"
        tail -25 "$logs/$name.log" | sed 's/^/    /'
        count FAIL "$name"
    fi
}

finish() {
    [ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
    if [ "$skipped" -gt 0 ]; then
        echo "$passed passed, $failed failed, $skipped skipped"
    else
        echo "$passed passed, $failed failed"
    fi
    [ "$failed" -eq 0 ]
    exit
}

mkdir -p "$logs"
t_start=$SECONDS

# 1. Set-up: any failure here is one failed test and the end of the run.
for step in deps fetch-base apply; do
    run_test "setup-$step" "$top/scripts/$step.sh"
    [ "${failures[*]:-}" = "" ] || finish
done
# Only the tests that exist in this tree (bisect: earlier patches lack ours)
present=()
for t in "${QTESTS[@]}"; do
    [ -f "$top/build/qemu/tests/qtest/$t.c" ] && present+=("$t")
done
targets=()
for t in "${present[@]}"; do targets+=("tests/qtest/$t"); done
for t in "${UNIT_TESTS[@]}"; do targets+=("tests/unit/$t"); done
run_test setup-build "$top/scripts/build.sh" "${targets[@]}"
[ "${failures[*]:-}" = "" ] || finish
run_test setup-guest "$top/scripts/guest.sh"
[ "${failures[*]:-}" = "" ] || finish

# 2. The series itself.
while read -r status rest; do
    count "$status" "$rest"
    echo "$status $rest"
done < <("$top/scripts/check-series.sh" 2>&1 | grep -E '^(PASS|FAIL) ')

# 3. QEMU's tests through meson, as QEMU's own "make check" runs them.
for t in "${present[@]}"; do
    run_test "qtest-$t" meson test -C "$bd" --no-rebuild --print-errorlogs \
        --timeout-multiplier 3 "qtest-x86_64/$t"
done
for t in "${UNIT_TESTS[@]}"; do
    run_test "unit-$t" meson test -C "$bd" --no-rebuild --print-errorlogs "$t"
done

# 4. The project's own tests (tests/*.sh, tests/*.py with a main).
for t in "$top"/tests/test-*; do
    [ -x "$t" ] || continue
    run_test "$(basename "${t%.*}")" "$t"
done

echo "make check took $(( (SECONDS - t_start) / 60 )) min $(( (SECONDS - t_start) % 60 )) s"
finish
