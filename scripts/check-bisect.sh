#!/usr/bin/env bash
# make check-bisect: build every prefix of the series and run the series'
# qtests and QEMU's guarding qtests at each (a developer tool; CI does not
# run it). Uses its own work tree and build directory under build/bisect,
# laid out like build/qemu and build/qemu-build so that ccache shares
# objects with the main build.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need git git meson meson
wt="$top/build/qemu"
bwt="$top/build/bisect/qemu"
bbd="$top/build/bisect/qemu-build"
export CCACHE_BASEDIR="$top/build" CCACHE_NOHASHDIR=1
QTESTS=(virtio-mem-test qom-test device-introspect-test device-plug-test)
fail=0

git -C "$wt" worktree remove --force "$bwt" >/dev/null 2>&1 || rm -rf "$bwt"
git -C "$wt" worktree prune
mkdir -p "$(dirname "$bwt")"
git -C "$wt" worktree add -q --detach "$bwt" base
for c in $(git -C "$wt" rev-list --reverse base..HEAD); do
    git -C "$bwt" checkout -q "$c"
    subject=$(git -C "$bwt" log -1 --format=%s)
    targets=()
    for t in "${QTESTS[@]}"; do
        [ -f "$bwt/tests/qtest/$t.c" ] && targets+=("$t")
    done
    if ! QEMU_BUILD_DIR="$bbd" QEMU_SOURCE_DIR="$bwt" "$top/scripts/build.sh" \
            "${targets[@]/#/tests/qtest/}" >"$bbd.log" 2>&1; then
        echo "FAIL build: $subject"
        fail=1
        continue
    fi
    for t in "${targets[@]}"; do
        if meson test -C "$bbd" --no-rebuild "qtest-x86_64/$t" >>"$bbd.log" 2>&1; then
            echo "PASS $t: $subject"
        else
            echo "FAIL $t: $subject"
            fail=1
        fi
    done
done
git -C "$wt" worktree remove --force "$bwt"
exit $fail
