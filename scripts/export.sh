#!/usr/bin/env bash
# Write the work tree's series (base..HEAD) into patches/, deterministically:
# re-exporting an unchanged tree rewrites no byte.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
wt="$top/build/qemu"
if [ -n "$(git -C "$wt" status --porcelain --untracked-files=no)" ]; then
    echo "export: build/qemu has uncommitted changes; commit them first" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --zero-commit and no signature/version trailer keep the files stable;
# the cover letter (patches/0000-cover-letter.patch) is ours and kept.
git -C "$wt" -c core.abbrev=12 -c diff.noprefix=false format-patch -q \
    --zero-commit --no-signature --stat=80 --abbrev=12 \
    -o "$tmp" base..HEAD
for f in "$top"/patches/[0-9]*.patch; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in 0000-*) continue ;; esac
    [ -e "$tmp/$(basename "$f")" ] || rm -f "$f"
done
for f in "$tmp"/*.patch; do
    [ -e "$f" ] || continue
    cmp -s "$f" "$top/patches/$(basename "$f")" || cp "$f" "$top/patches/"
done
echo "export: $(ls "$tmp" | wc -l) patch(es) in patches/"
