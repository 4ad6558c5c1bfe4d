#!/usr/bin/env bash
# A QEMU built without KVM (scripts/asan-env.sh configures the sanitizer
# build with --disable-kvm) must have linked and must run: it offers no
# kvm accelerator, and a machine with a memory device starts under TCG.
# Usage: check-no-kvm.sh QEMU-BINARY
set -euo pipefail
qemu=$1
[ -x "$qemu" ] || { echo "FAIL no binary $qemu (did it link?)"; echo "0 passed, 1 failed"; exit 1; }
pass=0 fail=0
check() { # description command...
    local what=$1
    shift
    if "$@"; then echo "PASS $what"; pass=$((pass + 1))
    else echo "FAIL $what"; fail=$((fail + 1)); fi
}
no_kvm() { ! grep -qx kvm <<<"$1"; }
accels=$("$qemu" -accel help)
check "built without KVM: -accel help lists no kvm ($(echo "$accels" | tr '\n' ' '))" \
    no_kvm "$accels"
out=$(echo '{"execute":"qmp_capabilities"}{"execute":"query-memory-devices"}{"execute":"quit"}' |
      "$qemu" -M q35 -accel tcg -nodefaults -display none -S -qmp stdio \
          -m 1G,maxmem=65G \
          -object memory-backend-ram,id=mem0,size=64G,reserve=off \
          -device virtio-mem-pci,id=vm0,memdev=mem0,dynamic-memslots=on 2>&1) ||
    echo "$out" | tail -5
check "runs a 64 GiB virtio-mem device with dynamic memslots (64 memslots) under TCG" \
    grep -q '"memslots": 64' <<<"$out"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
