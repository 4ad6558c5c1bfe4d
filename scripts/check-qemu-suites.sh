#!/usr/bin/env bash
# QEMU's own test suites for x86_64 (meson suites qtest-x86_64 and unit)
# on our build, as QEMU's "make check" runs them. Every test that fails
# there runs again on an unpatched build of the same base and
# configuration (build/base: the tag "base" of build/qemu, built by
# scripts/build.sh in build/base/qemu-build, laid out like build/qemu so
# that ccache shares the objects):
# - passes unpatched, fails patched: the series broke it, FAIL;
# - fails on both: the base's own failure, PASS only if
#   tests/qemu-suites/base-failures gives its reason (a new one needs one);
# - only ours has it (virtio-mem-test): FAIL.
# Where /dev/kvm exists, the tests run with it hidden (a mount namespace)
# so that they use TCG on every host: tests that pick KVM by themselves
# fail with this workplace's kvm_pvm, patched or not.
#
# Prints "PASS|FAIL qemu <suite>/<test>" per test and "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need git git meson meson python3 python3 unshare util-linux
bd="${QEMU_BUILD_DIR:-$top/build/qemu-build}"
base_wt="$top/build/base/qemu"
base_bd="$top/build/base/qemu-build"
known="$top/tests/qemu-suites/base-failures"
SUITES=(qtest-x86_64 unit)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# meson test in build dir $2 for tests or suites $3..., /dev/kvm hidden;
# the results (name result) in $out/$1.results, its output in $out/$1.log
run_suites() {
    local label=$1 dir=$2
    shift 2
    local cmd=(meson test -C "$dir" --no-rebuild --print-errorlogs
               --num-processes 2 --timeout-multiplier 3 "$@")
    if [ -e /dev/kvm ] && [ "$(id -u)" = 0 ]; then
        unshare -m bash -c 'mount --bind /dev/null /dev/kvm && exec "$@"' \
            hide-kvm "${cmd[@]}"
    else
        "${cmd[@]}"
    fi >"$out/$label.log" 2>&1
    python3 - "$dir/meson-logs/testlog.json" >"$out/$label.results" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    # "qemu:<suites> / <test>"
    print(t["name"].split(" / ", 1)[-1], t["result"])
PY
}

if [ -e /dev/kvm ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "# /dev/kvm hidden: the tests run under TCG (and qtest)"
    else
        echo "# /dev/kvm not hidden (not root): tests may pick this host's KVM"
    fi
fi

# 1. ours: build every test of the suites, run them
suite_args=()
for s in "${SUITES[@]}"; do suite_args+=(--suite "$s"); done
if ! ninja -C "$bd" >"$out/build.log" 2>&1; then
    tail -20 "$out/build.log"
    echo "FAIL qemu: the tests of ${SUITES[*]} build"
    echo "0 passed, 1 failed"
    exit 1
fi
run_suites ours "$bd" "${suite_args[@]}"
mapfile -t failing < <(awk '$2 != "OK" && $2 != "SKIP" && $2 != "EXPECTEDFAIL" {print $1}' \
                       "$out/ours.results")

# 2. the unpatched base, for what failed
declare -A base_result=()
if [ ${#failing[@]} -gt 0 ]; then
    echo "# failing on ours: ${failing[*]}; running them on the unpatched base"
    git -C "$top/build/qemu" worktree remove --force "$base_wt" >/dev/null 2>&1 ||
        rm -rf "$base_wt"
    git -C "$top/build/qemu" worktree prune
    mkdir -p "$(dirname "$base_wt")"
    git -C "$top/build/qemu" worktree add -q --detach "$base_wt" base
    targets=()
    for name in "${failing[@]}"; do
        t=${name#*/}
        for d in tests/qtest tests/unit; do
            [ -f "$base_wt/$d/$t.c" ] && targets+=("$d/$t")
        done
    done
    if QEMU_SOURCE_DIR="$base_wt" QEMU_BUILD_DIR="$base_bd" \
            "$top/scripts/build.sh" "${targets[@]}" >"$out/base-build.log" 2>&1; then
        present=()
        for name in "${failing[@]}"; do
            [ -f "$base_wt/tests/qtest/${name#*/}.c" ] ||
                [ -f "$base_wt/tests/unit/${name#*/}.c" ] && present+=("$name")
        done
        if [ ${#present[@]} -gt 0 ]; then
            run_suites base "$base_bd" "${present[@]}"
            while read -r name result; do
                base_result[$name]=$result
            done <"$out/base.results"
        fi
    else
        tail -20 "$out/base-build.log"
        echo "# the unpatched base did not build"
    fi
fi

# 3. the verdict per test
passed=0 failed=0
while read -r name result; do
    case $result in
    OK|SKIP|EXPECTEDFAIL)
        echo "PASS qemu $name$([ "$result" = OK ] || echo " ($result)")"
        passed=$((passed + 1))
        continue
        ;;
    esac
    reason=$(sed -n "s|^$name: ||p" "$known" 2>/dev/null)
    base=${base_result[$name]:-}
    if [ -z "$base" ]; then
        echo "FAIL qemu $name: $result on ours, not in the unpatched base"
    elif [ "$base" = OK ]; then
        echo "FAIL qemu $name: $result on ours, passes unpatched (the series broke it)"
    elif [ -n "$reason" ]; then
        echo "PASS qemu $name: fails on the base too ($base): $reason"
        passed=$((passed + 1))
        continue
    else
        echo "FAIL qemu $name: fails on the base too ($base), with no reason in $known"
    fi
    failed=$((failed + 1))
    grep -A15 "^[0-9/ ]*[^ ]*$name " "$out/ours.log" | head -20 | sed 's/^/    /'
done <"$out/ours.results"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
