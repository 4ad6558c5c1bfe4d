"""The memslot layouts of virtio-mem with dynamic memslots, as a model.

What the device decides from the limit the memory device core hands it,
the region size and the block size (SPEC section 4, QEMU's
virtio_mem_decide_layout()): equal memslots, as upstream QEMU has them,
or (the default) memslots that grow with the offset, cut at the
boundaries of equal memslots unless they cover whole ones, taking along
what would be left before a boundary if it is smaller than the first. Offsets are a
list: memslot i covers [offsets[i], offsets[i+1]).
"""

GiB = 1 << 30
MIN_MEMSLOT = 1 * GiB
GROWTH_UNIT = 64
MAX_GROWTH = 1024 * GROWTH_UNIT


def align_up(value, align):
    return -(-value // align) * align


def equal_size(region, block, limit):
    """The size of an equal memslot (never more than limit of them)."""
    return max(align_up(-(-region // limit), block), block, MIN_MEMSLOT)


def _next(region, block, eq, first, max_size, growth, offset):
    grown = align_up(offset // GROWTH_UNIT * growth, block)
    boundary = (offset // eq + 1) * eq
    end = offset + min(min(max(grown, first), max_size), region - offset)
    if end > boundary:
        end = end // eq * eq if offset % eq == 0 else boundary
    elif boundary <= region and boundary - end < first and \
            boundary - offset <= grown + first:
        end = boundary
    return min(end, region)


def lay_out(region, block, eq, first, max_size, growth, limit):
    """Offsets of the memslots of one rule, or None if more than limit."""
    offsets, offset = [0], 0
    while offset < region:
        if len(offsets) > limit:
            return None
        offset = _next(region, block, eq, first, max_size, growth, offset)
        offsets.append(offset)
    return offsets


def layout(region, block, limit, equal=False):
    """The offsets the device decides on."""
    limit = max(limit, 1)
    eq = equal_size(region, block, limit)
    first, max_size = align_up(MIN_MEMSLOT, block), 2 * eq
    lo, hi = 0, MAX_GROWTH
    while lo < hi:
        mid = (lo + hi) // 2
        if lay_out(region, block, eq, first, max_size, mid, limit):
            hi = mid
        else:
            lo = mid + 1
    offsets = lay_out(region, block, eq, first, max_size, lo, limit)
    if equal or offsets is None:
        offsets = lay_out(region, block, eq, eq, eq, 0, limit)
    return offsets


def layout_name(region, block, limit, equal=False):
    """The name the device's trace event gives the layout it decides on:
    "equal" when asked for, or when growing memslots do not fit."""
    limit = max(limit, 1)
    eq = equal_size(region, block, limit)
    if equal or lay_out(region, block, eq, align_up(MIN_MEMSLOT, block),
                        2 * eq, MAX_GROWTH, limit) is None:
        return "equal"
    return "growing"


def mapped(offsets, spans):
    """Bytes the memslots of `offsets` map for plugged spans (device
    offsets [start, end))."""
    total = 0
    for i in range(len(offsets) - 1):
        lo, hi = offsets[i], offsets[i + 1]
        if any(s < hi and e > lo for s, e in spans):
            total += hi - lo
    return total
