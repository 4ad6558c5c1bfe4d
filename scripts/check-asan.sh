#!/usr/bin/env bash
# make check-asan: build the work tree with clang's AddressSanitizer and
# UndefinedBehaviorSanitizer (build/qemu-asan, with libFuzzer for the fuzz
# target), run the series' qtests, the real-guest and vhost tests against
# it, and the virtio-mem fuzz target for FUZZ_SECONDS (default 60). Any
# sanitizer report fails the test it happens in (LeakSanitizer included:
# QEMU's exit status tells the qtest). Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/asan-env.sh"
. "$top/scripts/need.sh"
# Unsymbolized reports defeat the suppressions (tests/sanitizers/lsan.supp)
need clang clang llvm-symbolizer llvm
logs="$top/build/test-logs/asan"
mkdir -p "$logs"
. "$top/scripts/testlib.sh"
t_start=$SECONDS

run_test setup-build "$top/scripts/build.sh" qemu-fuzz-x86_64 \
    tests/qtest/virtio-mem-test
[ "${failures[*]:-}" = "" ] || finish
run_test setup-guest "$top/scripts/guest.sh"
[ "${failures[*]:-}" = "" ] || finish

# The build links without KVM (the stubs of the series), and runs
run_test build-without-kvm "$top/scripts/check-no-kvm.sh" \
    "$QEMU_BUILD_DIR/qemu-system-x86_64"
run_test qtest-virtio-mem-test meson test -C "$QEMU_BUILD_DIR" --no-rebuild \
    --print-errorlogs --timeout-multiplier 5 qtest-x86_64/virtio-mem-test
export VMEM_QEMU="$QEMU_BUILD_DIR/qemu-system-x86_64"
for t in test-guest-e2e test-guest-migration test-vhost-memslots; do
    run_test "$t" "$top/tests/$t.py"
done
run_test fuzz-virtio-mem "$top/scripts/fuzz.sh" "${FUZZ_SECONDS:-60}"

echo "make check-asan took $(( (SECONDS - t_start) / 60 )) min $(( (SECONDS - t_start) % 60 )) s"
finish
