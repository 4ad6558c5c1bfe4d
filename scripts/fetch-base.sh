#!/usr/bin/env bash
# Fetch the pinned Debian source package and unpack it (Debian's patches
# applied) into build/base-src.  Skipped when that is already done.
# --download-only: only into build/download (make deb's own unpacking).
#
# apt-get source needs deb-src entries: scripts/apt-base.sh derives them
# from the machine's own sources into a private apt configuration, so
# the system's apt sources never change and no archive host name lives
# in this repository.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need apt-get apt dpkg-source dpkg-dev xz xz-utils
. "$top/scripts/base.conf"
dl="$top/build/download"
src="$top/build/base-src"
stamp="$src/.base-version"

case $BASE_VERSION in
    1:7.2+dfsg-*) ;;
    7.2+dfsg-*) echo "fetch-base: BASE_VERSION=$BASE_VERSION needs Debian's" \
                     "epoch: 1:$BASE_VERSION" >&2
                exit 1 ;;
    *) echo "fetch-base: BASE_VERSION=$BASE_VERSION is not a revision of" \
            "Debian's qemu 7.2 (scripts/base-update.sh lists those the" \
            "archive serves)" >&2
       exit 1 ;;
esac
# Earlier versions of this script wrote deb-src entries into the system's
# apt sources under this name: ours, so taken back
for f in /etc/apt/sources.list.d/qemu-memslots-deb-src.sources \
         /etc/apt/sources.list.d/qemu-memslots-deb-src.list; do
    if [ -f "$f" ] && [ -w "$f" ]; then
        rm -f "$f"
        echo "fetch-base: removed $f (the deb-src entries an earlier" \
             "version added; build/apt-base has them now)"
    fi
done

download_only=${1:-}
if [ -z "$download_only" ] && [ -f "$stamp" ] &&
   [ "$(cat "$stamp")" = "$BASE_VERSION" ]; then
    exit 0
fi

mkdir -p "$dl"
if [ ! -f "$dl/$BASE_DSC" ]; then
    APT_CONFIG=$("$top/scripts/apt-base.sh")
    export APT_CONFIG
    # lists of the last day may predate the revision: once more with new ones
    if ! (cd "$dl" && apt-get source -qq --download-only \
              "$BASE_PKG=$BASE_VERSION" 2>/dev/null); then
        "$top/scripts/apt-base.sh" --update >/dev/null ||
            { echo "fetch-base: cannot fetch the package lists of Debian's" \
                   "archive (see above)" >&2
              exit 1; }
        (cd "$dl" && apt-get source -qq --download-only "$BASE_PKG=$BASE_VERSION") ||
        { echo "fetch-base: Debian's archive does not serve $BASE_PKG" \
               "$BASE_VERSION (scripts/base-update.sh lists what it serves)" >&2
          exit 1; }
    fi
    # apt takes 1:7.2+dfsg-7+deb12u018 for ...u18: the files say which
    [ -f "$dl/$BASE_DSC" ] ||
        { echo "fetch-base: the archive's $BASE_PKG for $BASE_VERSION is" \
               "spelt differently ($(cd "$dl" && ls -t ./*.dsc | head -1));" \
               "give BASE_VERSION as scripts/base-update.sh lists it" >&2
          exit 1; }
fi
# apt checked the download against the archive's signed index; the
# pinned base is also checked against the checksum it was pinned with
if [ "$BASE_VERSION" = "$BASE_PINNED" ]; then
    echo "$BASE_PINNED_DSC_SHA256  $dl/$BASE_DSC" | sha256sum -c --quiet -
fi
[ "$download_only" != --download-only ] || exit 0
# dpkg-source checks the tarballs against the checksums in the pinned .dsc
rm -rf "$src.tmp"
dpkg-source --no-check -q -x "$dl/$BASE_DSC" "$src.tmp" >/dev/null
echo "$BASE_VERSION" > "$src.tmp/.base-version"
rm -rf "$src"
mv "$src.tmp" "$src"
echo "fetch-base: $BASE_PKG $BASE_VERSION unpacked in build/base-src"
