#!/usr/bin/env bash
# make base-update: does Debian's archive have a newer qemu 7.2 than the
# pinned base (scripts/base.conf)? Asks the archive the machine already
# uses, through the private apt configuration of scripts/apt-base.sh
# (the system's apt sources and lists never change).
#
# Prints the pinned base, every qemu 7.2 source version the archive
# serves (with its suite), and what to do. Exits 0 when the pinned base
# is the newest, 3 when the archive has a newer one, 1 on errors.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need apt-cache apt awk mawk dpkg dpkg
. "$top/scripts/base.conf"
APT_CONFIG=$("$top/scripts/apt-base.sh" --update) ||
    { echo "base-update: cannot tell (see above)" >&2
      exit 1; }
export APT_CONFIG

# "qemu | VERSION | URI SUITE/COMPONENT Sources", 7.2 only
mapfile -t served < <(apt-cache madison "$BASE_PKG" |
    awk -F' *[|] *' '$2 ~ /^1:7\.2\+/ && $3 ~ /Sources$/ {
        n = split($3, w, " "); split(w[n - 1], s, "/"); print $2, s[1] }')
[ ${#served[@]} -gt 0 ] ||
    { echo "base-update: the archive serves no qemu 7.2 source package" >&2
      exit 1; }
newest=$BASE_PINNED
echo "pinned base: $BASE_PKG $BASE_PINNED (scripts/base.conf)"
echo "Debian's archive serves:"
for line in "${served[@]}"; do
    v=${line% *}
    mark=""
    [ "$v" != "$BASE_PINNED" ] || mark=" (the pinned base)"
    echo "  $BASE_PKG $v in ${line#* }$mark"
    ! dpkg --compare-versions "$v" gt "$newest" || newest=$v
done
if [ "$newest" = "$BASE_PINNED" ]; then
    echo "up to date: no newer qemu 7.2 than the pinned base"
    exit 0
fi
echo "newer: $BASE_PKG $newest. Build and test the series on it with"
echo "  make deb BASE_VERSION=$newest"
echo "then pin it in scripts/base.conf (BASE_PINNED, BASE_PINNED_DSC_SHA256)."
exit 3
