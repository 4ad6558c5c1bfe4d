# shellcheck shell=bash
# Shared by check.sh and check-asan.sh: run tests, count their results and
# end with "N passed, N failed[, N skipped]". Set $logs before sourcing.
passed=0 failed=0 skipped=0
failures=()

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
    # (and its skipped cases, each with its reason in the log)
    summary=$(tail -1 "$logs/$name.log" |
              sed -n 's/^\([0-9]\+\) passed, \([0-9]\+\) failed\(, \([0-9]\+\) skipped\)\?.*$/\1 \2 \4/p')
    if [ -n "$summary" ] && [ $rc -ne 77 ]; then
        set -- $summary
        passed=$((passed + $1))
        failed=$((failed + $2))
        skipped=$((skipped + ${3:-0}))
        if [ $rc -eq 0 ] && [ "$2" -eq 0 ]; then
            echo "PASS $name: $1 checks${3:+, $3 skipped} ($((SECONDS - t0)) s)"
            grep '^SKIP ' "$logs/$name.log" | sed 's/^/    /'
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

