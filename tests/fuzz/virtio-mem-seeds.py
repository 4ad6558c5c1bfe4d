#!/usr/bin/env python3
"""Write the seed corpus of the virtio-mem fuzz target (tests/fuzz/virtio-mem).

Each seed is a sequence of the target's operations (FuzzOp in
tests/qtest/fuzz/virtio_mem_fuzz.c: opcode, layout, type, nb_blocks, block,
addr; packed, little endian) that a real driver or management stack would
produce: plugs and unplugs within and across memslots (1 GiB of 2 MiB
blocks), unplug-all, resizes, resets, state requests; libFuzzer mutates
from there.
"""

import os
import struct

PLUG, UNPLUG, UNPLUG_ALL, STATE, RAW, RESIZE, RESET = range(7)
PER_MEMSLOT = 512           # 1 GiB memslots of 2 MiB blocks


def op(opcode, block=0, nb_blocks=0, layout=0, type_=0, addr=0):
    return struct.pack("<BBHHIQ", opcode, layout, type_, nb_blocks, block,
                       addr)


SEEDS = {
    "plug-unplug-one": [op(PLUG, 0, 1), op(UNPLUG, 0, 1)],
    "across-memslots": [op(PLUG, PER_MEMSLOT - 1, 2),
                        op(UNPLUG, PER_MEMSLOT - 1, 1),
                        op(UNPLUG, PER_MEMSLOT, 1)],
    "every-memslot": [op(PLUG, i * PER_MEMSLOT + 7, 3) for i in range(5)] +
                     [op(STATE, 0, 511), op(UNPLUG_ALL)],
    "resize-nack": [op(RESIZE, 4), op(PLUG, 0, 8), op(PLUG, 0, 4),
                    op(RESIZE, 1000), op(PLUG, 100, 16)],
    "reset": [op(PLUG, 3, 5), op(RESET), op(PLUG, 3, 5), op(UNPLUG, 3, 5)],
    "raw": [op(RAW, type_=7, addr=1 << 40, nb_blocks=3),
            op(RAW, type_=0, addr=0xffffffffffe00000, nb_blocks=2)],
    "layouts": [op(PLUG, 9, 1, layout=128 | 4), op(PLUG, 9, 1, layout=129),
                op(UNPLUG, 9, 1, layout=128 | 2), op(STATE, 9, 1,
                                                      layout=128 | 32)],
    "misaligned": [op(PLUG, 1, 1, layout=64, addr=4096)],
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "virtio-mem")
    os.makedirs(out, exist_ok=True)
    for name, ops in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"".join(ops))


if __name__ == "__main__":
    main()
