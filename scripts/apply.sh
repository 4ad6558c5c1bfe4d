#!/usr/bin/env bash
# (Re)create the work tree build/qemu: the pinned base as the commit
# tagged "base", then patches/*.patch applied with git am.
#
# Refuses to throw away work: uncommitted changes, or commits after
# "base" whose content is not in patches/ (compared by patch-id).
# Files a patch does not touch keep their timestamps, so an incremental
# build after apply only recompiles what the series changes.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need git git
. "$top/scripts/base.conf"
. "$top/scripts/git-identity.sh"
wt="$top/build/qemu"
"$top/scripts/fetch-base.sh"

patch_ids() {
    local f
    for f in "$@"; do
        [ -f "$f" ] && git patch-id --stable < "$f" | cut -d' ' -f1
    done | sort
}

create_base() {
    rm -rf "$wt"
    cp -a "$top/build/base-src" "$wt"
    # .base-version is ours, .pc is quilt's bookkeeping of Debian's patches
    rm -rf "$wt/.base-version" "$wt/.pc"
    git -C "$wt" init -q -b master
    git -C "$wt" add -A -f .
    GIT_AUTHOR_DATE='2000-01-01T00:00:00Z' GIT_COMMITTER_DATE='2000-01-01T00:00:00Z' \
    GIT_AUTHOR_NAME="Debian qemu" GIT_AUTHOR_EMAIL="qemu-memslots@localhost" \
        git -C "$wt" commit -q -m "Debian qemu $BASE_VERSION (pristine base)"
    git -C "$wt" tag base
}

if [ -d "$wt/.git" ] && git -C "$wt" rev-parse -q --verify base >/dev/null; then
    if [ -n "$(git -C "$wt" status --porcelain --untracked-files=no)" ]; then
        echo "apply: build/qemu has uncommitted changes; commit and 'make export' them, or discard them" >&2
        exit 1
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    git -C "$wt" format-patch -q -o "$tmp" base..HEAD
    wt_ids=$(patch_ids "$tmp"/*.patch)
    repo_ids=$(patch_ids "$top"/patches/*.patch)
    lost=$(comm -23 <(echo "$wt_ids") <(echo "$repo_ids") | sed '/^$/d')
    if [ -n "$lost" ]; then
        echo "apply: build/qemu has commits after 'base' that are not in patches/; run 'make export' first (or 'git -C build/qemu reset --hard base' to drop them)" >&2
        exit 1
    fi
    if [ "$(git -C "$wt" log -1 --format=%s base)" != \
         "Debian qemu $BASE_VERSION (pristine base)" ]; then
        # another base (scripts/base.conf): the series goes onto it afresh
        echo "apply: the base changed to $BASE_VERSION; recreating build/qemu"
        create_base
    elif [ "$wt_ids" = "$repo_ids" ]; then
        # same content; only re-apply if the order differs
        cmp -s <(cd "$tmp" && cat ./*.patch 2>/dev/null | git patch-id --stable | cut -d' ' -f1) \
               <(cat "$top"/patches/*.patch 2>/dev/null | git patch-id --stable | cut -d' ' -f1) &&
            { echo "apply: build/qemu is up to date with patches/"; exit 0; }
    fi
    git -C "$wt" am --abort >/dev/null 2>&1 || true
    git -C "$wt" reset -q --hard base
else
    create_base
fi

shopt -s nullglob
series=()
for f in "$top"/patches/[0-9]*.patch; do
    # 0000-cover-letter.patch describes the series; it carries no change
    case "$(basename "$f")" in 0000-*) ;; *) series+=("$f") ;; esac
done
if [ ${#series[@]} -gt 0 ]; then
    git -C "$wt" am -q --committer-date-is-author-date "${series[@]}"
fi
echo "apply: build/qemu = base + ${#series[@]} patch(es)"
