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
need apt-get apt awk mawk dpkg dpkg python3 python3
. "$top/scripts/base.conf"
dir="$top/build/apt-base"
. "$top/scripts/apt-private.sh"
apt_private "$dir"
src="$dir/etc/sources.list.d/base.sources"
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
# The machine's deb822 stanzas of type deb for its own release's suites
# (codename, -updates, -security), as deb-src: Debian's qemu 7.2 comes
# from those; other repositories may have no sources at all
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
    text = "\n".join(l for l in text.split("\n") if not l.startswith("#"))
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields, key = {}, None
        for line in stanza.split("\n"):
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        suites = [w for w in fields.get("suites", "").split() if own.match(w)]
        if "deb" not in fields.get("types", "").split() or not suites or \
                fields.get("enabled", "yes").lower() == "no":
            continue
        print("Types: deb-src")
        print("URIs: " + fields.get("uris", ""))
        print("Suites: " + " ".join(suites))
        print("Components: " + fields.get("components", ""))
        if "signed-by" in fields:
            print("Signed-By: " + fields["signed-by"])
        print()
PY
grep -hsE "^deb (\[[^]]*\] )?[^ ]+ $codename(-updates|-security)? " \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    sed 's/^deb /deb-src /' > "$dir/etc/sources.list.d/base.list" || true
[ -s "$src.tmp" ] || [ -s "$dir/etc/sources.list.d/base.list" ] ||
    { echo "base-update: no apt sources of type deb for $codename on this" \
           "machine" >&2
      exit 1; }
mv "$src.tmp" "$src"
export APT_CONFIG="$dir/apt.conf"
# a source that cannot be fetched is an error, not old lists' answer
rm -rf "$dir/state/lists"
mkdir -p "$dir/state/lists/partial"
apt-get update -qq --error-on=any >&2 ||
    { echo "base-update: apt-get update failed (see above): cannot tell" >&2
      exit 1; }

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
