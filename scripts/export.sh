#!/usr/bin/env bash
# Write the work tree's series (base..HEAD) into patches/, deterministically:
# re-exporting an unchanged tree rewrites no byte.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need git git python3 python3
wt="$top/build/qemu"
if [ -n "$(git -C "$wt" status --porcelain --untracked-files=no)" ]; then
    echo "export: build/qemu has uncommitted changes; commit them first" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --zero-commit and no signature/version trailer keep the files stable.
git -C "$wt" -c core.abbrev=12 -c diff.noprefix=false format-patch -q \
    --zero-commit --no-signature --stat=80 --abbrev=12 \
    -o "$tmp" base..HEAD
# The cover letter: subject and blurb from docs/cover-letter.txt, the
# shortlog and diffstat from the series, dated like the last patch.
cover="$top/docs/cover-letter.txt"
if [ -f "$cover" ]; then
    date=$(git -C "$wt" log -1 --format=%aD HEAD)
    git -C "$wt" -c core.abbrev=12 format-patch -q --cover-letter \
        --zero-commit --no-signature --stat=80 -o "$tmp/cover" base..HEAD
    python3 - "$tmp"/cover/0000-cover-letter.patch "$cover" "$date" <<'PY'
import sys
path, cover, date = sys.argv[1:]
subject, blurb = open(cover).read().split("\n", 1)
text = open(path).read()
text = text.replace("*** SUBJECT HERE ***", subject)
text = text.replace("*** BLURB HERE ***", blurb.strip())
lines = [("Date: " + date) if l.startswith("Date: ") else l
         for l in text.split("\n")]
open(path, "w").write("\n".join(lines))
PY
    mv "$tmp"/cover/0000-cover-letter.patch "$tmp/"
    rm -rf "$tmp/cover"
fi
for f in "$top"/patches/[0-9]*.patch; do
    [ -e "$f" ] || continue
    [ -e "$tmp/$(basename "$f")" ] || rm -f "$f"
done
for f in "$tmp"/*.patch; do
    [ -e "$f" ] || continue
    cmp -s "$f" "$top/patches/$(basename "$f")" || cp "$f" "$top/patches/"
done
echo "export: $(ls "$tmp" | grep -vc '^0000-') patch(es) and a cover letter in patches/"
