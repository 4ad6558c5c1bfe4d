#!/usr/bin/env python3
"""make deb's packages against Debian's own of the same version.

The oracle is Debian's qemu-system-x86 as installed by package name
(scripts/deps.sh), built from the pinned source version: its binary
packages of that version are downloaded (apt-get download) into
build/deb-stock and unpacked next to ours (build/deb, from make deb).
For every package make deb builds (scripts/deb.conf, DEB_PACKAGES):

- the control fields that say how it installs (Depends, Recommends,
  Provides, Breaks, Replaces, ...) are Debian's, with our version where
  Debian's has its own;
- it ships the same files, and every ELF file links the same shared
  libraries (readelf NEEDED); the module list is the same (so the
  features that configure detects are the same: scripts/deb.conf pins
  the one this machine would add, bzip2 for dmg images);
- qemu-system-x86_64 from each package, run with its own package's
  modules (QEMU_MODULE_DIR), prints the same -device help, -object help,
  -machine help, -accel help and -cpu help;
- make check's binary (scripts/build.sh) links the same libraries and has
  the same x86_64 modules as the packaged one;
- the documented additions of the series, and nothing else: virtio-mem's
  dynamic-memslots property (-device virtio-mem-pci,help), its docs page
  (ONLY_OURS) and the version string (--version); Debian's binNMU (+bN)
  ships a changelog of its rebuild that ours, built from the source
  version, has not.

Fails at once when build/deb is older than the series or the packaging
(scripts/deb-inputs.sh). Skips every case, saying why, when make deb has
not run here (it is not
part of make check: see docs/packaging.md). Prints one PASS/FAIL/
SKIP line per check and "N passed, N failed[, N skipped]".
"""

import glob
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
# pylint: disable=wrong-import-position
from need import need  # noqa: E402
from results import Results  # noqa: E402

DEBS = os.path.join(TOP, "build", "deb")
STOCK = os.path.join(TOP, "build", "deb-stock")
FIELDS = ["Architecture", "Multi-Arch", "Section", "Priority",
          "Pre-Depends", "Depends", "Recommends", "Suggests", "Enhances",
          "Provides", "Breaks", "Replaces", "Conflicts"]
HELPS = [["-device", "help"], ["-object", "help"], ["-machine", "help"],
         ["-accel", "help"], ["-cpu", "help"]]
MODDIR = "usr/lib/x86_64-linux-gnu/qemu"
# What the series adds to "-device virtio-mem-pci,help" (the properties of
# the feature, docs/system/devices/virtio-mem.rst); nothing else differs
VIRTIO_MEM_ADDED = ["  dynamic-memslots=<bool>", "  equal-memslots=<bool>"]
# Files of ours that Debian's packages do not have: the series' docs page
ONLY_OURS = {"qemu-system-common": [
    "usr/share/doc/qemu-system-common/system/devices/virtio-mem.html"]}


def only_debian(package, version):
    """Files of Debian's that ours do not have: a binNMU's (+bN) changelog,
    since ours is built from the source version, not from the binNMU."""
    if re.search(r"\+b[0-9]+$", version):
        return [f"usr/share/doc/{package}/changelog.Debian.amd64.gz"]
    return []


def conf():
    """scripts/base.conf and deb.conf as a dict, as the scripts see them."""
    script = ('. scripts/base.conf; . scripts/deb.conf; '
              'for v in ${!BASE_*} ${!DEB_*}; do printf "%s=%s\\0" "$v" '
              '"${!v}"; done')
    out = subprocess.run(["bash", "-c", script], cwd=TOP, check=True,
                         capture_output=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if item)


def run(argv, env=None):
    return subprocess.run(argv, capture_output=True, text=True, check=True,
                          env=env).stdout


def ours(package):
    found = glob.glob(f"{DEBS}/{package}_*.deb")
    return found[0] if len(found) == 1 else None


def stock_version(cfg):
    """The installed stock qemu-system-x86's version, if it is built from
    the pinned source version (a binNMU such as +b3 is)."""
    version, source = run(["dpkg-query", "-W", "-f",
                           "${Version}\t${source:Version}",
                           "qemu-system-x86"]).split("\t")
    if source != cfg["BASE_VERSION"]:
        raise SystemExit(f"stock qemu-system-x86 {version} is built from "
                         f"{source}, not {cfg['BASE_VERSION']}")
    return version


def download_stock(packages, version):
    """Debian's .debs of the stock version in build/deb-stock."""
    def found(p):
        # apt-get download writes the epoch's colon as %3a
        return glob.glob(f"{STOCK}/{p}_*{version.split(':')[-1]}_*.deb")
    os.makedirs(STOCK, exist_ok=True)
    missing = [p for p in packages if not found(p)]
    if missing:
        subprocess.run(["apt-get", "download", "-qq",
                        "-o", "APT::Sandbox::User=root"] +
                       [f"{p}={version}" for p in missing],
                       cwd=STOCK, check=True)
    return {p: found(p)[0] for p in packages}


def fields(deb, version):
    """The control fields of deb, its own version written as VERSION."""
    out = {}
    for field in FIELDS:
        value = run(["dpkg-deb", "-f", deb, field]).strip()
        out[field] = " ".join(value.replace(version, "VERSION").split())
    return out


def extract(deb, dest):
    os.makedirs(dest, exist_ok=True)
    run(["dpkg-deb", "-x", deb, dest])
    return sorted(os.path.relpath(os.path.join(d, f), dest)
                  for d, _, files in os.walk(dest) for f in files)


def is_elf(path):
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def needed(path):
    return sorted(line.split("[", 1)[1].rstrip("]")
                  for line in run(["readelf", "-d", path]).splitlines()
                  if "(NEEDED)" in line)


def helps(root):
    """The outputs of qemu-system-x86_64 under root, with root's modules."""
    env = dict(os.environ, QEMU_MODULE_DIR=os.path.join(root, MODDIR))
    binary = os.path.join(root, "usr/bin/qemu-system-x86_64")
    out = {}
    for args in HELPS + [["-M", "none", "-device", "virtio-mem-pci,help"]]:
        out[" ".join(args)] = run([binary] + args, env=env)
    out["--version"] = run([binary, "--version"], env=env)
    return out


def compare_package(res, package, mine, theirs, mine_v, theirs_v, roots):
    f_mine, f_theirs = fields(mine, mine_v), fields(theirs, theirs_v)
    res.check(f_mine == f_theirs, f"{package}: control fields are Debian's",
              "\n    ".join(f"{k}: ours {f_mine[k]!r}, Debian {f_theirs[k]!r}"
                             for k in FIELDS if f_mine[k] != f_theirs[k]))
    files_mine = extract(mine, roots[0])
    files_theirs = extract(theirs, roots[1])
    only_mine = sorted(set(files_mine) - set(files_theirs))
    only_theirs = sorted(set(files_theirs) - set(files_mine))
    expected = (ONLY_OURS.get(package, []), only_debian(package, theirs_v))
    extra = (f"; ours adds {', '.join(expected[0])}" if expected[0] else "") + \
        (f"; Debian's binNMU has {', '.join(expected[1])}"
         if expected[1] else "")
    res.check((only_mine, only_theirs) == expected,
              f"{package}: the same {len(files_theirs)} files{extra}",
              f"only ours {only_mine[:20]}, only Debian's {only_theirs[:20]}")
    diffs = []
    elves = 0
    for rel in sorted(set(files_mine) & set(files_theirs)):
        a, b = os.path.join(roots[0], rel), os.path.join(roots[1], rel)
        if is_elf(b):
            elves += 1
            if needed(a) != needed(b):
                diffs.append(f"{rel}: ours {needed(a)}, Debian {needed(b)}")
    res.check(not diffs, f"{package}: its {elves} ELF files link the same "
              "shared libraries", "\n    ".join(diffs))


def compare_helps(res, roots, cfg):
    mine, theirs = helps(roots[0]), helps(roots[1])
    mods_mine = sorted(os.listdir(os.path.join(roots[0], MODDIR)))
    mods_theirs = sorted(os.listdir(os.path.join(roots[1], MODDIR)))
    res.check(mods_mine == mods_theirs,
              f"the same {len(mods_theirs)} modules",
              f"ours {mods_mine}\n    Debian {mods_theirs}")
    for args in HELPS:
        key = " ".join(args)
        res.check(mine[key] == theirs[key], f"qemu-system-x86_64 {key}: "
                  f"Debian's ({len(theirs[key].splitlines())} lines)",
                  "\n    ".join(set(mine[key].splitlines()) ^
                                set(theirs[key].splitlines())))
    key = "-M none -device virtio-mem-pci,help"
    added = sorted(set(mine[key].splitlines()) - set(theirs[key].splitlines()))
    gone = sorted(set(theirs[key].splitlines()) - set(mine[key].splitlines()))
    res.check([a.split(" - ")[0].rstrip() for a in added] ==
              VIRTIO_MEM_ADDED and not gone,
              "-device virtio-mem-pci,help: Debian's plus dynamic-memslots "
              "and equal-memslots", f"added {added}, gone {gone}")
    want = f"(Debian {cfg['DEB_VERSION']})"
    res.check(want in mine["--version"], f"--version says {want}",
              mine["--version"])


def compare_build(res, root):
    """make check's binary (build/qemu-build, scripts/build.sh) against the
    package's: the same shared libraries and, but for the accelerator the
    package leaves out (qtest) and the target it alone has (i386), the same
    modules: the binary we test is configured like the one we ship."""
    bd = os.path.join(TOP, "build", "qemu-build")
    binary = os.path.join(bd, "qemu-system-x86_64")
    if not os.path.exists(binary):
        res.skip("make check's binary is configured like the package's",
                 "no build/qemu-build/qemu-system-x86_64 (make qemu)")
        return
    packaged = os.path.join(root, "usr/bin/qemu-system-x86_64")
    mods_build = sorted(f for f in os.listdir(bd) if f.endswith(".so") and
                        not f.startswith("accel-qtest-"))
    mods_pkg = sorted(f for f in os.listdir(os.path.join(root, MODDIR))
                      if not f.endswith("-i386.so"))
    res.check(needed(binary) == needed(packaged) and mods_build == mods_pkg,
              "make check's binary links the package's shared libraries and "
              f"has its {len(mods_pkg)} x86_64 modules",
              f"NEEDED ours {needed(binary)}\n    package {needed(packaged)}"
              f"\n    modules {sorted(set(mods_build) ^ set(mods_pkg))}")


def main():
    need("dpkg-deb", "dpkg", "readelf", "binutils", "apt-get", "apt")
    cfg = conf()
    packages = cfg["DEB_PACKAGES"].split()
    res = Results("none (help output of the packaged binaries)")
    if not all(ours(p) for p in packages):
        for p in packages:
            res.skip(f"{p}: against Debian's", "no build/deb/*.deb: make deb "
                     "has not run in this checkout (it takes ~13 min cold, see "
                     "docs/packaging.md)")
        return res.finish()
    stale = subprocess.run([os.path.join(TOP, "scripts", "deb-inputs.sh"),
                            "--check"], capture_output=True, text=True,
                           check=False)
    if not res.check(stale.returncode == 0, "build/deb is built from the "
                     "current series and packaging", stale.stderr.strip()):
        return res.finish()
    version = stock_version(cfg)
    print(f"    ours {cfg['DEB_VERSION']}, Debian's {version} (the installed "
          "qemu-system-x86's version)")
    stock = download_stock(packages, version)
    with tempfile.TemporaryDirectory(prefix="vmem-deb-") as tmp:
        # one root per side holding all packages, as dpkg would install them
        roots = (os.path.join(tmp, "ours"), os.path.join(tmp, "debian"))
        for p in packages:
            per = (os.path.join(tmp, p, "ours"), os.path.join(tmp, p, "debian"))
            compare_package(res, p, ours(p), stock[p], cfg["DEB_VERSION"],
                            version, per)
            extract(ours(p), roots[0])
            extract(stock[p], roots[1])
        compare_helps(res, roots, cfg)
        compare_build(res, roots[0])
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
