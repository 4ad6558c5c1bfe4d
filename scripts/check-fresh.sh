#!/usr/bin/env bash
# make check-fresh: the README's two commands on a pristine Debian 12.
#
# Builds a Debian 12 chroot in build/fresh/root with debootstrap
# (--variant=minbase bookworm, the mirror taken from the URIs: line of the
# machine's own deb822 apt sources), gives it the machine's apt sources
# and /etc/resolv.conf, installs only make and git there (no recommends),
# clones this repository's committed HEAD into /root/main (uncommitted
# changes are NOT included: commit first) and runs, as root, `make demo`
# and then `make check` there, as a user of a fresh machine would. Prints
# PASS/FAIL and the wall time of each step and ends with
# "N passed, N failed". Takes as long as a fresh build and `make check`
# (about 45 min on 2 cores); not part of `make check`.
#
# The debootstrap result is kept as build/fresh/base-*.tar (one per mirror
# and architecture; --rebootstrap makes it anew), so only the first run
# spends the ~3 minutes of debootstrap; every run starts from a pristine
# copy of it. The chroot's root is bind-mounted onto itself (a mount point,
# as / is on a real machine), /proc, /sys and /dev (with /dev/pts) into it;
# all are always unmounted on exit, also on failure or Ctrl-C.
# The chroot is left in build/fresh/root (unmounted) for a look; logs are
# in build/fresh/logs/.
#
# Usage: check-fresh.sh [--setup-only | --run COMMAND] [--rebootstrap]
#   --setup-only   stop after the chroot is set up and the clone made
#   --run COMMAND  run this shell command in the clone instead of the two
#                  (e.g. --run 'make deps && scripts/guest.sh')
#   --rebootstrap  run debootstrap again instead of using the kept base
#   --copy PATH    copy PATH (relative to the repository, e.g. build/deb)
#                  to the same place in the clone; may be repeated. For
#                  tests of what the host built (scripts/check-deb-install.sh)
# Environment:
#   CHECK_FRESH_ENV   NAME=VALUE words added to the environment of the two
#                     commands in the chroot, e.g. CHECK_FRESH_ENV="CHECK_ASAN=0";
#                     by default there are none: the full commands run.
#
# Differences from a real fresh machine, on purpose: the chroot has no
# init system, so /usr/sbin/policy-rc.d keeps packages that the tests
# install (libvirt) from starting services in it. The chroot's apt
# sources are the host's, and nothing of build/ is copied in but what
# --copy names.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need debootstrap debootstrap git git tar tar chroot coreutils \
     mount mount umount mount

setup_only=0 rebootstrap=0 run_cmd= copies=()
while [ $# -gt 0 ]; do
    case $1 in
    --setup-only) setup_only=1 ;;
    --rebootstrap) rebootstrap=1 ;;
    --copy) [ $# -ge 2 ] && [ -e "$top/$2" ] ||
                { echo "check-fresh: --copy needs a path under $top" >&2; exit 2; }
            copies+=("$2"); shift ;;
    --run) [ $# -ge 2 ] || { echo "check-fresh: --run needs a command" >&2; exit 2; }
           run_cmd=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "check-fresh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "check-fresh: run as root (debootstrap, chroot, mount)" >&2; exit 1; }

read -r -a extra_env <<<"${CHECK_FRESH_ENV:-}"
for e in ${extra_env[@]+"${extra_env[@]}"}; do
    [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] ||
        { echo "check-fresh: CHECK_FRESH_ENV: '$e' is not NAME=VALUE" >&2; exit 2; }
done

suite=bookworm
arch=$(dpkg --print-architecture)
fresh="$top/build/fresh"
root="$fresh/root"
logs="$fresh/logs"
mkdir -p "$fresh" "$logs"
# One chroot at a time: a second run (make check-fresh next to make
# check's install test) would kill the first one's processes and delete
# its root. The lock goes with this process.
exec {lock}>"$fresh/.lock"
flock -n "$lock" || {
    echo "check-fresh: another run uses $root (build/fresh/.lock);" \
         "waiting for it" >&2
    flock "$lock"
}

# --- the machine's apt sources -------------------------------------------
sources=()
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in qemu-memslots-*) continue ;; esac
    sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] ||
    { echo "check-fresh: no deb822 apt sources in /etc/apt/sources.list.d" >&2; exit 1; }
# The first URI of a "Types: deb" stanza that lists the suite itself
mirror=$(awk -v suite="$suite" '
    function flush() {
        if (!found && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " suite " ")) {
            found = uri
        }
        types = suites = uri = ""
    }
    /^#/ { next }
    /^[ \t]*$/ { flush(); next }
    tolower($1) == "types:" { $1 = ""; types = $0 }
    tolower($1) == "suites:" { $1 = ""; suites = $0 }
    tolower($1) == "uris:" { uri = $2 }
    END { flush(); print found }' "${sources[@]}")
[ -n "$mirror" ] ||
    { echo "check-fresh: no 'Types: deb' stanza for $suite in ${sources[*]}" >&2; exit 1; }

# --- mounts, and their removal whatever happens -----------------------------
mounts_under() { # mount points under build/fresh (the chroot, debootstrap's), deepest first
    awk -v r="$fresh/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo |
        sort -r
}

stop_chroot_processes() {
    local sig p pids
    for sig in TERM KILL; do
        pids=()
        for p in /proc/[0-9]*; do
            case "$(readlink "$p/root" 2>/dev/null)" in
            "$fresh"/*) pids+=("${p#/proc/}") ;;
            esac
        done
        [ ${#pids[@]} -gt 0 ] || return 0
        echo "check-fresh: stopping ${#pids[@]} process(es) left in the chroot (SIG$sig)" >&2
        kill -s "$sig" "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            local alive=0
            for p in "${pids[@]}"; do [ -e "/proc/$p" ] && alive=1; done
            [ $alive = 1 ] || return 0
            sleep 0.1
        done
    done
}

unmount_all() {
    local m try
    stop_chroot_processes
    for try in 1 2 3; do
        for m in $(mounts_under); do
            umount "$m" 2>/dev/null || [ $try -lt 3 ] || umount -l "$m" || true
        done
        [ -n "$(mounts_under)" ] || return 0
        sleep 1
    done
    echo "check-fresh: still mounted under $fresh: $(mounts_under | tr '\n' ' ')" >&2
    return 1
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    unmount_all || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "check-fresh: interrupted" >&2; exit 130' INT
trap 'echo "check-fresh: terminated" >&2; exit 143' TERM

mount_all() {
    # On a real machine / is a mount point; unshare --propagation (the
    # libvirt 9.0 test) fails on a chroot whose root is none
    mount --bind "$root" "$root"
    mount --bind /proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --make-rslave "$root/sys"
    mount --rbind /dev "$root/dev"     # with /dev/pts and /dev/shm
    mount --make-rslave "$root/dev"
}

# Run in the background and wait: a signal then reaches our traps at once
# (the cleanup stops what runs in the chroot), not when the command ends
# Neither gets the lock's descriptor: a process left in the chroot would
# hold the lock and the next run would wait for it before it can stop it
bg_wait() { # command...
    "$@" {lock}>&- &
    local rc=0
    wait $! || rc=$?
    return $rc
}

mins() { printf '%d min %d s' $(($1 / 60)) $(($1 % 60)); }

passed=0 failed=0
result() { # PASS|FAIL what
    echo "$1 $2"
    if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# --- the pristine base: debootstrap once, then copies -----------------------
key=$(printf '%s %s %s minbase' "$suite" "$arch" "$mirror" | sha256sum | cut -c1-12)
base="$fresh/base-$suite-$arch-$key.tar"
t0=$SECONDS
if [ ! -f "$base" ] || [ $rebootstrap = 1 ]; then
    tmp="$fresh/bootstrap.tmp"
    rm -rf --one-file-system "$tmp"
    echo "check-fresh: debootstrap --variant=minbase $suite from the machine's mirror (log: $logs/debootstrap.log)"
    if ! bg_wait debootstrap --variant=minbase --arch="$arch" "$suite" "$tmp" "$mirror" \
            >"$logs/debootstrap.log" 2>&1; then
        tail -15 "$logs/debootstrap.log" >&2
        result FAIL "setup: debootstrap $suite"
        finish
    fi
    tar -C "$tmp" --numeric-owner -cpf "$base.tmp" .
    mv "$base.tmp" "$base"
    rm -rf --one-file-system "$tmp"
    how="debootstrap $(mins $((SECONDS - t0)))"
else
    how="kept base $(basename "$base")"
fi

# --- a pristine copy, set up as a user's machine ----------------------------
t1=$SECONDS
unmount_all         # a run killed without its traps may have left mounts
rm -rf --one-file-system "$root"
mkdir -p "$root"
tar -C "$root" --numeric-owner -xpf "$base"
rm -f "$root/etc/apt/sources.list"
cp "${sources[@]}" "$root/etc/apt/sources.list.d/"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\n# check-fresh: no services in this chroot\nexit 101\n' \
    > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mount_all

in_chroot() { # command... : run in the chroot as root with a login's environment
    chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "$@" {lock}>&-
}

# The committed HEAD (on its branch, as a clone gets it), through a bundle
# that the chroot's own git clones
refs=(HEAD)
if branch=$(git -C "$top" symbolic-ref -q HEAD); then refs+=("$branch"); fi
git -C "$top" bundle create -q "$root/tmp/main.bundle" "${refs[@]}" 2>"$logs/setup.log"
commit=$(git bundle list-heads "$root/tmp/main.bundle" HEAD | cut -c1-7)
if [ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]; then
    echo "check-fresh: note: uncommitted changes in $top are not tested, only its HEAD $commit"
fi
if bg_wait in_chroot DEBIAN_FRONTEND=noninteractive sh -c '
        set -e
        apt-get update -q
        apt-get install -y -q --no-install-recommends make git
        git clone -q /tmp/main.bundle /root/main
        rm /tmp/main.bundle
        git -C /root/main log -1 --format="%h %s"' >>"$logs/setup.log" 2>&1; then
    result PASS "setup: pristine Debian 12 chroot ($how), make and git installed, HEAD $commit cloned ($(mins $((SECONDS - t1))))"
else
    tail -15 "$logs/setup.log" >&2
    result FAIL "setup: make and git in the chroot, clone of $commit (log: $logs/setup.log)"
    finish
fi
for c in ${copies[@]+"${copies[@]}"}; do
    mkdir -p "$root/root/main/$(dirname "$c")"
    cp -aL "$top/$c" "$root/root/main/$c"
done
[ $setup_only = 0 ] || finish

# --- the README's two commands ----------------------------------------------
run_in_clone() { # command log: in the clone, output to the terminal and the log
    in_chroot ${extra_env[@]+"${extra_env[@]}"} sh -c "cd /root/main && $1" \
        </dev/null 2>&1 | tee "$2"
}
[ ${#extra_env[@]} -eq 0 ] || echo "check-fresh: with ${extra_env[*]}"
if [ -n "$run_cmd" ]; then
    steps=("$run_cmd")
else
    steps=("make demo" "make check")
fi
for step in "${steps[@]}"; do
    log="$logs/$(echo "$step" | tr -c 'A-Za-z0-9_.\n-' '-' | cut -c1-60).log"
    echo "check-fresh: $step, in the chroot (log: $log)"
    t=$SECONDS
    rc=0
    bg_wait run_in_clone "$step" "$log" || rc=$?
    took=$(mins $((SECONDS - t)))
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
    if [ $rc -eq 0 ]; then
        result PASS "$step${summary:+: $summary} ($took)"
    else
        result FAIL "$step: exit $rc${summary:+, $summary} ($took)"
    fi
done
finish
