#!/usr/bin/env bash
# make deb: Debian's qemu source package of the pinned version plus the
# series, built with Debian's own debian/rules into build/deb/*.deb.
#
# - the source: build/download's .dsc unpacked afresh (Debian's patches
#   applied) into build/deb-src/qemu-<upstream version>;
# - packaging/x86-only-profile.patch: our build profile pkg.qemu.x86-only
#   (qemu-system-x86 and the packages that go with it; see the patch);
# - the series: patches/0001-... into debian/patches/memslots/, appended
#   to debian/patches/series; dpkg-source applies them before the build;
# - a changelog entry with a local version (dch --local +memslots):
#   1:7.2+dfsg-7+deb12u18+memslots1, above the Debian version it is built
#   from, so apt takes it over Debian's and users pin or hold it;
# - build dependencies: scripts/build-deps.sh (apt-get build-dep);
#   QEMU_CONFIGURE_OPTIONS (scripts/deb.conf) turns off what configure
#   would find here but not on Debian's buildds;
# - dpkg-buildpackage -B -us -uc -P pkg.qemu.x86-only, DEB_BUILD_OPTIONS
#   "parallel=<cores> nocheck" (QEMU's own suite runs in make check), with
#   ccache (build/ccache) in front of the compilers; then the series'
#   virtio-mem-test on the build tree;
# - another revision of Debian's qemu 7.2 than the pinned one:
#   make deb BASE_VERSION=1:7.2+dfsg-7+deb12uNN (scripts/base-update.sh);
#   a patch that no longer applies is named before anything is built.
#
# The .debs, .buildinfo and .changes land in build/deb/; build/deb/
# build-time says how long the build took, build/deb/inputs.sha256 what
# it was built from (scripts/deb-inputs.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need dpkg-buildpackage dpkg-dev dpkg-source dpkg-dev dch devscripts \
     ccache ccache
. "$top/scripts/base.conf"
. "$top/scripts/deb.conf"
"$top/scripts/fetch-base.sh" --download-only
# --apply-only: unpack and apply the series in a scratch directory, then
# stop (tests/test-base-rebuild.sh); build/deb and build/deb-src stay
apply_only=${1:-}

out="$top/build/deb"
upstream=${BASE_VERSION#*:}
upstream=${upstream%-*}
# build/deb holds the results alone (what users install, what the
# install test copies); the tree and its build are beside it
srcdir="$top/build/deb-src"
if [ "$apply_only" = --apply-only ]; then
    srcdir=$(mktemp -d)
    trap 'rm -rf "$srcdir"' EXIT
else
    rm -rf "$out" "$srcdir"
    mkdir -p "$out" "$srcdir"
fi
src="$srcdir/$BASE_PKG-$upstream"
inputs=$("$top/scripts/deb-inputs.sh")
dpkg-source --no-check -q -x "$top/build/download/$BASE_DSC" "$src" >/dev/null

patch -s -d "$src" -p1 < "$top/packaging/x86-only-profile.patch"
mkdir -p "$src/debian/patches/memslots"
for p in "$top"/patches/[0-9][0-9][0-9][0-9]-*.patch; do
    case ${p##*/} in 0000-*) continue ;; esac
    cp "$p" "$src/debian/patches/memslots/"
    echo "memslots/${p##*/}" >> "$src/debian/patches/series"
done

# dpkg-source applies the series now, so that a patch that no longer
# applies to this base is named at once (not after a build's worth of log)
if ! applied=$(cd "$src" && dpkg-source --before-build . 2>&1); then
    failed=$(sed -n 's/^dpkg-source: info: applying //p' <<<"$applied" |
             tail -1)
    echo "deb: ${failed:-a patch of debian/patches/series} does not apply" \
         "to $BASE_PKG $BASE_VERSION:" >&2
    tail -20 <<<"$applied" >&2
    exit 1
fi
if [ "$apply_only" = --apply-only ]; then
    echo "deb: the series applies to $BASE_PKG $BASE_VERSION"
    exit 0
fi

# The changelog entry, by dch, with the project's identity
(cd "$src" &&
 DEBFULLNAME="$DEB_MAINTAINER_NAME" DEBEMAIL="$DEB_MAINTAINER_EMAIL" \
     dch --local "$DEB_LOCAL_SUFFIX" --distribution "$DEB_DISTRIBUTION" \
         --force-distribution \
         "virtio-mem dynamic memslots (dynamic-memslots=on), built with the
pkg.qemu.x86-only profile; see the project's README.")
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
if [ "$version" != "$DEB_VERSION" ]; then
    echo "deb: dch made version $version, expected $DEB_VERSION" >&2
    exit 1
fi

"$top/scripts/build-deps.sh" "$src"

# ccache's own per-user cache (dpkg-buildflags map the build's absolute
# path into the objects: a clone elsewhere does not hit what this one
# compiled, a rebuild here does)
# (build/ccache where there is no home); its size is the user's setting
cache_home=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}
export CCACHE_DIR="${CCACHE_DIR:-${cache_home:-$top/build}/ccache}"
export CCACHE_SLOPPINESS=time_macros,include_file_mtime,include_file_ctime
export PATH="/usr/lib/ccache:$PATH"
export QEMU_CONFIGURE_OPTIONS="$DEB_CONFIGURE_OPTIONS"
echo "deb: building $BASE_PKG $version (log: build/deb-src/build.log)"
t0=$SECONDS
(cd "$src" &&
 DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck" \
     dpkg-buildpackage -B -us -uc -P"$DEB_PROFILE") >"$srcdir/build.log" 2>&1 ||
    { tail -40 "$srcdir/build.log" >&2; exit 1; }
took=$((SECONDS - t0))

# The series' qtest on what was built, before anything lands in build/deb
# (make check runs the rest). The build tree's binary finds firmware in
# its qemu-bundle, where the system's firmware packages are linked.
b="$src/b/qemu"
fw="$b/qemu-bundle/usr/share/qemu"
mkdir -p "$fw"
for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
    for f in "$d"/*; do
        [ ! -e "$f" ] || [ -e "$fw/${f##*/}" ] || ln -s "$f" "$fw/"
    done
done
echo "deb: virtio-mem-test on the build of $BASE_PKG $BASE_VERSION"
QTEST_QEMU_BINARY="$b/qemu-system-x86_64" "$b/tests/qtest/virtio-mem-test" \
    --tap >"$srcdir/virtio-mem-test.log" 2>&1 ||
    { grep -E '^(not ok|Bail out)|ERROR' "$srcdir/virtio-mem-test.log" |
          head -20 >&2
      echo "deb: virtio-mem-test failed on $BASE_PKG $BASE_VERSION" \
           "(build/deb-src/virtio-mem-test.log)" >&2
      exit 1; }
grep -c '^ok ' "$srcdir/virtio-mem-test.log" | sed 's/$/ cases passed/;s/^/deb: virtio-mem-test: /'
mv "$srcdir"/*.deb "$srcdir"/*.buildinfo "$srcdir"/*.changes "$out/"
echo "$inputs" > "$out/inputs.sha256"
echo "$took s, $(nproc) cores, ccache $(ccache -s 2>/dev/null |
    sed -n 's/^ *Hits: *\([0-9]*\) *\/ *\([0-9]*\).*/\1 of \2 hits/p' |
    head -1)" > "$out/build-time"
echo "deb: built in $((took / 60)) min $((took % 60)) s:"
ls -1 "$out"/*.deb | sed "s|^$top/||"
