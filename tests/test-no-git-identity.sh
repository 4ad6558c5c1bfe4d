#!/usr/bin/env bash
# A fresh machine has no git identity (no ~/.gitconfig, no user.email):
# the scripts that commit in the QEMU work tree (apply.sh: the base commit
# and `git am`; check-series.sh: `git am` in a scratch tree) must still
# work. check-series.sh is the cheap one to run: with an empty HOME and no
# system git config, the series must still apply, with the patches'
# own authors. Prints "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
pass=0 fail=0
check() { # description command...
    local what=$1
    shift
    if "$@"; then echo "PASS $what"; pass=$((pass + 1))
    else echo "FAIL $what"; fail=$((fail + 1)); fi
}
no_identity() { [ -z "$(HOME=$home GIT_CONFIG_NOSYSTEM=1 git config user.email)" ]; }
check "the test's environment has no git identity" no_identity
out=$(HOME=$home GIT_CONFIG_NOSYSTEM=1 "$top/scripts/check-series.sh" 2>&1)
applies() { grep -q '^PASS series: applies on base' <<<"$out"; }
check "the series applies with git am without a git identity" applies ||
    echo "$out" | head -5 | sed 's/^/    /'
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
