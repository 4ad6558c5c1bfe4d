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
# The machine's entries of type deb for its own release's suites, as
# deb-src: deb822 stanzas as they are (keyrings, embedded keys,
# Check-Valid-Until, ...) but for Types and Suites, one-line entries with
# deb-src. Only Debian's: where the system's package lists say which
# (their Release files' Origin), entries of other repositories are left
# out (Debian's qemu is not in them, and they may have no sources at all)
debian=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' \
             'Created-By: Packages' 'Origin: Debian' 2>/dev/null | sort -u)
python3 - "$codename" "$debian" "$dir/etc/sources.list.d/base.list" \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources > "$src.tmp" <<'PY'
import re
import sys

codename, debian, one_line_out, files = sys.argv[1], sys.argv[2], \
    sys.argv[3], sys.argv[4:]
own = re.compile(rf"^{re.escape(codename)}(-updates|-security)?$")
known = {tuple(l.split()) for l in debian.split("\n") if l.strip()}
known = {(uri.rstrip("/"), suite) for uri, suite in known}
DISABLED = ("no", "false", "off", "without", "disable", "0")


def wanted(uris, suite):
    """Whether an entry's suite is Debian's and its own release's."""
    return own.match(suite) and (not known or any(
        (u.rstrip("/"), suite) in known for u in uris))


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().replace("\r\n", "\n")
    except OSError:
        return None


one_line = []
for path in files:
    text = read(path)
    if text is None:
        continue
    if not path.endswith(".sources"):
        for line in text.split("\n"):
            m = re.match(r"\s*deb\s+(\[[^]]*\]\s+)?(\S+)\s+(\S+)(.*)$",
                         line.split("#", 1)[0])
            if m and wanted([m[2]], m[3]):
                one_line.append("deb-src " + (m[1] or "") + m[2] + " " +
                                m[3] + m[4].rstrip())
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
        uris = get.get("uris", "").split()
        suites = [w for w in get.get("suites", "").split()
                  if wanted(uris, w)]
        if "deb" not in get.get("types", "").split() or not suites or \
                get.get("enabled", "yes").lower() in DISABLED:
            continue
        for key, value in fields:
            if key.lower() == "types":
                print("Types: deb-src")
            elif key.lower() == "suites":
                print("Suites: " + " ".join(suites))
            elif key.lower() != "enabled":
                print(key + ":" + "\n".join(value))
        print()
with open(one_line_out, "w", encoding="utf-8") as f:
    f.write("".join(l + "\n" for l in one_line))
PY
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
