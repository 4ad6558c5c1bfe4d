#!/usr/bin/env python3
"""libvirt drives our QEMU: dynamic memslots from domain XML, resized by virsh.

For libvirt 11.3 (bookworm-backports, knows <target dynamicMemslots='yes'>)
and Debian 12's libvirt 9.0 (does not; tests/libvirt/vmem-override.xml sets
the property with <qemu:override>), see scripts/libvirt.sh:
- start a private session daemon (as user nobody, all state in a temporary
  folder; 9.0 in a mount namespace that shows it its own data files);
  what it runs is staged in that folder (our QEMU installed with
  scripts/install.sh, the guest's kernel and initramfs, libvirt 9.0's
  files): user nobody cannot reach a repository under /root;
- define and start the domain of tests/libvirt/ with our QEMU as emulator,
  booting the real test guest under TCG with a 64 GiB virtio-mem device;
- check through virsh qemu-monitor-command that QEMU got
  dynamic-memslots=on, resize with virsh update-memory-device up and down,
  wait (deadline) for the device and the guest to follow, and check that
  info mtree maps exactly what the mode's rule says: libvirt does not set
  unplugged-inaccessible, so "auto" resolves to "off" (anonymous memory,
  as in QEMU 7.2: legacy mode), and the memslots holding the guest's
  memory plus those overlapping the usable region (the largest requested
  size so far plus 256 MiB) are mapped;
- vmem-dynamic.xml binds the guest's memory to host node 0
  (<numatune>): the device's backend has policy "bind" on host node 0;
- destroy and undefine; the daemon stops, nothing is left.

VMEM_LIBVIRT_INSTALLED=1 (tests/deb/install-test.sh, on a system where
make deb's packages are installed): libvirt 11.3 alone, on its default
emulator (the XML's <emulator> is dropped), which must be our
/usr/bin/qemu-system-x86_64.
Skips (exit 77) when the libvirt packages cannot be installed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
from need import need  # noqa: E402
from results import Results  # noqa: E402
from vmemguest import (BUILD, GUEST_RE, INITRD, KERNEL,  # noqa: E402
                       TOP, GiB, KiB, covered_memslots, guest_fatal,
                       mapped_memslots)

OLD = os.path.join(BUILD, "libvirt-9.0", "root")
XML_DIR = os.path.join(TOP, "tests", "libvirt")
ALIAS = "ua-vmem0"
TIMEOUT = 90
INSTALLED = os.environ.get("VMEM_LIBVIRT_INSTALLED") == "1"
DEFAULT_EMULATOR = "/usr/bin/qemu-system-x86_64"


class Libvirt:
    """One libvirt version: a private session daemon and virsh for it."""

    def __init__(self, version, workdir):
        self.version = version
        self.dir = workdir
        self.env = {"HOME": f"{workdir}/home",
                    "XDG_RUNTIME_DIR": f"{workdir}/run",
                    "XDG_CONFIG_HOME": f"{workdir}/config",
                    "XDG_CACHE_HOME": f"{workdir}/cache",
                    "PATH": "/usr/bin:/bin"}
        self.prefix = ""
        stage(workdir)
        if version == "9.0":
            self.prefix = f"{workdir}/libvirt-9.0"
            shutil.copytree(OLD, self.prefix, symlinks=True)
            self.env["LD_LIBRARY_PATH"] = \
                f"{self.prefix}/usr/lib/x86_64-linux-gnu"
            self.env["LIBVIRT_DRIVER_DIR"] = (
                f"{self.prefix}/usr/lib/x86_64-linux-gnu/libvirt/"
                "connection-driver")
        for d in ("home", "run", "config/libvirt", "cache"):
            os.makedirs(f"{workdir}/{d}")
        # QEMU's stdout and stderr to a file: no virtlogd needed
        with open(f"{workdir}/config/libvirt/qemu.conf", "w",
                  encoding="ascii") as f:
            f.write('stdio_handler = "file"\n')
        subprocess.run(["chown", "-R", "nobody:nogroup", workdir], check=True)
        os.chmod(f"{workdir}/run", 0o700)
        self.daemon = None

    def _as_nobody(self, argv):
        env = [f"{k}={v}" for k, v in self.env.items()]
        return ["setpriv", "--reuid=nobody", "--regid=nogroup",
                "--clear-groups", "env", "-i"] + env + argv

    def start_daemon(self):
        argv = self._as_nobody([f"{self.prefix}/usr/sbin/libvirtd",
                                "--timeout=0"])
        if self.version == "9.0":
            # libvirt 9.0 reads its CPU models from /usr/share/libvirt,
            # where 11.3's are installed: show it its own, to it alone
            argv = ["unshare", "--mount", "--propagation", "private", "sh",
                    "-c", f'mount --bind {self.prefix}/usr/share/libvirt '
                          f'/usr/share/libvirt && exec "$@"', "sh"] + argv
        log = open(f"{self.dir}/libvirtd.log", "w", encoding="utf-8")
        self.daemon = subprocess.Popen(argv, stdout=log,
                                       stderr=subprocess.STDOUT)
        sock = f"{self.dir}/run/libvirt/libvirt-sock"
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                with open(f"{self.dir}/libvirtd.log", encoding="utf-8",
                          errors="replace") as f:
                    tail = f.read()[-1500:]
                raise RuntimeError(f"libvirtd {self.version} did not start:"
                                   f"\n{tail}")
            time.sleep(0.05)

    def stop_daemon(self):
        if self.daemon:
            self.daemon.terminate()
            self.daemon.wait(timeout=30)

    def virsh(self, *args, check=True):
        r = subprocess.run(self._as_nobody(
            [f"{self.prefix}/usr/bin/virsh", "-c", "qemu:///session"] +
            list(args)), capture_output=True, text=True, timeout=120,
            check=False)
        if check and r.returncode:
            raise RuntimeError(f"virsh {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def qmp(self, domain, cmd, **args):
        out = self.virsh("qemu-monitor-command", domain,
                         json.dumps({"execute": cmd, "arguments": args}))
        return json.loads(out)["return"]


def stage(workdir):
    """Our QEMU, installed as a user would (scripts/install.sh; not when
    INSTALLED: the system's is ours), and the test guest, where the
    daemon's user can read them."""
    if not INSTALLED:
        subprocess.run([os.path.join(TOP, "scripts", "install.sh"),
                        f"{workdir}/qemu"], check=True,
                       stdout=subprocess.DEVNULL)
    os.makedirs(f"{workdir}/guest")
    for f in (KERNEL, INITRD):
        shutil.copy(f, f"{workdir}/guest/")


def domain_xml(name, workdir):
    """The example XML with the paths staged in workdir."""
    with open(os.path.join(XML_DIR, f"{name}.xml"), encoding="utf-8") as f:
        xml = f.read()
    if INSTALLED:
        # libvirt's default emulator for the domain type and architecture
        xml = re.sub(r"\n *<emulator>[^<]*</emulator>", "", xml)
    else:
        xml = xml.replace("/usr/local/bin/qemu-system-x86_64",
                          f"{workdir}/qemu/bin/qemu-system-x86_64")
    xml = xml.replace("/var/lib/vmem-guest/vmlinuz",
                      f"{workdir}/guest/{os.path.basename(KERNEL)}")
    xml = xml.replace("/var/lib/vmem-guest/initrd.img",
                      f"{workdir}/guest/{os.path.basename(INITRD)}")
    xml = xml.replace(f"/var/log/{name}-serial.log", f"{workdir}/serial.log")
    path = os.path.join(workdir, f"{name}.xml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(xml)
    os.chmod(path, 0o644)
    return path


class Domain:
    def __init__(self, lv, name, workdir):
        self.lv, self.name, self.dir = lv, name, workdir

    def serial(self):
        try:
            with open(f"{self.dir}/serial.log", encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def guest_report(self):
        reports = GUEST_RE.findall(self.serial())
        if not reports:
            return None
        memtotal, ranges = reports[-1]
        spans = [tuple(int(x, 16) + i for i, x in enumerate(r.split("-")))
                 for r in ranges.split()]
        return int(memtotal) * KiB, spans

    def wait(self, cond, what):
        deadline = time.monotonic() + TIMEOUT
        while not cond():
            fatal = guest_fatal(self.serial())
            if fatal:
                raise RuntimeError(f"the guest failed: {fatal}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def size(self):
        return self.lv.qmp(self.name, "qom-get", path=ALIAS, property="size")

    def mapped_memslots(self):
        return set(mapped_memslots(self.lv.qmp(
            self.name, "human-monitor-command",
            **{"command-line": "info mtree"})))


def exercise(res, lv, xml_name, workdir):
    v = lv.version
    name = xml_name
    lv.virsh("define", domain_xml(xml_name, workdir))
    dom = Domain(lv, name, workdir)
    try:
        lv.virsh("start", name)
        res.check(lv.qmp(name, "qom-get", path=ALIAS,
                         property="dynamic-memslots") is True,
                  f"libvirt {v}: QEMU got dynamic-memslots=on from {xml_name}.xml")
        emulator = re.search(r"<emulator>([^<]*)</emulator>",
                             lv.virsh("dumpxml", name)).group(1)
        if INSTALLED:
            res.check(emulator == DEFAULT_EMULATOR,
                      f"libvirt {v}: the default emulator runs it "
                      f"({emulator})", f"emulator {emulator}")
        if "<numatune>" in open(os.path.join(XML_DIR, f"{xml_name}.xml"),
                                encoding="utf-8").read():
            backend = f"/objects/mem{ALIAS}"
            policy = (lv.qmp(name, "qom-get", path=backend,
                             property="policy"),
                      lv.qmp(name, "qom-get", path=backend,
                             property="host-nodes"))
            res.check(policy == ("bind", [0]),
                      f"libvirt {v}: <numatune> binds the device's memory to "
                      "host node 0", f"policy, host-nodes: {policy}")
        dom.wait(lambda: dom.guest_report() is not None, "the guest to boot")
        base = dom.guest_report()[0]
        info = [d["data"] for d in lv.qmp(name, "query-memory-devices")][0]
        offsets = [0]
        for idx in range(info["memslots"]):
            offsets.append(offsets[-1] + lv.qmp(
                name, "qom-get", property="size",
                path=f"{ALIAS}/virtio-backend/memslot-{idx}[0]"))
        legacy = lv.qmp(name, "qom-get", path=ALIAS,
                        property="unplugged-inaccessible") == "off"
        res.check(legacy, f"libvirt {v}: unplugged-inaccessible resolves to "
                  "off (auto, anonymous memory): legacy mode")
        usable = 0
        for target in (4 * GiB, 1 * GiB):
            t0 = time.monotonic()
            lv.virsh("update-memory-device", name, "--alias", ALIAS,
                     "--requested-size", f"{target // KiB}KiB")
            dom.wait(lambda t=target: dom.size() == t and
                     dom.guest_report()[0] - base == t,
                     f"the guest to reach {target // GiB} GiB")
            spans = dom.guest_report()[1]
            want = covered_memslots(spans, info["memaddr"], offsets)
            usable = max(usable, min(info["max-size"], target + (256 << 20)))
            if legacy:
                want |= {i for i in range(len(offsets) - 1)
                         if offsets[i] < usable}
            got = dom.mapped_memslots()
            res.check(got == want and
                      sum(e - s for s, e in spans) == target,
                      f"libvirt {v}: virsh update-memory-device to "
                      f"{target // GiB} GiB: the guest followed in "
                      f"{time.monotonic() - t0:.1f} s, info mtree maps "
                      f"memslots {sorted(got)}",
                      f"mapped {sorted(got)}, the guest's memory is in "
                      f"{sorted(want)}")
    finally:
        lv.virsh("destroy", name, check=False)
        lv.virsh("undefine", name, check=False)
    res.check(lv.virsh("list", "--all", "--name").strip() == "",
              f"libvirt {v}: destroy and undefine leave no domain")


def main():
    need("pgrep", "procps", "setpriv", "util-linux", "unshare", "util-linux")
    res = Results()
    setup = subprocess.run([os.path.join(TOP, "scripts", "libvirt.sh")],
                           capture_output=True, text=True, check=False)
    if setup.returncode:
        print(f"libvirt cannot be installed here: {setup.stderr.strip()}")
        return 77
    print(setup.stdout.strip())
    versions = [("11.3", "vmem-dynamic")]
    if not INSTALLED:
        versions.append(("9.0", "vmem-override"))
    for version, xml_name in versions:
        workdir = tempfile.mkdtemp(prefix=f"vmem-libvirt-{version}-")
        os.chmod(workdir, 0o755)
        lv = Libvirt(version, workdir)
        try:
            lv.start_daemon()
            if version == "9.0":
                # what 9.0 makes of the attribute it does not know
                lv.virsh("define", domain_xml("vmem-dynamic", workdir))
                kept = "dynamicMemslots" in lv.virsh("dumpxml",
                                                     "vmem-dynamic")
                lv.virsh("undefine", "vmem-dynamic")
                res.check(not kept, "libvirt 9.0 drops dynamicMemslots: "
                          "qemu:override is the way there")
            exercise(res, lv, xml_name, workdir)
        except Exception as e:  # pylint: disable=broad-except
            res.check(False, f"libvirt {version}", f"{e}")
        finally:
            lv.stop_daemon()
            left = subprocess.run(["pgrep", "-u", "nobody", "-f",
                                   f"{workdir}|libvirtd"],
                                  capture_output=True, text=True,
                                  check=False).stdout.split()
            res.check(not left, f"libvirt {version}: the daemon and QEMU "
                      "are gone", f"processes left: {left}")
            shutil.rmtree(workdir, ignore_errors=True)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
