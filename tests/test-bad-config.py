#!/usr/bin/env python3
"""Every row of the docs' table of invalid configurations, as a test.

Reads the table "Invalid configurations" of the series' virtio-mem docs
(docs/system/devices/virtio-mem.rst in the work tree) and runs each row:
- command line rows: QEMU must exit with status 1 and print the row's
  message, or, for rows saying "Accepted", start and report the device
  (with the number of memslots the row gives); an accepted device with
  dynamic memslots must also have the layout tests/lib/layout.py gives
  for the limit the trace event virtio_mem_decided_memslots shows
  (memslots, smallest and largest memslot);
- qom-set rows: QMP must return the row's message and the property must
  keep its value;
- vhost rows need a vhost-user backend: tests/test-vhost-memslots.py checks
  them; here the row's message must be one that test asserts.
So the docs cannot promise a message that QEMU does not print.

Rows of our own (EXTRA_ROWS, for configurations the table does not list
yet) run the same way; a refused one must also leave nothing behind: its
pidfile and its memory-backend-file's file in a directory of its own are
gone, and no process runs with that directory on its command line.
VMEM_DOC reads the table from another copy of the docs.
"""

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
# pylint: disable=wrong-import-position
import layout  # noqa: E402
from results import Results  # noqa: E402
from vmemguest import BUILD, QEMU, QEMUMachine  # noqa: E402

DOC = os.environ.get("VMEM_DOC") or \
    os.path.join(BUILD, "qemu", "docs", "system", "devices", "virtio-mem.rst")
VHOST_TEST = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "test-vhost-memslots.py")
BASE = ["-machine", "q35", "-accel", "tcg", "-nodefaults", "-display", "none",
        "-S"]
QOM_VM = ("-m 1G,maxmem=9G -object memory-backend-ram,id=mem0,size=8G,"
          "reserve=off -device virtio-mem-pci,id=vm0,memdev=mem0,"
          "dynamic-memslots=on")
LITERAL = re.compile(r"^``(.*)``$")
DECIDED_RE = re.compile(r"virtio_mem_decided_memslots limit=(\d+) "
                        r"nb_memslots=(\d+) layout=(\w+)")
# (configuration, result) as the table has them; WORKDIR is replaced by
# a directory of the row's own
EXTRA_ROWS = [
    ("``-m 1G,maxmem=9G -object memory-backend-file,id=mem0,size=8G,"
     "mem-path=WORKDIR -device virtio-mem-pci,memdev=mem0,"
     "dynamic-memslots=on,equal-memslots=maybe``",
     "``Parameter 'equal-memslots' expects 'on' or 'off'``"),
    ("``-m 1G,maxmem=9G -object memory-backend-file,id=mem0,size=8G,"
     "mem-path=WORKDIR -device virtio-mem-pci,memdev=mem0,"
     "equal-memslots=on``",
     "``'equal-memslots' property requires 'dynamic-memslots' to be 'on'``"),
    ("``-m 1G,maxmem=9G -object memory-backend-file,id=mem0,size=8G,"
     "mem-path=WORKDIR -device virtio-mem-pci,memdev=mem0,"
     "dynamic-memslots=off,equal-memslots=on``",
     "``'equal-memslots' property requires 'dynamic-memslots' to be 'on'``"),
    # 1 TiB: equal memslots (256 of 4 GiB) differ from growing ones (205)
    ("``-cpu qemu64,phys-bits=48 -m 1G,maxmem=1025G -object "
     "memory-backend-ram,id=mem0,size=1T,reserve=off -device "
     "virtio-mem-pci,memdev=mem0,dynamic-memslots=on,equal-memslots=on``",
     "Accepted: ``memslots`` 256"),
]


def table_rows():
    """[(configuration, result)] of the list-table after the heading."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    section = text.split("Invalid configurations\n", 1)[1]
    rows, cells = [], None
    for line in section.split("\n.. list-table::", 1)[1].splitlines()[1:]:
        if line.startswith("   * - "):
            cells = [line[7:]]
            rows.append(cells)
        elif line.startswith("     - ") and cells is not None:
            cells.append(line[7:])
        elif line.startswith("       ") and cells is not None:
            cells[-1] += " " + line.strip()
        elif line and not line.startswith(" "):
            break
    return [tuple(r) for r in rows[1:]]       # without the header row


def qmp_session(args, commands):
    """Run QEMU with QMP on stdio: (exit status, stderr, QMP replies)."""
    lines = [{"execute": "qmp_capabilities"}] + commands + \
        [{"execute": "quit"}]
    proc = subprocess.run([QEMU] + BASE + ["-qmp", "stdio", "-trace",
                                           "virtio_mem_decided_memslots"] +
                          args,
                          input="".join(json.dumps(c) + "\n" for c in lines),
                          capture_output=True, text=True, timeout=120,
                          check=False)
    replies = [json.loads(line) for line in proc.stdout.splitlines()
               if line.startswith("{") and '"event"' not in line]
    return proc.returncode, proc.stderr, replies[1:]


def left_behind(rowdir):
    """What a QEMU run with @rowdir in its arguments left: files in it,
    processes that still have it on their command line."""
    left = sorted(os.listdir(rowdir))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if rowdir.encode() in f.read():
                    left.append(f"process {pid}")
        except OSError:
            pass
    return left


def layout_problems(config, data, err):
    """An accepted device with dynamic memslots: its layout is the model's
    for the limit it was handed (the trace event says which)."""
    if "dynamic-memslots=on" not in config:
        return []
    decided = DECIDED_RE.findall(err)
    if len(decided) != 1:
        return [f"one virtio_mem_decided_memslots line expected: {decided}"]
    limit, name = int(decided[0][0]), decided[0][2]
    size = data["max-size"]
    equal = "equal-memslots=on" in config
    offsets = layout.layout(size, data["block-size"], limit, equal)
    sizes = [b - a for a, b in zip(offsets, offsets[1:])]
    want = (len(sizes), min(sizes), max(sizes),
            layout.layout_name(size, data["block-size"], limit, equal))
    got = (data.get("memslots"), data.get("min-memslot-size"),
           data.get("max-memslot-size"), name)
    if got != want:
        return [f"(memslots, smallest, largest, layout) {got} != the model's"
                f" {want} for limit {limit}"]
    return []


def command_line_row(res, config, result, workdir, own=False):
    rowdir = tempfile.mkdtemp(dir=workdir)
    args = shlex.split(config.replace("WORKDIR", rowdir))
    if own:
        args += ["-pidfile", os.path.join(rowdir, "qemu.pid")]
    rc, err, replies = qmp_session(args, [{"execute":
                                           "query-memory-devices"}])
    m = LITERAL.match(result)
    if m:
        left = left_behind(rowdir) if own else []
        res.check(rc == 1 and m.group(1) in err and not left,
                  f"refused{', nothing left behind' if own else ''}: "
                  f"{config}", f"exit {rc}, stderr: {err.strip()}, "
                  f"left behind: {left}")
        return
    devs = replies[1]["return"] if rc == 0 and len(replies) > 1 else []
    want = re.search(r"``memslots`` (\d+)", result)
    ok = rc == 0 and len(devs) == 1 and \
        (not want or devs[0]["data"].get("memslots") == int(want.group(1)))
    problems = layout_problems(config, devs[0]["data"], err) if ok else []
    res.check(ok and not problems, f"accepted: {config}",
              f"exit {rc}, {err.strip()} {devs} {problems}")


def qom_set_row(res, config, result, workdir):
    _, path, prop, value = config.split()
    value = json.loads(value)
    vm = QEMUMachine(QEMU, args=BASE + shlex.split(QOM_VM),
                     base_temp_dir=workdir, sock_dir=workdir)
    vm.launch()
    try:
        before = vm.qmp("qom-get", path=path, property=prop)
        r = vm.qmp("qom-set", path=path, property=prop, value=value)
        after = vm.qmp("qom-get", path=path, property=prop)
    finally:
        vm.shutdown()
    expected = LITERAL.match(result).group(1)
    res.check("error" in r and r["error"]["desc"] == expected and
              before == after,
              f"refused, nothing changed: {config}",
              f"{r}; {prop} before {before}, after {after}")


def vhost_strings():
    with open(VHOST_TEST, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def vhost_row(res, config, result, strings):
    """A refusal's message, or what an accepted row says happens
    ("Accepted; <what>" / "Accepted: <what>"), must be in the test."""
    m = LITERAL.match(result)
    expected = m.group(1) if m else re.sub(r"^Accepted[:;] *", "", result)
    def matches(s):
        """Contains it, or is a str.format() template that gives it."""
        if expected in s:
            return True
        if "{" not in s:
            return False
        pattern = re.sub(r"\\\{\w+\\\}", r"\\d+", re.escape(s))
        return re.search(pattern, expected) is not None

    res.check(any(matches(s) for s in strings),
              f"asserted by test-vhost-memslots: {config}",
              f"no check of {expected!r} in {VHOST_TEST}")


def main():
    res = Results()
    rows = table_rows()
    res.check(len(rows) >= 20, f"the docs list {len(rows)} configurations",
              DOC)
    strings = vhost_strings()
    with tempfile.TemporaryDirectory(prefix="vmem-badcfg-") as workdir:
        for config, result in rows:
            literal = LITERAL.match(config)
            if config.startswith("vhost:"):
                vhost_row(res, config, result, strings)
            elif literal and literal.group(1).startswith("qom-set "):
                qom_set_row(res, literal.group(1), result, workdir)
            elif literal:
                command_line_row(res, literal.group(1), result, workdir)
            else:
                res.check(False, f"a row the test understands: {config}")
        for config, result in EXTRA_ROWS:
            if (config, result) not in rows:
                command_line_row(res, LITERAL.match(config).group(1), result,
                                 workdir, own=True)
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
