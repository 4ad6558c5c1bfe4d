#!/usr/bin/env bash
# make bench: fetch the peers, then measure side by side, in one run, stock
# 7.2, upstream 10.0 and ours: QEMU-side cost, plug latency, and the real
# KVM memslot metadata (nested KVM). Prints the tables and writes them to
# bench/results/summary.md, the raw records to bench/results/*.jsonl, the
# plot to bench/results/kvm_metadata.png. Never fails on a number; fails
# if a measurement could not be taken.
# Usage: bench/run.sh [qemu_cost|plug_latency|kvm_metadata]...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/peers.sh"
"$top/scripts/guest.sh" >/dev/null
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(qemu_cost plug_latency kvm_metadata)
mkdir -p "$top/bench/results"
out="$top/bench/results/summary.md"
{
    echo "# Benchmark results"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB,"
    echo "$(uname -r); by \`make bench\` (bench/run.sh). No KVM on this machine:"
    echo "guests run under TCG; real KVM runs nested, inside a TCG guest."
    for p in "${parts[@]}"; do
        echo
        python3 "$top/bench/$p.py" || exit 1
    done
} | tee "$out.tmp"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "bench: a measurement failed" >&2; exit 1; }
mv "$out.tmp" "$out"
