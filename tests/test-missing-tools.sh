#!/usr/bin/env bash
# A script that calls a tool the machine lacks fails at once and names the
# Debian package (scripts/need.sh), instead of going on past a "command not
# found" (a fresh Debian 12 has no modinfo: guest.sh then built an
# initramfs without virtio_pci's dependencies and the guest never plugged).
#
# Runs copies of the scripts in a temporary project (the guest kernel
# already unpacked in build/guest is linked in, not copied) with a PATH of
# links to every command of this PATH but the one taken away; nothing is
# uninstalled. Also: with every tool there the initramfs gets each module
# after its dependencies, and every package that a `need` names is
# installed by scripts/deps.sh or is part of a minimal Debian 12.
# Prints one PASS/FAIL line per check and "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0
check() { # ok(0/1) what [detail]
    if [ "$1" = 0 ]; then
        echo "PASS $2"; passed=$((passed + 1))
    else
        echo "FAIL $2"; [ -z "${3:-}" ] || echo "$3" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

tmp=$(mktemp -d /tmp/vmem-missing-tools.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# A copy of the project's scripts that write under build/ (their build/
# is the temporary one); downloads and the unpacked kernel are shared
proj="$tmp/project"
mkdir -p "$proj/scripts" "$proj/tests/guest" "$proj/bench/nested" "$proj/build/guest"
cp "$top"/scripts/*.sh "$top/scripts/base.conf" "$proj/scripts/"
cp "$top/tests/guest/init" "$proj/tests/guest/"
cp "$top/bench/nested/init" "$proj/bench/nested/"
mkdir -p "$top/build/download"
ln -s "$top/build/download" "$proj/build/download"
for d in "$top"/build/guest/linux-image-*; do
    [ -d "$d/boot" ] && ln -s "$d" "$proj/build/guest/"
done

# One directory of links to everything in $PATH (the first of a name
# wins, as in a lookup); a command is taken away by removing its link
shim="$tmp/path"
mkdir -p "$shim"
IFS=: read -r -a path_dirs <<<"$PATH"
for d in "${path_dirs[@]}"; do
    [ -d "$d" ] && ln -s "$d"/* "$shim/" 2>/dev/null
done
shim_path() { # command : $shim without this command
    rm -rf "$tmp/taken"
    mkdir -p "$tmp/taken"
    mv "$shim/$1" "$tmp/taken/" 2>/dev/null
    echo "$shim"
}
restore_path() {
    mv "$tmp"/taken/* "$shim/" 2>/dev/null
}

# run_without TOOL PACKAGE SCRIPT [ARGS]: fails at once naming PACKAGE
run_without() {
    local tool=$1 pkg=$2 script=$3 out rc t0
    shift 3
    local path
    path=$(shim_path "$tool")
    rm -rf "$proj/build/guest/initramfs" "$proj/build/guest"/*.img
    t0=$EPOCHREALTIME
    out=$(PATH="$path" "$proj/scripts/$script" "$@" 2>&1)
    rc=$?
    restore_path
    local took
    took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    local written=""
    [ ! -e "$proj/build/guest/initrd.img" ] || written="an initramfs was written"
    [ $rc -ne 0 ] && [[ "$out" == *"package $pkg"* ]] && [ -z "$written" ]
    check $? "$script without $tool fails at once naming package $pkg (exit $rc, $took s)" \
        "exit $rc${written:+, $written}; output:
$(echo "$out" | tail -8)"
}

run_without modinfo kmod guest.sh
run_without cpio cpio guest.sh
# (--help: should the check be missing, it does nothing either)
run_without debootstrap debootstrap check-fresh.sh --help

# With every tool: each module of the initramfs after its dependencies
# (modinfo, as the kernel's modules.dep would say)
rm -rf "$proj/build/guest/initramfs" "$proj/build/guest"/*.img
out=$("$proj/scripts/guest.sh" 2>&1)
rc=$?
problems=()
if [ $rc -ne 0 ]; then
    problems+=("guest.sh: exit $rc: $(echo "$out" | tail -5)")
elif ! command -v modinfo >/dev/null; then
    problems+=("modinfo is missing (Debian package kmod)")
else
    for img in initrd.img kvmhost.img; do
        x="$tmp/unpacked-$img"
        mkdir -p "$x"
        (cd "$x" && gzip -dc "$proj/build/guest/$img" | cpio -id --quiet) ||
            problems+=("$img: cannot unpack")
        mods=$(cat "$x/lib/modules/load" 2>/dev/null)
        [ -n "$mods" ] || problems+=("$img: no modules in /lib/modules/load")
        seen=" "
        for ko in $mods; do
            for dep in $(modinfo -F depends "$x/lib/modules/$ko" | tr ',' ' '); do
                case "$seen" in
                *" $dep.ko "*|*" ${dep//_/-}.ko "*) ;;
                *) problems+=("$img: $ko is loaded before (or without) its dependency $dep") ;;
                esac
            done
            seen="$seen$ko "
        done
    done
fi
check $((${#problems[@]} > 0)) "guest.sh with every tool: in both initramfs images every module comes after its dependencies" \
    "$(printf '%s\n' "${problems[@]}")"

# Every package a need names: installed by deps.sh or minimal Debian 12's
deps_pkgs=" $(sed -n '/^PKGS=(/,/^)/p' "$top/scripts/deps.sh" |
              sed -e 's/#.*//' -e 's/PKGS=(//' -e 's/)//' | tr -s ' \n' ' ') "
named=$( { cat "$top"/scripts/*.sh "$top"/bench/*.sh |
           sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
           sed -n 's/^[[:space:]]*need[[:space:]]\+//p' |
           awk '{ for (i = 1; i + 1 <= NF; i += 2)
                      if ($i !~ /\$/ && $(i + 1) !~ /\$/) print $(i + 1) }'
         grep -ho 'need([^)]*)' "$top"/tests/*.py "$top"/tests/lib/*.py \
             "$top"/bench/*.py 2>/dev/null |
           grep -o '"[^"]*"' | tr -d '"' | awk 'NR % 2 == 0'
       } | sort -u)
others=()
for p in $named; do
    case "$deps_pkgs" in *" $p "*) ;; *) others+=("$p") ;; esac
done
# those of a minimal Debian 12: Essential, or of Priority required
minimal=" "
if [ ${#others[@]} -gt 0 ]; then
    minimal+=$(apt-cache show --no-all-versions "${others[@]}" 2>/dev/null |
               awk '/^Package:/ { p = $2 }
                    /^Essential: yes$/ || /^Priority: required$/ { print p }' |
               sort -u | tr '\n' ' ')
fi
problems=()
for p in ${others[@]+"${others[@]}"}; do
    case "$minimal" in *" $p "*) ;; *) problems+=("$p: neither in deps.sh nor essential/required") ;; esac
done
check $((${#problems[@]} > 0)) "the packages named by need ($(echo "$named" | tr '\n' ' ' | sed 's/ $//')) are installed by deps.sh or part of minimal Debian 12" \
    "$(printf '%s\n' "${problems[@]}")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
