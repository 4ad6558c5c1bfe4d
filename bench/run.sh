#!/usr/bin/env bash
# make bench: fetch the peers, then measure QEMU-side cost and plug latency
# of stock 7.2, upstream 10.0 and ours side by side, in one run. Prints the
# tables and writes them to bench/results.md. Never fails on a number;
# fails if a measurement could not be taken.
# Usage: bench/run.sh [qemu_cost|plug_latency]...
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/peers.sh"
"$top/scripts/guest.sh" >/dev/null
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(qemu_cost plug_latency)
out="$top/bench/results.md"
{
    echo "# Benchmark results"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB,"
    echo "$(uname -r); by \`make bench\` (bench/run.sh). No KVM on this machine:"
    echo "guests run under TCG."
    for p in "${parts[@]}"; do
        echo
        python3 "$top/bench/$p.py"
    done
} | tee "$out.tmp"
mv "$out.tmp" "$out"
