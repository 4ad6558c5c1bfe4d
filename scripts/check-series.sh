#!/usr/bin/env bash
# Check the series in patches/ as a maintainer would before reading it:
# it applies on the pinned base, and every patch has an "area: summary"
# subject, a body that says why, a Signed-off-by, and passes the base
# tree's scripts/checkpatch.pl.
#
# Prints one "PASS|FAIL series: ..." line per check.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/git-identity.sh"
. "$top/scripts/need.sh"
need git git perl perl
wt="$top/build/qemu"
scratch="$top/build/series-check"
fail=0

result() { # status name [detail]
    printf '%s series: %s%s\n' "$1" "$2" "${3:+ ($3)}"
    [ "$1" = PASS ] || fail=1
}

series=()
for f in "$top"/patches/[0-9]*.patch; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in 0000-*) ;; *) series+=("$f") ;; esac
done

git -C "$wt" worktree remove --force "$scratch" >/dev/null 2>&1 || rm -rf "$scratch"
git -C "$wt" worktree prune
git -C "$wt" worktree add -q --detach "$scratch" base
if [ ${#series[@]} -eq 0 ] ||
   git -C "$scratch" am -q "${series[@]}" >"$scratch.log" 2>&1; then
    result PASS "applies on base" "${#series[@]} patches"
else
    result FAIL "applies on base" "$(head -3 "$scratch.log" | tr '\n' ' ')"
fi

for f in "${series[@]}"; do
    name=$(basename "$f")
    subject=$(sed -n 's/^Subject: \(\[PATCH[^]]*\] \)\?//p' "$f" | head -1)
    problems=()
    [[ "$subject" =~ ^[a-z0-9_./,+-]+(\ [a-z0-9_./,+-]+)?:\ [^\ ] ]] ||
        problems+=("subject is not 'area: summary'")
    # body: non-empty lines between the header and the Signed-off-by/---
    body=$(awk '/^$/ && !h {h=1; next} h && /^(Signed-off-by:|---$)/ {exit}
                h && NF {print}' "$f" | wc -l)
    [ "$body" -ge 1 ] || problems+=("no body")
    grep -q '^Signed-off-by: .\+ <.\+@.\+>' "$f" || problems+=("no Signed-off-by")
    out=$(cd "$wt" && perl scripts/checkpatch.pl --no-color -q "$f" 2>&1)
    [ $? -eq 0 ] || problems+=("checkpatch: $(echo "$out" | grep -m3 -E '^(ERROR|WARNING)' | tr '\n' ' ')")
    if [ ${#problems[@]} -eq 0 ]; then
        result PASS "$name"
    else
        result FAIL "$name" "${problems[*]}"
    fi
done

git -C "$wt" worktree remove --force "$scratch" >/dev/null 2>&1
rm -f "$scratch.log"
exit $fail
