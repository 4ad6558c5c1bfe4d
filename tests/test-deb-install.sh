#!/usr/bin/env bash
# make check's part of the install test of make deb's packages
# (scripts/check-deb-install.sh): it runs whenever build/deb has them, and
# says it skipped otherwise (make deb takes ~13 min cold: not part of make check).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if ! ls "$top"/build/deb/*.deb >/dev/null 2>&1; then
    echo "SKIP make deb's packages on a pristine Debian 12: no build/deb/*.deb" \
         "(make deb has not run in this checkout)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "SKIP make deb's packages on a pristine Debian 12: needs root" \
         "(debootstrap, chroot)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
exec "$top/scripts/check-deb-install.sh"
