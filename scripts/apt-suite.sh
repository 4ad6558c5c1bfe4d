#!/usr/bin/env bash
# Print the path of a private apt configuration (build/apt-suite-SUITE)
# whose only source is another suite of the machine's own Debian mirror,
# e.g. "bullseye" for Debian 11's kernel: the URIs, components and keyring
# of the machine's deb822 stanza for its own release, with "Suites: SUITE".
# For downloads only (apt-get download, apt-cache): it has its own package
# lists and an empty dpkg status, and the system's apt sources never
# change. The package lists are updated once a day.
#
# Usage: apt-suite.sh SUITE
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need apt-get apt awk mawk
suite=${1:?usage: apt-suite.sh SUITE}
[[ "$suite" =~ ^[a-z][a-z0-9-]*$ ]] ||
    { echo "apt-suite: '$suite' is not a suite name" >&2; exit 2; }
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
dir="$top/build/apt-suite-$suite"
. "$top/scripts/apt-private.sh"
apt_private "$dir"

# The first "Types: deb" stanza that lists the machine's own release
src="$dir/etc/sources.list.d/$suite.sources"
awk -v codename="$codename" -v suite="$suite" '
    function flush() {
        if (!done && (" " types " ") ~ / deb / &&
            (" " suites " ") ~ (" " codename " ")) {
            print "Types: deb"
            print "URIs:" uris
            print "Suites: " suite
            print "Components:" comps
            if (signed != "") print "Signed-By:" signed
            done = 1
        }
        types = suites = uris = comps = signed = ""
    }
    /^#/ { next }
    /^[ \t]*$/ { flush(); next }
    tolower($1) == "types:" { $1 = ""; types = $0 }
    tolower($1) == "suites:" { $1 = ""; suites = $0 }
    tolower($1) == "uris:" { $1 = ""; uris = $0 }
    tolower($1) == "components:" { $1 = ""; comps = $0 }
    tolower($1) == "signed-by:" { $1 = ""; signed = $0 }
    END { flush() }' /etc/apt/sources.list.d/*.sources > "$src.tmp"
[ -s "$src.tmp" ] ||
    { echo "apt-suite: no 'Types: deb' stanza for $codename in" \
           "/etc/apt/sources.list.d/*.sources" >&2; exit 1; }
mv "$src.tmp" "$src"

if [ -z "$(find "$dir/state/lists" -name "*_dists_${suite}_*Packages*" -mtime -1 2>/dev/null)" ]; then
    APT_CONFIG="$dir/apt.conf" apt-get update -qq >&2
fi
echo "$dir/apt.conf"
