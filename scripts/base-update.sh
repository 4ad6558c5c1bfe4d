#!/usr/bin/env bash
# make base-update: does Debian's archive have a newer qemu 7.2 than the
# pinned base (scripts/base.conf)? Asks the archive the machine already
# uses, through a private apt configuration (build/apt-base: the
# machine's own "Types: deb" stanzas as deb-src, its own package lists;
# the system's apt sources and lists never change).
#
# Prints the pinned base, every qemu 7.2 source version the archive
# serves (with its suite), and what to do. Exits 0 when the pinned base
# is the newest, 3 when the archive has a newer one, 1 on errors.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need apt-get apt awk mawk dpkg dpkg
. "$top/scripts/base.conf"
dir="$top/build/apt-base"
. "$top/scripts/apt-private.sh"
apt_private "$dir"
src="$dir/etc/sources.list.d/base.sources"
# Every "Types: deb" stanza of the machine, as deb-src
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    grep -v '^#' "$f" | awk 'BEGIN { RS = ""; ORS = "\n\n" }
        /(^|\n)[Tt]ypes:[^\n]*[ \t]deb([ \t]|\n|$)/ {
            sub(/(^|\n)[Tt]ypes:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, "")
            print }'
done > "$src.tmp"
grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    sed 's/^deb /deb-src /' > "$dir/etc/sources.list.d/base.list" || true
[ -s "$src.tmp" ] || [ -s "$dir/etc/sources.list.d/base.list" ] ||
    { echo "base-update: no apt sources of type deb on this machine" >&2
      exit 1; }
mv "$src.tmp" "$src"
export APT_CONFIG="$dir/apt.conf"
apt-get update -qq >&2 ||
    { echo "base-update: apt-get update failed (see above)" >&2; exit 1; }

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
