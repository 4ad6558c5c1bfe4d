#!/usr/bin/env bash
# Print, one per line, the configure options of Debian's main qemu build
# (debian/rules' b/qemu/configured: common_configure_opts, the options of
# its recipe and debian/control's, through debian/extract-config-opts),
# as debian/rules of the tree expands them for this machine.
#
# Usage: debian-configure-opts.sh [TREE]   (default build/qemu)
#
# make -n prints the recipe without running it; dh_listpackages and
# dpkg's makefile snippets that debian/rules calls come from debhelper and
# dpkg-dev (scripts/build-deps.sh installs them).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need make make dh_listpackages debhelper python3 python3
tree=${1:-$top/build/qemu}
# A target that does not exist in the tree, so make prints its recipe;
# without the flags of a make that runs us (make qemu CFLAGS=...)
(cd "$tree" && env -u MAKEFLAGS -u MAKEOVERRIDES -u MFLAGS \
    make -s -n -f debian/rules b/qemu/configured) | python3 -c '
import shlex, sys
text = sys.stdin.read().replace("\\\n", " ")
line = next(l for l in text.splitlines() if "../../configure " in l)
args = shlex.split(line.split("../../configure ", 1)[1])
if not args:
    sys.exit("debian-configure-opts: no configure options in debian/rules")
print("\n".join(args))'
