#!/usr/bin/env bash
# Print the sha256 of what make deb's packages are built from: the series
# (without its cover letter), our packaging patch, the pinned base and
# scripts/deb.sh with its configuration. make deb keeps it in
# build/deb/inputs.sha256; the tests of the packages (tests/test-deb.py,
# scripts/check-deb-install.sh) refuse packages whose inputs have changed
# since, instead of testing stale ones.
#
# Usage: deb-inputs.sh            print the sum
#        deb-inputs.sh --check    exit 1, saying why, if build/deb is stale
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
files=()
for p in patches/[0-9][0-9][0-9][0-9]-*.patch; do
    case ${p##*/} in 0000-*) ;; *) files+=("$p") ;; esac
done
files+=(packaging/*.patch scripts/base.conf scripts/deb.conf scripts/deb.sh)
# the base it is built on, too (make deb BASE_VERSION=... builds on another)
. "$top/scripts/base.conf"
sum=$({ echo "BASE_VERSION=$BASE_VERSION"
        for f in "${files[@]}"; do sha256sum "$f"; done; } |
      sha256sum | cut -d' ' -f1)
if [ "${1:-}" = --check ]; then
    kept=$(cat build/deb/inputs.sha256 2>/dev/null || echo none)
    if [ "$kept" != "$sum" ]; then
        echo "build/deb is stale: built from inputs $kept, now $sum" \
             "(patches/, packaging/, scripts/deb.sh or its configuration" \
             "changed since): run make deb again" >&2
        exit 1
    fi
    exit 0
fi
echo "$sum"
