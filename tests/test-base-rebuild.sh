#!/usr/bin/env bash
# Keeping up with Debian's updates of qemu 7.2 (docs/packaging.md):
# - scripts/base-update.sh lists the qemu 7.2 revisions Debian's archive
#   serves and its verdict (exit 0 up to date, 3 newer) agrees with the
#   newest of them (dpkg --compare-versions); pinned to an older revision
#   it says "newer" and names the newest;
# - make deb's first stage (scripts/deb.sh --apply-only) applies the
#   series to the pinned base, and to the previous revision the archive
#   serves, if it really serves its files (SKIP with the reason if not);
# - a patch that no longer applies is named, and nothing is built;
# - BASE_VERSION that is not qemu 7.2, or that the archive does not serve,
#   is refused with a message; so is an archive out of reach (no network
#   namespace), instead of an old list's "up to date";
# - the pin that docs/packaging.md gives holds our packages (priority
#   1001) of this base and of a rebuild on a later one;
# - none of it changes the system's apt configuration (/etc/apt): the
#   deb-src entries live in a private configuration (scripts/apt-base.sh).
# Copies of the scripts run in a temporary project whose build/download
# is the real one (no download twice). Prints PASS/FAIL/SKIP lines and
# "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0 skipped=0
check() { # ok(0/1) what [detail]
    if [ "$1" = 0 ]; then
        echo "PASS $2"; passed=$((passed + 1))
    else
        echo "FAIL $2"; [ -z "${3:-}" ] || echo "$3" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}
skip() { echo "SKIP $1: $2"; skipped=$((skipped + 1)); }

# apt_state: the system's apt sources and preferences, to compare at the end
apt_state() {
    find /etc/apt \( -type f -o -type l \) \( -name '*.list' -o -name '*.sources' -o \
         -path '*/preferences*' \) -print0 | sort -z |
        xargs -0r sha256sum
}
apt_before=$(apt_state)
tmp=$(mktemp -d /tmp/vmem-base-rebuild.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
proj="$tmp/project"
mkdir -p "$proj/build"
cp -a "$top/scripts" "$top/patches" "$top/packaging" "$proj/"
mkdir -p "$top/build/download"
ln -s "$top/build/download" "$proj/build/download"
. "$top/scripts/base.conf"

# 1. base-update's verdict against the list it prints
out=$("$proj/scripts/base-update.sh" 2>&1); rc=$?
mapfile -t served < <(sed -n 's/^  qemu \([^ ]*\) in .*/\1/p' <<<"$out")
# newest_below [LIMIT]: the newest served revision (below LIMIT)
newest_below() {
    local v best=""
    for v in "${served[@]}"; do
        if { [ -z "${1:-}" ] || dpkg --compare-versions "$v" lt "$1"; } &&
           { [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; }; then
            best=$v
        fi
    done
    echo "$best"
}
newest=$(newest_below)
if [ -z "$newest" ]; then
    check 1 "base-update lists the revisions the archive serves" "$out"
elif [ "$newest" = "$BASE_PINNED" ]; then
    check $([ $rc = 0 ] && grep -q '^up to date' <<<"$out"; echo $?) \
        "base-update: the pinned base is the newest of ${#served[@]} served: exit 0, up to date" "$out"
else
    check $([ $rc = 3 ] && grep -q "^newer: qemu $newest" <<<"$out"; echo $?) \
        "base-update: the archive serves $newest: exit 3, names it" "$out"
fi
older=$([ -z "$newest" ] || newest_below "$newest")
if [ -n "$older" ]; then
    sed -i "s/^BASE_PINNED=.*/BASE_PINNED=$older/" "$proj/scripts/base.conf"
    out=$("$proj/scripts/base-update.sh" 2>&1); rc=$?
    check $([ $rc = 3 ] && grep -q "^newer: qemu $newest" <<<"$out" &&
            grep -q "make deb BASE_VERSION=$newest" <<<"$out"; echo $?) \
        "base-update pinned to $older: exit 3, names $newest and the command" "$out"
    cp "$top/scripts/base.conf" "$proj/scripts/base.conf"
else
    skip "base-update pinned to an older revision" \
         "the archive serves one qemu 7.2 revision only"
fi

# 2. The series applies to the pinned base, and to the previous revision
out=$("$proj/scripts/deb.sh" --apply-only 2>&1)
check $?  "the series applies to qemu $BASE_PINNED (make deb's first stage)" "$out"
prev=$(newest_below "$BASE_PINNED")
if [ -z "$prev" ]; then
    skip "the series on the previous revision" \
         "the archive serves no qemu 7.2 older than $BASE_PINNED"
else
    out=$(BASE_VERSION=$prev "$proj/scripts/deb.sh" --apply-only 2>&1); rc=$?
    if grep -q "does not serve" <<<"$out"; then
        skip "the series on the previous revision $prev" \
             "the archive lists it but does not serve its source files: $(grep -m1 -o 'Failed to fetch .*' <<<"$out" |
               sed 's|http[^ ]*/||; s| *\[IP:.*||')"
    else
        check $rc "the series applies to qemu $prev (BASE_VERSION=$prev)" "$out"
    fi
fi

# 3. A patch that no longer applies is named; nothing is built
victim=$(ls "$proj"/patches/0011-*.patch)
python3 - "$victim" <<'PY'
import sys
path = sys.argv[1]
lines = open(path).read().split("\n")
# break the first context line of the first hunk
for i, line in enumerate(lines):
    if line.startswith("@@"):
        j = i + 1
        while not lines[j].startswith(" "):
            j += 1
        lines[j] = " /* this line is not in the base */"
        break
open(path, "w").write("\n".join(lines))
PY
out=$("$proj/scripts/deb.sh" 2>&1); rc=$?
check $([ $rc != 0 ] &&
        grep -q "deb: memslots/${victim##*/} does not apply to qemu $BASE_PINNED" <<<"$out"
        echo $?) "a patch that no longer applies: make deb names ${victim##*/}" "$out"
check $([ ! -e "$proj/build/deb-src/build.log" ] &&
        [ -z "$(ls "$proj"/build/deb/*.deb 2>/dev/null)" ]; echo $?) \
    "... before the package build starts, and no package is left" \
    "$(ls -R "$proj/build/deb" "$proj/build/deb-src" 2>&1 | head)"
cp "$top"/patches/*.patch "$proj/patches/"

# An archive out of reach is an error, not "up to date"
out=$(unshare -n "$proj/scripts/base-update.sh" 2>&1); rc=$?
check $([ $rc = 1 ] && grep -q "cannot tell" <<<"$out"; echo $?) \
    "base-update without the network: exit 1, cannot tell" "$out"

# 4. Refused bases
out=$(BASE_VERSION=7.2+dfsg-7+deb12u18 "$proj/scripts/deb.sh" --apply-only 2>&1); rc=$?
check $([ $rc = 1 ] && grep -q "needs Debian's epoch" <<<"$out"; echo $?) \
    "BASE_VERSION=7.2+dfsg-7+deb12u18: refused, needs the epoch" "$out"
out=$(BASE_VERSION=1:8.0.4+dfsg-1 "$proj/scripts/deb.sh" --apply-only 2>&1); rc=$?
check $([ $rc = 1 ] && grep -q "is not a revision of Debian's qemu 7.2" <<<"$out"; echo $?) \
    "BASE_VERSION=1:8.0.4+dfsg-1: refused, not qemu 7.2" "$out"
out=$(BASE_VERSION=1:7.2+dfsg-7+deb12u99 "$proj/scripts/deb.sh" --apply-only 2>&1); rc=$?
check $([ $rc = 1 ] && grep -q "does not serve qemu 1:7.2+dfsg-7+deb12u99" <<<"$out"; echo $?) \
    "BASE_VERSION=1:7.2+dfsg-7+deb12u99: refused, not served" "$out"

# make deb-install without the packages it installs says what to do. It
# must stop before apt: apt-get and apt-mark are stand-ins here that only
# record a call
stubs="$tmp/stubs"
mkdir -p "$stubs"
for c in apt-get apt-mark; do
    printf '#!/bin/sh\necho "%s $*" >> %s/calls\nexit 97\n' "$c" "$stubs" \
        > "$stubs/$c"
    chmod +x "$stubs/$c"
done
deb_install() { PATH="$stubs:$PATH" "$proj/scripts/deb-install.sh" "$@" </dev/null 2>&1; }
rm -rf "$proj/build/deb"
out=$(deb_install); rc=$?
check $([ $rc = 1 ] && grep -q "no build/deb: run make deb first" <<<"$out"; echo $?) \
    "make deb-install without build/deb: run make deb first" "$out"
mkdir -p "$proj/build/deb" "$tmp/fake/DEBIAN"
printf '%s\n' "Package: qemu-system-x86" "Version: 1:7.2+dfsg-7+deb12u99+memslots1" \
    "Architecture: amd64" "Maintainer: x <x@example.org>" "Description: x" \
    > "$tmp/fake/DEBIAN/control"
dpkg-deb -b "$tmp/fake" \
    "$proj/build/deb/qemu-system-x86_7.2+dfsg-7+deb12u99+memslots1_amd64.deb" >/dev/null
out=$(deb_install); rc=$?
check $([ $rc = 1 ] && grep -q "has 1:7.2+dfsg-7+deb12u99+memslots1: make deb-install BASE_VERSION=1:7.2+dfsg-7+deb12u99 installs" <<<"$out"
        echo $?) "make deb-install with packages of another base: names them and the command" "$out"
check $([ ! -e "$stubs/calls" ]; echo $?) "... and neither calls apt" \
    "$(cat "$stubs/calls" 2>/dev/null)"
rm -rf "$proj/build/deb"

# 5. The pin of docs/packaging.md, on our versions (a private apt
#    configuration whose dpkg status has each installed)
. "$top/scripts/deb.conf"
pin=$(sed -n '/^    Package: qemu-system-x86/,/^$/p' \
      "$top/docs/packaging.md" | sed 's/^    //')
. "$top/scripts/apt-private.sh"
# ours on this base and on a later one: 1001; Debian's binNMU: untouched
for vp in "$DEB_VERSION 1001" "${DEB_VERSION/deb12u18/deb12u19} 1001" \
          "$BASE_VERSION+b3 100"; do
    v=${vp% *} prio=${vp#* }
    apt_private "$tmp/apt-pin" "$tmp/apt-pin/status.$v"
    printf '%s\n' "Package: qemu-system-x86" "Status: install ok installed" \
        "Priority: optional" "Section: misc" "Architecture: amd64" \
        "Maintainer: x <x@example.org>" "Version: $v" "Description: x" \
        > "$tmp/apt-pin/status.$v"
    echo "$pin" > "$tmp/apt-pin/etc/preferences.d/qemu-memslots"
    out=$(APT_CONFIG=$tmp/apt-pin/apt.conf apt-cache policy qemu-system-x86 2>&1)
    check $([ -n "$pin" ] && grep -qE "^ \*\*\* ${v//+/\\+} $prio\$" <<<"$out"
            echo $?) "docs/packaging.md's pin: qemu-system-x86 $v has priority $prio" \
        "$pin"$'\n'"$out"
done

apt_after=$(apt_state)
check $([ "$apt_before" = "$apt_after" ]; echo $?) \
    "the system's apt sources are as they were (/etc/apt)" \
    "$(diff <(echo "$apt_before") <(echo "$apt_after"))"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
