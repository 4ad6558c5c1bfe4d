#!/usr/bin/env bash
# Print the path of a private apt configuration (build/apt-backports) whose
# sources are the machine's own plus "<codename>-backports" wherever
# "<codename>-updates" is listed; its package lists are updated once a day.
# The dpkg status is the system's, so apt-get install under it installs
# into the system, but the system's own apt sources never change.
# Preferences: backports only for packages named in $APT_BACKPORTS_PIN
# (globs; default none), everything else stays with its suite.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/build/apt-backports"
. "$top/scripts/apt-private.sh"
apt_private "$dir" /var/lib/dpkg/status
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -E 's/^(Suites:.*\b([a-z]+)-updates\b.*)$/\1 \2-backports/' "$f" \
        > "$dir/etc/sources.list.d/$(basename "$f")"
done
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
{
    echo "Package: *"
    echo "Pin: release n=$codename-backports"
    echo "Pin-Priority: 50"
    for p in ${APT_BACKPORTS_PIN:-}; do
        echo
        echo "Package: $p"
        echo "Pin: release n=$codename-backports"
        echo "Pin-Priority: 990"
    done
} > "$dir/etc/preferences.d/backports"
if [ -z "$(find "$dir/state/lists" -name '*backports*Packages*' -mtime -1 2>/dev/null)" ]; then
    APT_CONFIG="$dir/apt.conf" apt-get update -qq >&2
fi
echo "$dir/apt.conf"
