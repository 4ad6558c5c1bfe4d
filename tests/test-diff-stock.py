#!/usr/bin/env python3
"""dynamic-memslots=off is QEMU 7.2: ours against Debian's own binary.

Runs every scenario of tests/diff-stock/scenarios.py on Debian's
qemu-system-x86_64 7.2 (package qemu-system-x86, "stock") and on ours
(build/qemu-build, or $VMEM_QEMU) with the property absent and, when the
scenario has a virtio-mem-pci device, with dynamic-memslots=off on every
one of them. Exit status, stderr and every QMP answer (and event) must be
the same, except the differences the scenario lists, each in exactly the
listed form. Then checks that the docs' list of differences from 7.2 is
the one the table generates: the section after ".. differences-from-7.2"
in build/qemu/docs/system/devices/virtio-mem.rst if there is one, else
tests/diff-stock/differences.rst (always checked; --write-rst rewrites it).

Prints one PASS/FAIL line per scenario (with the differences on failure),
the duration and "N passed, N failed". Fails at once if the stock binary
is missing or is not Debian's (tests/lib/stockqemu.py). Environment: VMEM_QEMU (ours), VMEM_STOCK_QEMU (stock, default
/usr/bin/qemu-system-x86_64), VMEM_DIFF_WAIT (seconds to wait for our
binary to be built, default 1800), VMEM_DOC (another copy of the docs,
e.g. one whose list is being updated).
"""

import concurrent.futures
import copy
import difflib
import importlib.util
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "diff-stock"))
# pylint: disable=wrong-import-position
from results import Results  # noqa: E402
from stockqemu import STOCK, qemu_version, stock_problem  # noqa: E402
from vhost_user_stub import VhostUserStub  # noqa: E402
import scenarios  # noqa: E402

BUILD = os.path.join(os.path.dirname(HERE), "build")
OURS = os.path.abspath(os.environ.get("VMEM_QEMU") or
                       os.path.join(BUILD, "qemu-build",
                                    "qemu-system-x86_64"))
WAIT = float(os.environ.get("VMEM_DIFF_WAIT", "1800"))
RST = os.path.join(HERE, "diff-stock", "differences.rst")
DOC = os.environ.get("VMEM_DOC") or \
    os.path.join(BUILD, "qemu", "docs", "system", "devices", "virtio-mem.rst")
MARKER = ".. differences-from-7.2"
BASE = ["-accel", "tcg", "-S", "-nodefaults", "-display", "none",
        "-qmp", "stdio"]
TIMEOUT = 60          # seconds for one answer, and for QEMU to exit
MISSING = "<missing>"


# -- one run of QEMU -------------------------------------------------------
def substitute(value, subst):
    """Placeholders ({tmp}, {vu1}...) replaced in strings of value."""
    if isinstance(value, str):
        for key, repl in subst.items():
            value = value.replace(key, repl)
        return value
    if isinstance(value, list):
        return [substitute(v, subst) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, subst) for k, v in value.items()}
    return value


def has_virtio_mem(scenario):
    return "virtio-mem-pci" in scenario["args"] or any(
        c["arguments"].get("driver") == "virtio-mem-pci"
        for c in scenario["qmp"])


def with_property_off(args, commands):
    """dynamic-memslots=off on every virtio-mem-pci device."""
    args = [a + ",dynamic-memslots=off"
            if i and args[i - 1] == "-device" and
            a.split(",")[0] == "virtio-mem-pci" else a
            for i, a in enumerate(args)]
    commands = copy.deepcopy(commands)
    for c in commands:
        if c["arguments"].get("driver") == "virtio-mem-pci":
            c["arguments"]["dynamic-memslots"] = False
    return args, commands


def normalise(value, workdir):
    """What must differ legitimately between two runs: the run's temporary
    directory (memory backend files, vhost-user sockets) becomes TMP."""
    if isinstance(value, str):
        return value.replace(workdir, "TMP")
    if isinstance(value, list):
        return [normalise(v, workdir) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v, workdir) for k, v in value.items()}
    return value


def matches(pattern, value):
    """value has everything pattern has (lists: every pattern item matches
    some item of value)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches(v, value[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(
            any(matches(p, v) for v in value) for p in pattern)
    return pattern == value


def get_path(value, path):
    """The part of value at path (keys, indexes, or a dict pattern selecting
    the one list element it matches); MISSING if there is none."""
    for step in path:
        if isinstance(step, dict):
            found = [v for v in value if matches(step, v)] \
                if isinstance(value, list) else []
            if len(found) != 1:
                return MISSING
            value = found[0]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and \
                -len(value) <= step < len(value):
            value = value[step]
        else:
            return MISSING
    return value


def answer(reply, command, workdir):
    """A QMP reply as compared: without its id, HMP output as lines
    ("\\r\\n" is HMP's line end), only the selected part, lists the
    command marks unordered sorted (their order is a hash table's)."""
    if reply is None or not isinstance(reply, dict):
        return reply
    reply = {k: v for k, v in reply.items() if k != "id"}
    if "return" in reply:
        ret = reply["return"]
        if command["execute"] == "human-monitor-command" and \
                isinstance(ret, str):
            ret = ret.replace("\r\n", "\n").split("\n")
            line = command["arguments"]["command-line"].split()
            reply["return"] = mtree_blocks(ret) \
                if line[:2] == ["info", "mtree"] else ret
        if "select" in command:
            reply = get_path(reply, command["select"])
        if command.get("unordered") and isinstance(get_path(
                reply, ["return"]), list):
            reply["return"] = sorted(reply["return"], key=lambda v:
                                     json.dumps(v, sort_keys=True))
    return normalise(reply, workdir)


def mtree_blocks(lines):
    """info mtree [-f] as a sorted list of blocks of lines. QEMU prints
    the address spaces (grouped by root region), flat views and aliased
    regions in the order of a hash table keyed by pointers, so the order
    differs between two binaries (and flat views are numbered in that
    order): "FlatView #N" loses its number, and a block is a run of
    unindented header lines with the indented lines that follow."""
    blocks = []
    for line in lines:
        if not line:
            continue
        if line.startswith("FlatView #"):
            line = "FlatView"
        if not line.startswith(" ") and (
                not blocks or any(x.startswith(" ") for x in blocks[-1])):
            blocks.append([])
        blocks[-1].append(line)
    return sorted(blocks)


def label(command):
    args = {k: v for k, v in command["arguments"].items()}
    if command["execute"] == "human-monitor-command":
        return f"HMP {args['command-line']}"
    return f"{command['execute']} {json.dumps(args, sort_keys=True)}"


class Session:
    """QEMU with QMP on its stdin/stdout; stderr goes to a file."""

    def __init__(self, binary, args, workdir):
        self.err_path = os.path.join(workdir, "stderr")
        with open(self.err_path, "w", encoding="utf-8") as err:
            # pylint: disable=consider-using-with
            self.proc = subprocess.Popen([binary] + BASE + args,
                                         stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE,
                                         stderr=err, text=True,
                                         cwd=workdir)
        self.lines = queue.Queue()
        self.events = []
        self.dead = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _next(self):
        """The next QMP message (events are kept aside); None at the end."""
        while not self.dead:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                self.dead = True
                return {"timeout": f"no answer in {TIMEOUT} s"}
            if line is None:
                self.dead = True
                return None
            try:
                msg = json.loads(line)
            except ValueError:
                return {"not-json": line.rstrip("\n")}
            if "event" in msg:
                # when it happened differs between any two runs
                msg.pop("timestamp", None)
                self.events.append(msg)
                continue
            return msg
        return None

    def execute(self, execute, arguments, cid):
        if self.dead:
            return None
        try:
            self.proc.stdin.write(json.dumps({"execute": execute,
                                              "arguments": arguments,
                                              "id": cid}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            self.dead = True
            return None
        msg = self._next()
        while msg is not None and "id" in msg and msg["id"] != cid:
            msg = self._next()
        return msg

    def finish(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = f"did not exit in {TIMEOUT} s"
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            err = f.read()
        return rc, err


def run(binary, scenario, off):
    """One run: {"exit", "stderr", "qmp": [answer per command + quit],
    "events"}, normalised."""
    with tempfile.TemporaryDirectory(prefix="vmem-diff-") as workdir:
        subst = {"{tmp}": workdir}
        stubs = []
        for name, spec in scenario["vhost"].items():
            path = os.path.join(workdir, f"{name}.sock")
            # a number of memslots, or the stub's keyword arguments
            opts = spec if isinstance(spec, dict) else {"memslots": spec}
            stubs.append(VhostUserStub(path, **opts))
            subst["{" + name + "}"] = path
        args = shlex.split(substitute(scenario["args"], subst))
        commands = substitute(scenario["qmp"], subst)
        if off:
            args, commands = with_property_off(args, commands)
        commands = commands + [{"execute": "quit", "arguments": {}}]
        try:
            s = Session(binary, args, workdir)
            greeting = s._next()       # pylint: disable=protected-access
            # the greeting carries the version, which differs: not compared
            if greeting is not None and "QMP" in greeting:
                s.execute("qmp_capabilities", {}, "capabilities")
            replies = [s.execute(c["execute"], c["arguments"], i)
                       for i, c in enumerate(commands)]
            rc, err = s.finish()
        finally:
            for stub in stubs:
                stub.close()
        if isinstance(rc, int) and rc < 0:
            rc = f"killed by {signal.Signals(-rc).name}"
        # messages start with the program's name, which is ours or stock's
        prefix = re.compile(r"^(%s|%s): " % (re.escape(binary), re.escape(
            os.path.basename(binary))), re.M)
        err = prefix.sub("QEMU: ", err)
        if off:
            # messages quote the option, with the property we added
            err = err.replace(",dynamic-memslots=off", "")
        return {
            "exit": rc,
            "stderr": normalise(err, workdir).splitlines(),
            "qmp": [answer(r, c, workdir) for r, c in zip(replies, commands)],
            "events": normalise(s.events, workdir),
        }


# -- comparison -------------------------------------------------------------
def where(scenario, at):
    if isinstance(at, int):
        return f"QMP answer {at} ({label(scenario['qmp'][at])})"
    return at


def locate(outcome, diff):
    at = diff["at"]
    base = outcome["qmp"][at] if isinstance(at, int) and \
        at < len(outcome["qmp"]) else outcome.get(at, MISSING) \
        if isinstance(at, str) else MISSING
    return get_path(base, diff["path"]) if base is not MISSING else MISSING


def set_at(outcome, diff, value):
    at = diff["at"]
    if not diff["path"]:
        if isinstance(at, int):
            outcome["qmp"][at] = value
        else:
            outcome[at] = value
        return
    parent = locate(outcome, dict(diff, path=diff["path"][:-1]))
    step = diff["path"][-1]
    if isinstance(step, dict):
        parent[parent.index(get_path(parent, [step]))] = value
    else:
        parent[step] = value


def show(value):
    return json.dumps(value, sort_keys=True)


def compare(scenario, stock, ours):
    """Problems (strings) of ours against stock, after the listed
    differences were checked and taken out."""
    problems = []
    ours = copy.deepcopy(ours)
    for d in scenario["differences"]:
        s_val, o_val = locate(stock, d), locate(ours, d)
        place = f"{where(scenario, d['at'])} at {show(d['path'])}"
        if "added" in d:
            if isinstance(s_val, list) and isinstance(o_val, list) and \
                    d["added"] not in s_val and \
                    o_val.count(d["added"]) == d["count"]:
                for _ in range(d["count"]):
                    o_val.remove(d["added"])
            else:
                problems.append(
                    f"listed difference '{d['reason']}' not as listed: "
                    f"{place} should have {show(d['added'])} "
                    f"{d['count']} time(s) more on ours than on stock "
                    f"(stock has it {count(s_val, d['added'])} times, ours "
                    f"{count(o_val, d['added'])})")
        elif s_val == d["stock"] and o_val == d["ours"]:
            set_at(ours, d, copy.deepcopy(s_val))
        else:
            problems.append(
                f"listed difference '{d['reason']}' not as listed: {place}"
                f"\n  listed: stock {show(d['stock'])}\n          ours  "
                f"{show(d['ours'])}\n  seen:   stock {show(s_val)}\n"
                f"          ours  {show(o_val)}")
    channels = [("exit status", "exit"), ("stderr", "stderr"),
                ("QMP events", "events")]
    for name, key in channels[:2]:
        if stock[key] != ours[key]:
            problems.append(unified(name, stock[key], ours[key]))
    for i, (s_ans, o_ans) in enumerate(zip(stock["qmp"], ours["qmp"])):
        if s_ans != o_ans:
            what = where(scenario, i) if i < len(scenario["qmp"]) \
                else "QMP answer to quit"
            problems.append(unified(what, s_ans, o_ans))
    if stock["events"] != ours["events"]:
        problems.append(unified("QMP events", stock["events"],
                                ours["events"]))
    return problems


def count(value, item):
    return value.count(item) if isinstance(value, list) else MISSING


def unified(what, stock, ours):
    a = json.dumps(stock, indent=1, sort_keys=True).splitlines()
    b = json.dumps(ours, indent=1, sort_keys=True).splitlines()
    diff = difflib.unified_diff(a, b, "stock 7.2", "ours", n=2, lineterm="")
    return f"{what} differs:\n" + "\n".join(diff)


# -- the docs' list -----------------------------------------------------------
def rst_items():
    return [" ".join(t.split()) for t in scenarios.DIFFERENCES.values()]


def rst_text():
    items = [textwrap.fill(t, 76, initial_indent="* ",
                           subsequent_indent="  ", break_on_hyphens=False,
                           break_long_words=False) for t in rst_items()]
    return MARKER + "\n\n" + "\n".join(items) + "\n"


def parse_rst_list(text):
    """The bullet items after the marker, whitespace-normalised; None if
    there is no marker."""
    lines = text.splitlines()
    if MARKER not in [line.rstrip() for line in lines]:
        return None
    start = [line.rstrip() for line in lines].index(MARKER) + 1
    items = []
    for line in lines[start:]:
        if line.startswith("* "):
            items.append(line[2:])
        elif line.startswith("  ") and items:
            items[-1] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return [" ".join(i.split()) for i in items]


def check_docs(res, path):
    with open(path, encoding="utf-8") as f:
        items = parse_rst_list(f.read())
    want = rst_items()
    ok = items == want
    detail = "regenerate with tests/test-diff-stock.py --write-rst and " \
        "paste it\n" + "\n".join(difflib.unified_diff(
            items or [], want, path, "scenario table", lineterm=""))
    res.check(ok, f"the list of differences in {os.path.relpath(path)} is "
              "the scenario table's", detail)


def device_tokens(config):
    """A command line compared with a docs row: without -M q35 (the docs
    rows leave it out), the devices' ids and dynamic-memslots=on."""
    tokens = shlex.split(config)
    if tokens[:2] == ["-M", "q35"]:
        tokens = tokens[2:]
    return [",".join(o for o in t.split(",") if not o.startswith("id=") and
                     o != "dynamic-memslots=on") for t in tokens]


def check_docs_table(res):
    """Every command line and qom-set row of the docs' table of invalid
    configurations (as tests/test-bad-config.py reads it) is a scenario,
    with dynamic-memslots off; its vhost rows are the vhost-user
    scenarios, written by hand."""
    if not os.path.exists(DOC):
        print(f"# no {DOC}: its table of invalid configurations not "
              "compared with the scenarios")
        return
    spec = importlib.util.spec_from_file_location(
        "bad_config", os.path.join(HERE, "test-bad-config.py"))
    bad_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bad_config)
    lines = [device_tokens(sc["args"]) for sc in scenarios.SCENARIOS]
    qom_sets = [(c["arguments"]["path"], c["arguments"]["property"],
                 c["arguments"]["value"]) for sc in scenarios.SCENARIOS
                for c in sc["qmp"] if c["execute"] == "qom-set"]
    missing, rows = [], bad_config.table_rows()
    for config, _ in rows:
        m = bad_config.LITERAL.match(config)
        if not m:
            continue
        if m.group(1).startswith("qom-set "):
            _, path, prop, value = m.group(1).split()
            if (path, prop, json.loads(value)) not in qom_sets:
                missing.append(m.group(1))
        elif device_tokens(m.group(1)) not in lines:
            missing.append(m.group(1))
    res.check(not missing, f"the {len(rows)} rows of the docs' invalid "
              "configurations are scenarios (vhost rows by hand)",
              "not in the table:\n" + "\n".join(missing))


def check_table(res):
    """Every listed difference names a reason, every reason is seen, and
    the reason's text quotes the message ours gives."""
    problems = []
    used = set()
    for sc in scenarios.SCENARIOS:
        for d in sc["differences"]:
            used.add(d["reason"])
            text = " ".join(scenarios.DIFFERENCES.get(d["reason"],
                                                      "").split())
            if d["reason"] not in scenarios.DIFFERENCES:
                problems.append(f"{sc['name']}: unknown reason "
                                f"{d['reason']}")
            elif isinstance(d.get("ours"), str):
                tails = d["ours"].split(": ")
                if not any(": ".join(tails[k:]) in text
                           for k in range(len(tails))):
                    problems.append(f"{sc['name']}: the text of "
                                    f"'{d['reason']}' does not quote "
                                    f"{d['ours']!r}")
    problems += [f"reason '{r}' is not seen in any scenario"
                 for r in scenarios.DIFFERENCES if r not in used]
    names = [sc["name"] for sc in scenarios.SCENARIOS]
    problems += [f"two scenarios named {n!r}" for n in set(names)
                 if names.count(n) > 1]
    res.check(not problems, f"the scenario table is consistent "
              f"({len(scenarios.SCENARIOS)} scenarios, "
              f"{len(scenarios.DIFFERENCES)} reasons for differences)",
              "\n".join(problems))


# -- main -------------------------------------------------------------------
def wait_for_ours(deadline):
    """Our binary's version, once it exists and runs (it may be being
    built); None at the deadline."""
    said = False
    while True:
        v = os.access(OURS, os.X_OK) and qemu_version(OURS)
        if v:
            return v
        if time.monotonic() > deadline:
            return None
        if not said:
            print(f"# waiting up to {WAIT:.0f} s for {OURS}")
            sys.stdout.flush()
            said = True
        time.sleep(2)


def indent(text):
    return textwrap.indent(text, "    ").lstrip()


def snapshot(snap):
    """(copy of our binary, its build time, its version): the lead may
    rebuild ours while the test runs; every run uses the same binary. The
    copy finds its firmware through a link to the build's qemu-bundle, as
    the original does."""
    deadline = time.monotonic() + WAIT
    while True:
        if wait_for_ours(deadline):
            copy_path = os.path.join(snap, os.path.basename(OURS))
            try:
                built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(
                    os.stat(OURS).st_mtime))
                shutil.copy2(OURS, copy_path)
                bundle = os.path.join(os.path.dirname(OURS), "qemu-bundle")
                if os.path.isdir(bundle) and not os.path.lexists(
                        os.path.join(snap, "qemu-bundle")):
                    os.symlink(bundle, os.path.join(snap, "qemu-bundle"))
            except OSError:
                time.sleep(2)
                continue
            v = qemu_version(copy_path)
            if v:
                return copy_path, built, v
        if time.monotonic() > deadline:
            return None


def check_bugs(res, sc, stock, ours):
    """The scenario's fixed bugs, put back into ours' answers, must make it
    fail: no listed difference may accept them."""
    buggy = copy.deepcopy(ours)
    for b in sc["bugs"]:
        set_at(buggy, b, b["value"])
    res.check(bool(compare(sc, stock, buggy)), f"{sc['name']}: its fixed "
              "bug would fail", "the listed differences accept "
              f"{show(sc['bugs'])}")


def compare_all(res, ours):
    check_table(res)
    check_docs_table(res)

    runs = []
    for sc in scenarios.SCENARIOS:
        runs += [(sc, STOCK, False), (sc, ours, False)]
        if has_virtio_mem(sc):
            runs.append((sc, ours, True))
    # two at a time (2 cores shared), the slow ones first
    runs.sort(key=lambda r: not r[0]["slow"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(id(sc), binary, off): pool.submit(run, binary, sc, off)
                   for sc, binary, off in runs}
        for sc in scenarios.SCENARIOS:
            stock = futures[(id(sc), STOCK, False)].result()
            problems = []
            for off in (False, True):
                f = futures.get((id(sc), ours, off))
                if f is None:
                    continue
                variant = "dynamic-memslots=off" if off else \
                    "dynamic-memslots absent"
                problems += [f"[ours, {variant}] {p}"
                             for p in compare(sc, stock, f.result())]
            if problems and sc["why"]:
                problems.insert(0, f"({sc['why']})")
            res.check(not problems, sc["name"], indent("\n".join(problems)))
            if sc["bugs"]:
                check_bugs(res, sc, stock,
                           futures[(id(sc), ours, False)].result())

    if os.path.exists(DOC):
        with open(DOC, encoding="utf-8") as f:
            in_docs = parse_rst_list(f.read()) is not None
    else:
        in_docs = False
    print(f"# docs list of differences: "
          f"{DOC if in_docs else RST + ' (no ' + MARKER + ' in ' + DOC + ')'}")
    if in_docs:
        check_docs(res, DOC)
    check_docs(res, RST)



def main():
    if sys.argv[1:] == ["--write-rst"]:
        with open(RST, "w", encoding="utf-8") as f:
            f.write(rst_text())
        print(f"wrote {RST}")
        return 0
    started = time.monotonic()
    res = Results()
    problem = stock_problem()
    if problem:
        res.check(False, "Debian's QEMU 7.2 is the oracle", problem)
        return res.finish()
    with tempfile.TemporaryDirectory(prefix="vmem-diff-ours-") as snap:
        ours = snapshot(snap)
        if not ours:
            res.check(False, f"our QEMU {OURS} runs",
                      f"not there or not running after {WAIT:.0f} s")
            return res.finish()
        print(f"# stock: {STOCK}: {qemu_version()}\n# ours:  {OURS} "
              f"(built {ours[1]}): {ours[2]}")
        compare_all(res, ours[0])
    print(f"# duration: {time.monotonic() - started:.1f} s")
    return res.finish()

if __name__ == "__main__":
    sys.exit(main())
