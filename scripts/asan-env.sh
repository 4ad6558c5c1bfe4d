# shellcheck shell=bash
# The sanitizer build (sourced): where it lives, how it is configured, and
# how its reports end a run. Used by check-asan.sh and fuzz.sh, which set
# $top.
export QEMU_BUILD_DIR="$top/build/qemu-asan"
# Not Debian's configuration (scripts/build.sh): no modules (the fuzzer's
# linker script must not reach them), no Debian CFLAGS (_FORTIFY_SOURCE,
# which clang's ASan refuses); and not what configure would detect among
# Debian's build dependencies of qemu (gtk, spice, rbd, xen...), which make
# deps installs: only what the tests that run here need, the same on
# every machine, and half the build
export QEMU_CONFIG=minimal
export QEMU_CC=clang QEMU_CXX=clang++
# Without KVM: Debian builds targets without it from the same source (every
# system emulator but the host's own), so the series must link and run
# there too; this build only runs qtests and TCG guests, so it costs nothing
export QEMU_CONFIGURE_EXTRA="--enable-sanitizers --enable-fuzzing --disable-kvm --without-default-features --enable-tcg --enable-vhost-user --enable-vhost-kernel --enable-vhost-net"
# Any report is fatal; leaks are checked when QEMU exits
# The slow unwinder: glib has no frame pointers, and a leak must show
# who called into glib to be told apart (tests/sanitizers/lsan.supp)
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1:abort_on_error=1:print_summary=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1"
export LSAN_OPTIONS="suppressions=$top/tests/sanitizers/lsan.supp:print_suppressions=1"
