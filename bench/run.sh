#!/usr/bin/env bash
# make bench: fetch the peers, then measure side by side, in one run, stock
# 7.2, upstream 10.0 and ours: QEMU-side cost, plug latency, and the real
# KVM memslot metadata on host KVM where /dev/kvm works (host_kvm) and
# nested in a TCG guest for what the host lacks (kvm_metadata), and a Debian host with a 64-region vhost
# device (debian_host). Prints the tables and writes them to
# bench/results/summary.md, the raw records to bench/results/*.jsonl, the
# plot to bench/results/kvm_metadata.png. Never fails on a number; fails
# if a measurement could not be taken.
# and what deleting memslots costs a running KVM guest, nested (zap_cost).
# And the memslot layouts side by side (layout): what stock, upstream, ours
# with equal and ours with growing memslots map while real guests plug.
# And the smallest memory limit (libvirt's hard_limit, systemd's MemoryMax=)
# under which a paused KVM VM with a virtio-mem device starts (memory_limits).
# Usage: bench/run.sh [qemu_cost|plug_latency|debian_host|host_kvm|kvm_metadata|zap_cost|layout|memory_limits]...
#        bench/run.sh summary   (only rewrite summary.md from the parts)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need python3 python3 free procps
"$top/scripts/peers.sh"
"$top/scripts/guest.sh" >/dev/null
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(qemu_cost plug_latency debian_host host_kvm kvm_metadata zap_cost layout memory_limits)
[ "${parts[*]}" != summary ] || parts=()
res="$top/bench/results"
mkdir -p "$res"
machine="$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
for p in ${parts[@]+"${parts[@]}"}; do
    {
        echo "_Measured $(date -u '+%Y-%m-%d %H:%M') UTC on $machine by" \
             "\`bench/run.sh $p\`._"
        echo
        python3 "$top/bench/$p.py"
    } > "$res/$p.md.tmp" || { echo "bench: $p: a measurement failed" >&2; exit 1; }
    mv "$res/$p.md.tmp" "$res/$p.md"
    cat "$res/$p.md"
done

# The summary: the latest result of every part
{
    echo "# Benchmark results"
    echo
    echo "By \`make bench\` (bench/run.sh): stock QEMU 7.2, upstream 10.0 and"
    echo "ours side by side. Guests run under TCG; KVM is measured on the"
    echo "host's /dev/kvm with paused VMs where it works (bench/host_kvm.py,"
    echo "which says which KVM), and nested in a TCG guest for SMM, the TDP MMU"
    echo "and running KVM guests (bench/kvm_metadata.py)."
    for p in layout host_kvm memory_limits kvm_metadata zap_cost debian_host qemu_cost plug_latency; do
        [ -f "$res/$p.md" ] || continue
        echo
        cat "$res/$p.md"
    done
    [ ! -f "$res/layout.png" ] || printf '\n![Mapped memory while a guest plugs](layout.png)\n'
    [ ! -f "$res/host_kvm.png" ] || printf '\n![KVM metadata on host KVM](host_kvm.png)\n'
    [ ! -f "$res/kvm_metadata.png" ] || printf '\n![KVM metadata vs plugged memory](kvm_metadata.png)\n'
} > "$res/summary.md"
