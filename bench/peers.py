"""The QEMUs the benchmarks compare, side by side (see scripts/peers.sh)."""

import json
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
# pylint: disable=wrong-import-position
from vmemguest import QEMU  # noqa: E402
from stockqemu import STOCK, stock_problem  # noqa: E402

UP = os.path.join(TOP, "build", "peers", "upstream")


class Peer:
    """One QEMU binary with what it needs to run, and a memslot setting."""

    def __init__(self, name, binary, dynamic, env=None, args=()):
        self.name = name
        self.binary = binary
        self.dynamic = dynamic      # None: the property does not exist
        self.env = env or {}
        self.args = list(args)

    def device_props(self):
        if self.dynamic is None:
            return ""
        return f",dynamic-memslots={'on' if self.dynamic else 'off'}"

    def __enter__(self):
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        return self

    def __exit__(self, *exc):
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def peers():
    problem = stock_problem()
    if problem:
        raise SystemExit(f"peers: {problem}")
    up_env = {
        "LD_LIBRARY_PATH": f"{UP}/usr/lib/x86_64-linux-gnu:"
                           f"{UP}/lib/x86_64-linux-gnu",
        "QEMU_MODULE_DIR": f"{UP}/usr/lib/x86_64-linux-gnu/qemu",
    }
    up_args = ["-L", f"{UP}/usr/share/qemu", "-L", f"{UP}/usr/share/seabios",
               "-L", f"{UP}/usr/lib/ipxe/qemu"]
    up_bin = f"{UP}/usr/bin/qemu-system-x86_64"
    return [
        Peer("stock 7.2", STOCK, None),
        Peer("upstream 10.0 off", up_bin, False, up_env, up_args),
        Peer("upstream 10.0 on", up_bin, True, up_env, up_args),
        Peer("ours off", QEMU, False),
        Peer("ours on", QEMU, True),
    ]


RESULTS = os.path.join(TOP, "bench", "results")


def save_jsonl(part, records):
    """The raw records of a benchmark part: bench/results/<part>.jsonl."""
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{part}.jsonl"), "w",
              encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
