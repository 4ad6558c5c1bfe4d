#!/usr/bin/env bash
# Install make deb's packages (build/deb) over Debian's QEMU, and hold
# them; or go back to Debian's. As root, on the host that runs the VMs.
#
# Usage: deb-install.sh            install and hold
#        deb-install.sh --revert   unhold, and install Debian's newest
#                                  packages of this release instead
#
# Installs qemu-system-x86 and qemu-system-common, and of the other
# packages make deb builds (qemu-system-gui, qemu-block-extra, qemu-utils,
# qemu-guest-agent) those the host already has, never the -dbgsym ones.
# The hold keeps "apt upgrade" from replacing them with Debian's next
# update of 7.2, which sorts above ours and lacks dynamic-memslots.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need apt-get apt apt-mark apt dpkg-query dpkg dpkg-deb dpkg
. "$top/scripts/base.conf"
. "$top/scripts/deb.conf"
[ "$(id -u)" = 0 ] || { echo "deb-install: run it as root" >&2; exit 1; }
export DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-noninteractive}

installed() { # package: whether dpkg has it installed
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'
}

pkgs=()
for p in $DEB_PACKAGES; do
    case $p in
    qemu-system-x86|qemu-system-common) pkgs+=("$p") ;;
    *) ! installed "$p" || pkgs+=("$p") ;;
    esac
done

# apt asks before it removes packages (other architectures' emulators)
# where someone can answer; -y where nobody can
yes=(-y)
[ ! -t 0 ] || [ ! -t 1 ] || yes=()

if [ "${1:-}" = --revert ]; then
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    v=$(apt-cache madison qemu-system-x86 | awk -v c="$codename" -F' *[|] *' \
        '$3 ~ ("^[^ ]+ " c "(-updates|-security)?/") {print $2; exit}')
    [ -n "$v" ] || { echo "deb-install: apt knows no qemu-system-x86 of" \
                          "$codename" >&2; exit 1; }
    apt-get install -q "${yes[@]}" --allow-downgrades \
        --allow-change-held-packages "${pkgs[@]/%/=$v}"
    # every hold of ours, also of packages removed since
    held=$(apt-mark showhold | grep -xF -f <(tr ' ' '\n' <<<"$DEB_PACKAGES") || true)
    [ -z "$held" ] || apt-mark unhold $held >/dev/null
    echo "deb-install: Debian's $v installed, nothing held: ${pkgs[*]}"
    exit 0
fi
[ -z "${1:-}" ] || { echo "deb-install: unknown argument $1" >&2; exit 2; }

[ -d "$top/build/deb" ] ||
    { echo "deb-install: no build/deb: run make deb first" >&2; exit 1; }
debs=()
for p in "${pkgs[@]}"; do
    f="$top/build/deb/${p}_${DEB_VERSION#*:}_amd64.deb"
    if [ ! -f "$f" ]; then
        other=$(ls "$top/build/deb/${p}"_*_amd64.deb 2>/dev/null | head -1) || true
        [ -z "$other" ] || other=$(dpkg-deb -f "$other" Version 2>/dev/null) || true
        hint=""
        [ -z "$other" ] ||
            hint=" (build/deb has $other: make deb-install BASE_VERSION=${other%"$DEB_LOCAL_SUFFIX"*} installs it)"
        echo "deb-install: no build/deb/${f##*/}: run make deb$hint" >&2
        exit 1
    fi
    debs+=("$f")
done
"$top/scripts/deb-inputs.sh" --check
# held from an earlier install: apt may change them, and they stay held
# whatever happens (never left unheld after a failed install)
apt-get install -q "${yes[@]}" --allow-change-held-packages "${debs[@]}"
apt-mark hold "${pkgs[@]}"
echo "deb-install: $DEB_VERSION installed and held: ${pkgs[*]}"
