#!/usr/bin/env bash
# make fuzz SECONDS=N: run the virtio-mem fuzz targets (libFuzzer, ASan and
# UBSan) for N seconds in all (default 60) from the committed seed corpus; new
# inputs go to build/fuzz-corpus, crashes to build/fuzz-artifacts.
# Prints libFuzzer's statistics; fails on a crash or sanitizer report.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/asan-env.sh"
secs=${1:-60}
"$top/scripts/build.sh" qemu-fuzz-x86_64 >/dev/null
corpus="$top/build/fuzz-corpus" artifacts="$top/build/fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
# Leaks: each input runs in a forked child that exits without tearing the
# machine down, so leak checks say nothing here (make check-asan has them)
export ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}"
# Both modes, half of the time each: unplugged-inaccessible=on, and off
# (memslots also follow the usable region); one corpus serves both
half=$(( (secs + 1) / 2 ))
for target in virtio-mem-fuzz virtio-mem-legacy-fuzz; do
    echo "== $target, $half s"
    "$QEMU_BUILD_DIR/qemu-fuzz-x86_64" --fuzz-target="$target" \
        -max_total_time="$half" -print_final_stats=1 -detect_leaks=0 \
        -artifact_prefix="$artifacts/$target-" -close_fd_mask=1 \
        "$corpus" "$top/tests/fuzz/virtio-mem" >"$top/build/fuzz-$target.log" 2>&1 ||
        { tail -60 "$top/build/fuzz-$target.log"; exit 1; }
    grep -v -e '^#[0-9]*\s*\(NEW\|REDUCE\|pulse\)' -e 'protocol violation' \
        "$top/build/fuzz-$target.log" | tail -25
done
