#!/usr/bin/env bash
# Print the path of a private apt configuration (build/apt-base) whose
# sources are the machine's own release's suites (codename, -updates,
# -security) as deb-src: where Debian's qemu 7.2 source package comes
# from. For apt-get source and apt-cache only: it has its own package
# lists and an empty dpkg status, and the system's apt sources never
# change (other repositories of the machine may have no sources at all).
#
# Usage: apt-base.sh [--update]
#   --update  fetch the package lists now, and fail if any source cannot
#             be fetched (default: only when they are a day old or absent)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need apt-get apt python3 python3
update=${1:-}
dir="$top/build/apt-base"
. "$top/scripts/apt-private.sh"
apt_private "$dir"
src="$dir/etc/sources.list.d/base.sources"
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
# The machine's deb822 stanzas of type deb for its own release's suites,
# as they are (keyrings, embedded keys, Check-Valid-Until, ...) but for
# Types and Suites; stanzas signed by another keyring than Debian's are
# other repositories (they may have no sources, and Debian's qemu is not
# in them)
python3 - "$codename" /etc/apt/sources.list.d/*.sources > "$src.tmp" <<'PY'
import re
import sys

codename, files = sys.argv[1], sys.argv[2:]
own = re.compile(rf"^{re.escape(codename)}(-updates|-security)?$")
for path in files:
    try:
        text = open(path, encoding="utf-8").read().replace("\r\n", "\n")
    except OSError:
        continue
    lines = [l for l in text.split("\n") if not l.startswith("#")]
    for stanza in re.split(r"\n[ \t]*\n", "\n".join(lines)):
        fields = []                     # [name, value lines]
        for line in stanza.split("\n"):
            if line[:1] in (" ", "\t") and fields:
                fields[-1][1].append(line)
            elif ":" in line:
                key, value = line.split(":", 1)
                fields.append([key.strip(), [value]])
        get = {k.lower(): " ".join(v).strip() for k, v in fields}
        suites = [w for w in get.get("suites", "").split() if own.match(w)]
        if "deb" not in get.get("types", "").split() or not suites or \
                get.get("enabled", "yes").lower() in \
                ("no", "false", "off", "without"):
            continue
        signed = get.get("signed-by", "")
        if signed and "BEGIN PGP" not in signed and \
                "debian-archive-keyring" not in signed:
            continue
        for key, value in fields:
            if key.lower() == "types":
                print("Types: deb-src")
            elif key.lower() == "suites":
                print("Suites: " + " ".join(suites))
            elif key.lower() != "enabled":
                print(key + ":" + "\n".join(value))
        print()
PY
# one-line style sources, if the machine has them
grep -hsE "^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+$codename(-updates|-security)?[[:space:]]" \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' > "$dir/etc/sources.list.d/base.list" || true
[ -s "$src.tmp" ] || [ -s "$dir/etc/sources.list.d/base.list" ] ||
    { echo "apt-base: no apt sources of type deb for $codename on this" \
           "machine" >&2
      exit 1; }
mv "$src.tmp" "$src"

if [ "$update" = --update ]; then
    # a source that cannot be fetched is an error, not old lists' answer
    rm -rf "$dir/state/lists"
    mkdir -p "$dir/state/lists/partial"
    APT_CONFIG="$dir/apt.conf" apt-get update -qq --error-on=any >&2 ||
        { echo "apt-base: apt-get update failed (see above)" >&2; exit 1; }
elif [ -z "$(find "$dir/state/lists" -name '*Sources*' -mtime -1 2>/dev/null)" ]; then
    APT_CONFIG="$dir/apt.conf" apt-get update -qq >&2
fi
echo "$dir/apt.conf"
