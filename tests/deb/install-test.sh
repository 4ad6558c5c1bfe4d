#!/usr/bin/env bash
# make deb's packages on a pristine Debian 12, as an administrator installs
# them. Runs as root inside the chroot of scripts/check-deb-install.sh, in
# a clone of the repository that has build/deb (the .debs), the test guest
# and build/qemu/python copied in; on a real machine it would replace the
# system's QEMU, so it refuses to run outside a chroot.
#
# 1. Debian's qemu-system-x86 installs by package name (the host's state
#    before);
# 2. make deb-install (scripts/deb-install.sh, the README's command)
#    upgrades the packages the host has to ours, everything else from the
#    archive, and holds them: those are at our version, held, no -dbgsym
#    package came along, and /usr/bin/qemu-system-x86_64 says so;
# 3. the installed binary boots the test guest with a 1 TiB
#    dynamic-memslots=on device, whose driver plugs and unplugs as QMP
#    resizes it (tests/deb/boot-installed.py);
# 4. libvirt 11.3 (bookworm-backports) runs tests/libvirt/'s domain, with
#    its <numatune> memory binding, on its default emulator, which is ours
#    now (tests/test-libvirt.py, VMEM_LIBVIRT_INSTALLED=1);
# 5. make deb-revert goes back to Debian's packages: none is held, each is
#    at Debian's version, and the binary is Debian's again.
#
# Prints PASS/FAIL per step and "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/scripts/base.conf"
. "$top/scripts/deb.conf"
# The chroot of check-fresh.sh says what it is in its policy-rc.d (the
# root of a chrooted process may not read /proc/1/root to compare)
grep -qs '^# check-fresh: no services in this chroot' /usr/sbin/policy-rc.d || {
    echo "install-test: not in check-fresh's chroot (no marker in" \
         "/usr/sbin/policy-rc.d): refusing, it would replace this system's QEMU" >&2
    exit 2
}
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
logs="$top/build/deb-install-logs"
mkdir -p "$logs"
passed=0 failed=0
result() { # ok what [log]
    if [ "$1" = 0 ]; then
        echo "PASS $2"; passed=$((passed + 1))
    else
        echo "FAIL $2"; failed=$((failed + 1))
        [ -z "${3:-}" ] || tail -15 "$3" | sed 's/^/    /'
    fi
}
installed() { # package: whether dpkg has it installed
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'
}
versions() { # the installed version of each package, "-" if absent
    local p
    for p in "$@"; do
        printf '%s=%s ' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo -)"
    done
}

# 1. Debian's QEMU (and what the tests need: python3, procps for pgrep)
"${apt[@]}" update >"$logs/update.log" 2>&1
"${apt[@]}" install --no-install-recommends qemu-system-x86 python3 procps \
    >"$logs/stock.log" 2>&1
rc=$?
stock=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null)
[ $rc = 0 ] && [ -n "$stock" ]
result $? "Debian's qemu-system-x86 $stock installs by package name" "$logs/stock.log"

# 2. Ours over it, as the README says
have=()
for p in $DEB_PACKAGES; do
    ! installed "$p" || have+=("$p")
done
make -C "$top" deb-install >"$logs/ours.log" 2>&1
rc=$?
want=""
for p in "${have[@]}"; do want+="$p=$DEB_VERSION "; done
got=$(versions "${have[@]}")
held=$(printf '%s\n' "${have[@]}" | sort | tr '\n' ' ')
showhold=$(apt-mark showhold | sort | tr '\n' ' ')
dbgsym=$(dpkg-query -W -f='${Package}\n' '*-dbgsym' 2>/dev/null)
[ $rc = 0 ] && [ "$got" = "$want" ] &&
    [ "$showhold" = "$held" ] &&
    [ -z "$dbgsym" ] &&
    /usr/bin/qemu-system-x86_64 --version | grep -qF "(Debian $DEB_VERSION)"
result $? "make deb-install upgrades ${have[*]} to $DEB_VERSION and holds them" \
    "$logs/ours.log"
[ "$got" = "$want" ] || echo "    installed: $got"
echo "    held: $showhold${dbgsym:+; -dbgsym installed: $dbgsym}"

# 3. The installed binary, a real guest, 1 TiB dynamic-memslots=on
VMEM_QEMU=/usr/bin/qemu-system-x86_64 python3 "$top/tests/deb/boot-installed.py" \
    >"$logs/boot.log" 2>&1
result $? "the installed QEMU boots the guest with a 1 TiB dynamic-memslots=on device and resizes it" \
    "$logs/boot.log"
grep -E '^(PASS|FAIL|    )' "$logs/boot.log" | sed 's/^/  /'

# 4. libvirt 11.3 with its default emulator and <numatune>
VMEM_LIBVIRT_INSTALLED=1 python3 "$top/tests/test-libvirt.py" >"$logs/libvirt.log" 2>&1
result $? "libvirt 11.3: tests/libvirt/vmem-dynamic.xml with <numatune>, default emulator" \
    "$logs/libvirt.log"
grep -E '^(PASS|FAIL|SKIP)' "$logs/libvirt.log" | sed 's/^/  /'

# 5. Back to Debian's, as the README says
make -C "$top" deb-revert >"$logs/downgrade.log" 2>&1
rc=$?
want="" got=""
for p in $DEB_PACKAGES; do
    installed "$p" || continue
    want+="$p=$stock " got+="$p=$(dpkg-query -W -f='${Version}' "$p") "
done
showhold=$(apt-mark showhold)
[ $rc = 0 ] && [ "$got" = "$want" ] && [ -z "$showhold" ] &&
    ! /usr/bin/qemu-system-x86_64 --version | grep -qF memslots
result $? "make deb-revert goes back to Debian's $stock, nothing held" \
    "$logs/downgrade.log"
[ "$got" = "$want" ] || echo "    installed: $got"
[ -z "$showhold" ] || echo "    held: $showhold"

echo "$passed passed, $failed failed"
[ $failed = 0 ]
