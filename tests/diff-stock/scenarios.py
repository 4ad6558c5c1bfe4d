"""The scenario table of tests/test-diff-stock.py: ours against stock 7.2.

Every scenario runs on Debian's own qemu-system-x86_64 7.2 ("stock") and on
ours, with `dynamic-memslots` absent and (when the scenario has a
virtio-mem-pci device) with `dynamic-memslots=off` added to every
virtio-mem-pci device. All runs start with
`-accel tcg -S -nodefaults -display none -qmp stdio` plus `args`, then send
the `qmp` commands one after the other and `quit`. Compared: the exit
status, stderr and every QMP answer (events too).

The runs must be the same except for the differences listed in the
scenario's `differences`, each naming a reason of DIFFERENCES. A listed
difference is accepted only in exactly that scenario, at exactly that
place, in exactly that form; a listed difference that does not happen is
a failure too (the list would be stale). DIFFERENCES is what the docs'
list of differences from 7.2 says (tests/diff-stock/differences.rst is
generated from it: tests/test-diff-stock.py --write-rst).

Placeholders in `args` and in QMP arguments: {tmp} (a directory of the
run), {vu1}, {vu2}... (the socket of a vhost-user backend stub,
tests/lib/vhost_user_stub.py, that `vhost` asks for with its number of
memslots).
"""

GiB, MiB = 1 << 30, 1 << 20

# -- reasons: the docs' list of differences, in this order -------------------
DIFFERENCES = {
    "property": (
        "``virtio-mem-pci`` and ``virtio-mem`` have the new properties "
        "``dynamic-memslots`` and ``equal-memslots`` (both ``false`` by "
        "default): ``device-list-properties``, ``qom-list-properties`` and "
        "``info qtree`` list them, ``qom-get`` reads them and ``qom-set`` "
        "on a realized device says ``Attempt to set property "
        "'dynamic-memslots' on anonymous device (type 'virtio-mem') after "
        "it was realized`` (``Attempt to set property 'equal-memslots' on "
        "anonymous device (type 'virtio-mem') after it was realized``), "
        "where 7.2 answers ``Property 'virtio-mem-pci.dynamic-memslots' "
        "not found`` (``Property 'virtio-mem-pci.equal-memslots' not "
        "found``). ``equal-memslots=on`` without ``dynamic-memslots=on`` is "
        "refused with ``'equal-memslots' property requires "
        "'dynamic-memslots' to be 'on'``, a value other than ``on`` and "
        "``off`` with ``Parameter 'equal-memslots' expects 'on' or "
        "'off'``, where 7.2 says ``Property "
        "'virtio-mem-pci.equal-memslots' not found``. Reason: they are the "
        "switches of this feature and of its memslot layout."),
    "qapi-fields": (
        "The QAPI schema (``query-qmp-schema``) has the optional members "
        "``memslots``, ``mapped-memslots``, ``memslots-limited-by``, "
        "``mapped-size``, ``min-memslot-size`` and ``max-memslot-size`` of "
        "``VirtioMEMDeviceInfo``; ``query-memory-devices`` and ``info "
        "memory-devices`` only report them for devices with "
        "``dynamic-memslots=on``. Reason: they report the memslots of "
        "dynamic memslots (how many, how many are mapped, the bytes mapped "
        "and the smallest and largest memslot of the layout)."),
    "device-memory-as": (
        "Once a memory device (DIMM, virtio-mem, ...) is plugged, "
        "``info mtree`` and ``info mtree -f`` show one more address space, "
        "``device-memory``: the region for memory devices with the devices "
        "in it. Reason: the memory-device core counts the memslots that "
        "memory devices use with a memory listener on it (upstream QEMU "
        "has the same address space since 8.2)."),
    "trace-events": (
        "There are new trace events ``virtio_mem_decided_memslots``, "
        "``virtio_mem_map_memslot``, ``virtio_mem_unmap_memslot``, "
        "``memory_device_decide_memslots`` and "
        "``memory_devices_used_memslots``. Reason: they show the decision "
        "and every change of the memslots."),
    "unplug-allowed": (
        "``device_del`` of a ``virtio-mem-pci`` device whose "
        "``unplugged-inaccessible`` is ``on`` (set, or ``auto`` resolved "
        "to ``on``, as it does for shared, file-backed or huge-page "
        "memory) and whose ``size`` and "
        "``requested-size`` are 0 is accepted; 7.2 refuses to unplug any "
        "virtio-mem device with ``virtio based memory devices cannot be "
        "unplugged.``. Reason: the series supports hot-unplug of "
        "virtio-mem-pci under upstream QEMU's conditions. Until the request "
        "ends (the guest ejects the device; on a system reset the ACPI PCI "
        "hotplug controller ejects it, SHPC and native PCIe slots forget "
        "the request), ``requested-size`` cannot be raised "
        "(``'requested-size' cannot change while the device is being "
        "unplugged``)."),
    "unplug-refused-message": (
        "A ``device_del`` of a ``virtio-mem-pci`` device that is refused "
        "says which condition is not met: ``virtio-mem device cannot get "
        "unplugged while 'unplugged-inaccessible' != 'on'`` (upstream "
        "QEMU's message; also when ``auto`` resolved to ``off``, as it "
        "does for anonymous memory), ``virtio-mem device cannot get "
        "unplugged while the requested size is not 0`` or, while the guest "
        "has memory plugged, ``virtio-mem device cannot get unplugged "
        "while some of its memory is still plugged``; 7.2 says ``virtio "
        "based memory devices cannot be unplugged.``, which "
        "``virtio-pmem-pci`` keeps. Reason: hot-unplug is supported now, "
        "under conditions."),
    "vhost-user-512": (
        "On x86, a vhost-user backend may get up to 512 memory regions "
        "(``VHOST_USER_MAX_RAM_SLOTS``), where 7.2 stops at 256 (ACPI's "
        "DIMM slots) and refuses memory devices beyond with ``a used vhost "
        "backend has no free memory slots left``; the backend's own limit "
        "still applies. Reason: a memory device may use several memslots, "
        "so the number of DIMM slots is no limit for vhost-user (upstream "
        "QEMU raised it on x86 in 8.2); other targets keep theirs. A "
        "backend above 256 that reconnects offering fewer regions than "
        "before is refused (``This limit should never decrease.``), where "
        "7.2 saw 256 both times."),
}


# -- helpers for the table ---------------------------------------------------
def cmd(execute, **args):
    """A QMP command; select=[path] compares only that part of the answer,
    unordered=True compares a list answer as a set (hash table order)."""
    c = {opt: args.pop(opt) for opt in ("select", "unordered")
         if opt in args}
    c.update({"execute": execute, "arguments": args})
    return c


def hmp(line):
    return cmd("human-monitor-command", **{"command-line": line})


def qom_get(path, prop):
    return cmd("qom-get", path=path, property=prop)


def qom_set(path, prop, value):
    return cmd("qom-set", path=path, property=prop, value=value)


def replaced(reason, at, stock, ours, path=()):
    """Answer `at` (index in qmp, or "stderr"/"exit"), at `path` in it, is
    `stock` on stock and `ours` on ours."""
    return {"reason": reason, "at": at, "path": list(path),
            "stock": stock, "ours": ours}


def added(reason, at, item, path=("return",), count=1):
    """The list at `path` of answer `at` has `item` `count` times more on
    ours (stock has none)."""
    return {"reason": reason, "at": at, "path": list(path), "added": item,
            "count": count}


QMD = cmd("query-memory-devices")
HMD = hmp("info memory-devices")
MTREE_F = hmp("info mtree -f")
MTREE = hmp("info mtree")
SUMMARY = cmd("query-memory-size-summary")
Q35 = "-M q35 "
PC = "-M pc "
VM8G = ("-m 1G,maxmem=9G -object memory-backend-ram,id=mem0,size=8G,"
        "reserve=off ")
UNPLUG_7_2 = "virtio based memory devices cannot be unplugged."
UNPLUG_UI = ("virtio-mem device cannot get unplugged while "
             "'unplugged-inaccessible' != 'on'")
UNPLUG_REQ = ("virtio-mem device cannot get unplugged while the "
              "requested size is not 0")
REFUSED_7_2 = {"error": {"class": "GenericError", "desc": UNPLUG_7_2}}


def unplug_refused(at, ours=UNPLUG_UI):
    return replaced("unplug-refused-message", at, UNPLUG_7_2, ours,
                    path=("error", "desc"))


def unplug_allowed(at):
    return replaced("unplug-allowed", at, REFUSED_7_2, {"return": {}})


PENDING = ("'requested-size' cannot change while the device is being "
           "unplugged")


def pending_resize(at):
    """A resize to 1 GiB at `at` while the unplug request is pending."""
    return replaced("unplug-allowed", at, {"return": {}},
                    {"error": {"class": "GenericError", "desc": PENDING}})


def pending_size(at):
    """requested-size read at `at` after the refused resize."""
    return replaced("unplug-allowed", at, {"return": GiB}, {"return": 0})


def device_memory_flat(at, root, *ranges):
    """info mtree -f (answer `at`) shows the flat view of address space
    device-memory on ours: root region, then its ranges."""
    return added("device-memory-as", at, [
        "FlatView", ' AS "device-memory", root: device-memory',
        f" Root memory region: {root}"] + [f"  {r}" for r in ranges])


def device_memory_tree(at, *lines):
    """info mtree (answer `at`) shows address space device-memory on ours."""
    return added("device-memory-as", at, ["address-space: device-memory"] +
                 [f"  {line}" for line in lines])


def object_add(qom_type, oid, size, **props):
    return cmd("object-add", **{"qom-type": qom_type, "id": oid,
                                "size": size}, **props)


def vhost_add(n):
    """Connect to stub {vu<n>} and plug a vhost-user-blk-pci device."""
    return [cmd("chardev-add", id=f"vu{n}", backend={
                "type": "socket", "data": {
                    "addr": {"type": "unix", "data": {"path": f"{{vu{n}}}"}},
                    "server": False}}),
            cmd("device_add", driver="vhost-user-blk-pci", id=f"vublk{n}",
                chardev=f"vu{n}")]


def memfd_dimm(n, size=128 * MiB):
    return [object_add("memory-backend-memfd", f"d{n}", size),
            cmd("device_add", driver="pc-dimm", id=f"dimm{n}",
                memdev=f"d{n}")]


def bug(at, value, path=()):
    """What a bug that was fixed made ours give at `at` (and `path`)."""
    return {"at": at, "path": list(path), "value": value}


def S(name, args, qmp=(), vhost=None, differences=(), why="",
      slow=False, bugs=()):
    """slow: takes seconds (16 TiB of RAM), started first. bugs: what
    ours gave before a fix; the test checks that it would still FAIL."""
    return {"name": name, "args": args, "qmp": list(qmp),
            "vhost": vhost or {}, "differences": list(differences),
            "why": why, "slow": slow, "bugs": list(bugs)}


# -- the scenarios ------------------------------------------------------------
SCENARIOS = [
    # -- the docs' table of invalid configurations, dynamic-memslots off ------
    S("bad-config: unplugged-inaccessible=off is accepted",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,"
      "unplugged-inaccessible=off", [QMD]),
    S("bad-config: backend of 1 MiB",
      Q35 + "-m 1G,maxmem=9G -object memory-backend-ram,id=mem0,size=1M "
      "-device virtio-mem-pci,memdev=mem0"),
    S("bad-config: backend of 1025 MiB",
      Q35 + "-m 1G,maxmem=9G -object memory-backend-ram,id=mem0,size=1025M,"
      "reserve=off -device virtio-mem-pci,memdev=mem0"),
    S("bad-config: block-size 3M",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,block-size=3M"),
    S("bad-config: block-size 4K",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,block-size=4K"),
    S("bad-config: block-size 16G",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,block-size=16G"),
    S("bad-config: block-size 8G (alignment)",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,block-size=8G"),
    S("bad-config: block-size 1M (warning, accepted)",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,block-size=1M",
      [QMD]),
    S("bad-config: requested-size 3M",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,requested-size=3M"),
    S("bad-config: requested-size 9G of 8G (accepted)",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,requested-size=9G",
      [QMD]),
    S("bad-config: maxmem too small",
      Q35 + "-m 1G,maxmem=5G -object memory-backend-ram,id=mem0,size=8G,"
      "reserve=off -device virtio-mem-pci,memdev=mem0"),
    S("bad-config: no maxmem",
      Q35 + "-m 1G -object memory-backend-ram,id=mem0,size=8G,reserve=off "
      "-device virtio-mem-pci,memdev=mem0"),
    S("bad-config: maxmem equal to memory",
      Q35 + "-m 1G,maxmem=1G -object memory-backend-ram,id=mem0,size=8G,"
      "reserve=off -device virtio-mem-pci,memdev=mem0"),
    S("bad-config: busy memdev",
      Q35 + "-m 1G,maxmem=17G -object memory-backend-ram,id=mem0,size=8G,"
      "reserve=off -device virtio-mem-pci,memdev=mem0 "
      "-device virtio-mem-pci,memdev=mem0"),
    S("bad-config: prealloc=on and reserve=off",
      Q35 + "-m 1G,maxmem=9G -object memory-backend-ram,id=mem0,size=8G,"
      "prealloc=on,reserve=off -device virtio-mem-pci,memdev=mem0"),
    S("bad-config: 16 TiB, phys-bits too low",
      Q35 + "-m 1G,maxmem=17409G -object memory-backend-ram,id=mem0,"
      "size=16T,reserve=off -device virtio-mem-pci,memdev=mem0", slow=True),
    S("bad-config: 16 TiB with phys-bits=48 (accepted)",
      Q35 + "-cpu qemu64,phys-bits=48 -m 1G,maxmem=17409G -object "
      "memory-backend-ram,id=mem0,size=16T,reserve=off "
      "-device virtio-mem-pci,memdev=mem0", [QMD, MTREE_F], slow=True,
      differences=[device_memory_flat(
          1, "mem0",
          "0000000000000000-00000fffffffffff (prio 0, ram): mem0")]),
    S("bad-config: shared memory (accepted)",
      Q35 + "-m 1G,maxmem=9G -object memory-backend-ram,id=mem0,size=8G,"
      "reserve=off,share=on -device virtio-mem-pci,id=vm0,memdev=mem0",
      [QMD, qom_get("vm0", "unplugged-inaccessible")]),
    S("bad-config: no memdev",
      Q35 + "-m 1G,maxmem=9G -device virtio-mem-pci"),
    S("bad-config: node 1 without NUMA",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,node=1"),
    S("bad-config: mem-lock=on",
      Q35 + "-m 128M,maxmem=1G -overcommit mem-lock=on -object "
      "memory-backend-ram,id=mem0,size=128M -device "
      "virtio-mem-pci,memdev=mem0", slow=True),
    S("bad-config: unplugged-inaccessible=off on shared memory (warning)",
      Q35 + "-m 1G,maxmem=9G -object memory-backend-memfd,id=mem0,size=1G "
      "-device virtio-mem-pci,id=vm0,memdev=mem0,unplugged-inaccessible=off",
      [QMD, qom_get("vm0", "unplugged-inaccessible")]),
    S("bad-config: qom-set of the running device",
      Q35 + VM8G + "-device virtio-mem-pci,id=vm0,memdev=mem0",
      [qom_set("vm0", "requested-size", 3 * MiB),
       qom_set("vm0", "requested-size", 9 * GiB),
       qom_set("vm0", "block-size", 4 * MiB),
       qom_set("vm0", "unplugged-inaccessible", "on"),
       qom_set("vm0", "size", 0),
       qom_set("vm0", "requested-size", -1),
       qom_set("vm0", "requested-size", "1G"),
       qom_get("vm0", "requested-size"), qom_get("vm0", "block-size"),
       qom_get("vm0", "unplugged-inaccessible"), QMD]),
    S("bad-config: qom-set and qom-get dynamic-memslots",
      Q35 + VM8G + "-device virtio-mem-pci,id=vm0,memdev=mem0",
      [qom_set("vm0", "dynamic-memslots", False),
       qom_get("vm0", "dynamic-memslots"),
       qom_get("vm0/virtio-backend", "dynamic-memslots")],
      differences=[
          replaced("property", 0, "Property 'virtio-mem-pci.dynamic-"
                   "memslots' not found",
                   "Attempt to set property 'dynamic-memslots' on anonymous "
                   "device (type 'virtio-mem') after it was realized",
                   path=("error", "desc")),
          replaced("property", 1, {"error": {
              "class": "GenericError", "desc": "Property 'virtio-mem-pci."
              "dynamic-memslots' not found"}}, {"return": False}),
          replaced("property", 2, {"error": {
              "class": "GenericError", "desc": "Property 'virtio-mem."
              "dynamic-memslots' not found"}}, {"return": False})]),
    S("bad-config: qom-set and qom-get equal-memslots",
      Q35 + VM8G + "-device virtio-mem-pci,id=vm0,memdev=mem0",
      [qom_set("vm0", "equal-memslots", False),
       qom_get("vm0", "equal-memslots"),
       qom_get("vm0/virtio-backend", "equal-memslots")],
      differences=[
          replaced("property", 0, "Property 'virtio-mem-pci.equal-"
                   "memslots' not found",
                   "Attempt to set property 'equal-memslots' on anonymous "
                   "device (type 'virtio-mem') after it was realized",
                   path=("error", "desc")),
          replaced("property", 1, {"error": {
              "class": "GenericError", "desc": "Property 'virtio-mem-pci."
              "equal-memslots' not found"}}, {"return": False}),
          replaced("property", 2, {"error": {
              "class": "GenericError", "desc": "Property 'virtio-mem."
              "equal-memslots' not found"}}, {"return": False})]),
    S("bad-config: equal-memslots=maybe",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,equal-memslots=maybe",
      differences=[replaced(
          "property", "stderr",
          "QEMU: -device virtio-mem-pci,memdev=mem0,equal-memslots=maybe: "
          "Property 'virtio-mem-pci.equal-memslots' not found",
          "QEMU: -device virtio-mem-pci,memdev=mem0,equal-memslots=maybe: "
          "Parameter 'equal-memslots' expects 'on' or 'off'", path=(0,))]),
    S("bad-config: equal-memslots=on without dynamic-memslots",
      Q35 + VM8G + "-device virtio-mem-pci,memdev=mem0,equal-memslots=on",
      differences=[replaced(
          "property", "stderr",
          "QEMU: -device virtio-mem-pci,memdev=mem0,equal-memslots=on: "
          "Property 'virtio-mem-pci.equal-memslots' not found",
          "QEMU: -device virtio-mem-pci,memdev=mem0,equal-memslots=on: "
          "'equal-memslots' property requires 'dynamic-memslots' to be "
          "'on'", path=(0,))]),

    # -- the new property, fields and trace events ----------------------------
    S("properties of virtio-mem-pci and virtio-mem",
      Q35 + "-m 1G",
      [cmd("device-list-properties", typename="virtio-mem-pci",
           unordered=True),
       cmd("device-list-properties", typename="virtio-mem",
           unordered=True),
       cmd("qom-list-properties", typename="virtio-mem-pci",
           unordered=True),
       cmd("device-list-properties", typename="pc-dimm", unordered=True),
       cmd("device-list-properties", typename="virtio-pmem-pci",
           unordered=True)],
      differences=[
          added("property", i, {"default-value": False,
                                "name": name, "type": "bool"})
          for i in (0, 1)
          for name in ("dynamic-memslots", "equal-memslots")] + [
          added("property", 2, {"name": name, "type": "bool"})
          for name in ("dynamic-memslots", "equal-memslots")]),
    S("QAPI schema of VirtioMEMDeviceInfo",
      Q35 + "-m 1G",
      [cmd("query-qmp-schema", select=[
          "return", {"meta-type": "object", "members": [
              {"name": "requested-size"}, {"name": "block-size"},
              {"name": "memdev"}]}])],
      differences=[
          added("qapi-fields", 0, {"name": "memslots", "default": None,
                                   "type": "int"}, path=("members",)),
          added("qapi-fields", 0, {"name": "mapped-memslots",
                                   "default": None, "type": "int"},
                path=("members",)),
          added("qapi-fields", 0, {"name": "memslots-limited-by",
                                   "default": None, "type": "str"},
                path=("members",))] + [
          added("qapi-fields", 0, {"name": name, "default": None,
                                   "type": "int"}, path=("members",))
          for name in ("mapped-size", "min-memslot-size",
                       "max-memslot-size")]),
    S("trace events of memory devices",
      Q35 + "-m 1G",
      [cmd("trace-event-get-state", name="virtio_mem_*", unordered=True),
       cmd("trace-event-get-state", name="memory_device*",
           unordered=True)],
      differences=[
          added("trace-events", 0, {"name": n, "vcpu": False,
                                    "state": "disabled"})
          for n in ("virtio_mem_decided_memslots", "virtio_mem_map_memslot",
                    "virtio_mem_unmap_memslot")] + [
          added("trace-events", 1, {"name": n, "vcpu": False,
                                    "state": "disabled"})
          for n in ("memory_device_decide_memslots",
                    "memory_devices_used_memslots")]),

    # -- what QMP and HMP show ------------------------------------------------
    S("no memory device: queries and memory map",
      Q35 + "-m 1G", [QMD, HMD, SUMMARY, MTREE_F]),
    S("maxmem without memory devices: memory map",
      Q35 + "-m 1G,slots=4,maxmem=5G", [QMD, HMD, SUMMARY, MTREE_F, MTREE]),
    S("DIMM and two virtio-mem devices: queries and memory map",
      Q35 + "-m 1G,slots=2,maxmem=13G "
      "-object memory-backend-ram,id=d0,size=1G -device pc-dimm,id=dimm0,"
      "memdev=d0 -object memory-backend-ram,id=mem0,size=8G,reserve=off "
      "-device virtio-mem-pci,id=vm0,memdev=mem0,requested-size=1G "
      "-object memory-backend-memfd,id=mem1,size=2G -device virtio-mem-pci,"
      "id=vm1,memdev=mem1,block-size=4M",
      [QMD, HMD, SUMMARY, MTREE_F, MTREE, hmp("info qtree"),
       qom_get("vm0", "unplugged-inaccessible"),
       qom_get("vm1", "unplugged-inaccessible")],
      differences=[
          added("property", 5, "            dynamic-memslots = false",
                count=2),
          added("property", 5, "            equal-memslots = false",
                count=2),
          device_memory_flat(
              3, "device-memory",
              "0000000100000000-000000013fffffff (prio 0, ram): d0",
              "0000000140000000-000000033fffffff (prio 0, ram): mem0",
              "0000000340000000-00000003bfffffff (prio 0, ram): mem1"),
          device_memory_tree(
              4, "0000000100000000-000000047fffffff (prio 0, i/o): "
              "device-memory",
              "  0000000100000000-000000013fffffff (prio 0, ram): d0",
              "  0000000140000000-000000033fffffff (prio 0, ram): mem0",
              "  0000000340000000-00000003bfffffff (prio 0, ram): mem1")]),
    S("virtio-mem on a file: queries",
      PC + "-m 1G,maxmem=5G -object memory-backend-file,id=mem0,size=4G,"
      "mem-path={tmp}/mem0,share=on -device virtio-mem-pci,id=vm0,"
      "memdev=mem0", [QMD, HMD, MTREE_F,
                      qom_get("vm0", "unplugged-inaccessible")],
      differences=[device_memory_flat(
          2, "mem0",
          "0000000000000000-00000000ffffffff (prio 0, ram): mem0")]),

    # -- resizes --------------------------------------------------------------
    S("resize with qom-set requested-size",
      Q35 + VM8G + "-device virtio-mem-pci,id=vm0,memdev=mem0,"
      "requested-size=1G",
      [qom_get("vm0", "requested-size"),
       qom_set("vm0", "requested-size", 2 * GiB),
       qom_get("vm0", "requested-size"), qom_get("vm0", "size"), QMD, HMD,
       qom_set("vm0", "requested-size", 8 * GiB),
       qom_set("vm0", "requested-size", 8 * GiB + 2 * MiB),
       qom_set("vm0", "requested-size", 0), QMD, SUMMARY, MTREE_F],
      differences=[device_memory_flat(
          11, "mem0",
          "0000000000000000-00000001ffffffff (prio 0, ram): mem0")]),

    # -- full device memory, DIMMs and virtio-mem -----------------------------
    S("(a) a DIMM fills device memory, then virtio-mem (command line)",
      "-m 1G,slots=2,maxmem=3G -object memory-backend-ram,id=d0,size=2G "
      "-device pc-dimm,memdev=d0 -object memory-backend-ram,id=m0,size=1G,"
      "reserve=off -device virtio-mem-pci,memdev=m0",
      why="7.2 refuses the device: not enough space. A bug of ours "
          "(fixed): SIGFPE, a division by the unused device memory, 0.",
      bugs=[bug("exit", "killed by SIGFPE"), bug("stderr", [])]),
    S("(a) a DIMM fills device memory, then virtio-mem (QMP)",
      "-m 1G,slots=2,maxmem=3G -object memory-backend-ram,id=d0,size=2G "
      "-device pc-dimm,id=dimm0,memdev=d0",
      [object_add("memory-backend-ram", "m0", GiB, reserve=False),
       cmd("device_add", driver="virtio-mem-pci", id="vm0", memdev="m0"),
       QMD, SUMMARY],
      why="As above, hot-plugged into a running (-S) VM.",
      bugs=[bug("exit", "killed by SIGFPE"), bug(1, None), bug(2, None),
            bug(3, None), bug(4, None), bug("events", [])]),
    S("virtio-mem fills device memory, then a DIMM",
      PC + "-m 1G,slots=2,maxmem=3G -object memory-backend-ram,id=m0,"
      "size=2G,reserve=off -device virtio-mem-pci,memdev=m0 "
      "-object memory-backend-ram,id=d0,size=1G -device pc-dimm,memdev=d0"),
    S("virtio-mem fills device memory, then another virtio-mem",
      PC + "-m 1G,maxmem=3G -object memory-backend-ram,id=m0,size=2G,"
      "reserve=off -device virtio-mem-pci,id=vm0,memdev=m0",
      [object_add("memory-backend-ram", "m1", GiB, reserve=False),
       cmd("device_add", driver="virtio-mem-pci", id="vm1", memdev="m1"),
       object_add("memory-backend-ram", "d1", GiB),
       cmd("device_add", driver="pc-dimm", id="dimm1", memdev="d1"),
       QMD]),
    S("a DIMM and virtio-mem fill device memory exactly",
      PC + "-m 1G,slots=2,maxmem=3G -object memory-backend-ram,id=d0,size=1G "
      "-device pc-dimm,id=dimm0,memdev=d0 -object memory-backend-ram,id=m0,"
      "size=1G,reserve=off -device virtio-mem-pci,id=vm0,memdev=m0",
      [QMD, HMD, SUMMARY, MTREE_F,
       object_add("memory-backend-ram", "m1", 2 * MiB),
       cmd("device_add", driver="virtio-mem-pci", id="vm1", memdev="m1")],
      differences=[device_memory_flat(
          3, "device-memory",
          "0000000100000000-000000013fffffff (prio 0, ram): d0",
          "0000000140000000-000000017fffffff (prio 0, ram): m0")]),
    S("virtio-mem next to a DIMM, hot-plugged, not enough space",
      PC + "-m 1G,slots=2,maxmem=3G -object memory-backend-ram,id=d0,"
      "size=1536M -device pc-dimm,id=dimm0,memdev=d0",
      [object_add("memory-backend-ram", "m0", GiB, reserve=False),
       cmd("device_add", driver="virtio-mem-pci", id="vm0", memdev="m0"),
       object_add("memory-backend-ram", "m1", 256 * MiB, reserve=False),
       cmd("device_add", driver="virtio-mem-pci", id="vm1", memdev="m1"),
       QMD, MTREE_F],
      differences=[device_memory_flat(
          5, "device-memory",
          "0000000100000000-000000015fffffff (prio 0, ram): d0",
          "0000000160000000-000000016fffffff (prio 0, ram): m1")]),
    S("DIMM slots exhausted next to virtio-mem",
      PC + "-m 1G,slots=1,maxmem=5G -object memory-backend-ram,id=m0,"
      "size=1G,reserve=off -device virtio-mem-pci,id=vm0,memdev=m0 "
      "-object memory-backend-ram,id=d0,size=1G -device pc-dimm,memdev=d0",
      [object_add("memory-backend-ram", "d1", GiB),
       cmd("device_add", driver="pc-dimm", id="dimm1", memdev="d1"),
       QMD]),

    # -- hot-plug and hot-unplug ----------------------------------------------
    S("(b) device_del, unplugged-inaccessible auto (off), size 0",
      PC + VM8G + "-device virtio-mem-pci,id=vm0,memdev=mem0",
      [qom_get("vm0", "unplugged-inaccessible"), qom_get("vm0", "size"),
       qom_get("vm0", "requested-size"), cmd("device_del", id="vm0"), QMD],
      differences=[unplug_refused(3)],
      why="7.2 refuses; upstream QEMU refuses with its own message. A bug "
          "of ours (fixed) accepted it.",
      bugs=[bug(3, {"return": {}})]),
    S("(b) device_del, unplugged-inaccessible=off, size 0",
      PC + VM8G + "-device virtio-mem-pci,id=vm0,memdev=mem0,"
      "unplugged-inaccessible=off",
      [qom_get("vm0", "unplugged-inaccessible"),
       cmd("device_del", id="vm0"), QMD],
      differences=[unplug_refused(1)],
      why="As above, unplugged-inaccessible set to off.",
      bugs=[bug(1, {"return": {}})]),
    S("device_del, unplugged-inaccessible=off on shared memory",
      PC + "-m 1G,maxmem=5G -object memory-backend-memfd,id=mem0,size=1G "
      "-device virtio-mem-pci,id=vm0,memdev=mem0,unplugged-inaccessible=off",
      [cmd("device_del", id="vm0"), QMD],
      differences=[unplug_refused(0)]),
    S("device_del, unplugged-inaccessible=on, size 0",
      PC + VM8G + "-device virtio-mem-pci,id=vm0,memdev=mem0,"
      "unplugged-inaccessible=on",
      [qom_get("vm0", "unplugged-inaccessible"),
       cmd("device_del", id="vm0"), QMD],
      differences=[unplug_allowed(1)]),
    # Each device resets where its reset handler was registered: a loader
    # between two devices writes into the second one's memory at reset,
    # and the second one's unplug-all discards it again (one handler for
    # all devices ran them both before the loader)
    S("reset order: a loader between two devices",
      PC + "-m 1G,maxmem=9G,slots=4 -object memory-backend-ram,id=mem0,"
      "size=1G,reserve=off -device virtio-mem-pci,id=vm0,memdev=mem0,addr=4 "
      "-device loader,addr=0x140000000,data=0xdeadbeef,data-len=4 "
      "-object memory-backend-ram,id=mem1,size=1G,reserve=off "
      "-device virtio-mem-pci,id=vm1,memdev=mem1,requested-size=2M,addr=5",
      [hmp("xp /1wx 0x140000000"), cmd("system_reset"),
       hmp("xp /1wx 0x140000000")],
      bugs=[bug(0, {"return": ["0000000140000000: 0xdeadbeef", ""]})]),
    # A pending request keeps requested-size at 0 on every bus (SHPC never
    # marked the proxy, so the resize was accepted there), and a reset
    # that makes the slot forget the request ends it (native PCIe kept
    # the resize refused for good)
    S("SHPC: device_del, a resize while pending, reset, a resize",
      PC + "-global PIIX4_PM.acpi-pci-hotplug-with-bridge-support=off "
      "-device pci-bridge,id=br0,chassis_nr=1,shpc=on,addr=0x5 " + VM8G +
      "-device virtio-mem-pci,id=vm0,memdev=mem0,unplugged-inaccessible=on,"
      "bus=br0,addr=0x1",
      [cmd("device_del", id="vm0"), qom_set("vm0", "requested-size", GiB),
       qom_get("vm0", "requested-size"), qom_set("vm0", "requested-size", 0),
       cmd("system_reset"), qom_set("vm0", "requested-size", GiB),
       qom_get("vm0", "requested-size"), QMD],
      differences=[unplug_allowed(0), pending_resize(1), pending_size(2)],
      bugs=[bug(1, {"return": {}})]),
    S("native PCIe: device_del, a resize while pending, reset, a resize",
      "-M pc-q35-6.0 -device pcie-root-port,id=root0,addr=0x1,bus=pcie.0,"
      "chassis=1 " + VM8G + "-device virtio-mem-pci,id=vm0,memdev=mem0,"
      "unplugged-inaccessible=on,bus=root0",
      [cmd("device_del", id="vm0"), qom_set("vm0", "requested-size", GiB),
       qom_get("vm0", "requested-size"), cmd("system_reset"),
       qom_set("vm0", "requested-size", GiB),
       qom_get("vm0", "requested-size"), QMD],
      differences=[unplug_allowed(0), pending_resize(1), pending_size(2)],
      bugs=[bug(4, {"error": {"class": "GenericError", "desc": PENDING}})]),
    S("hot-plug on shared memory (auto is on), device_del",
      PC + "-m 1G,maxmem=5G",
      [object_add("memory-backend-memfd", "mem0", GiB),
       cmd("device_add", driver="virtio-mem-pci", id="vm0", memdev="mem0"),
       qom_get("vm0", "unplugged-inaccessible"), QMD,
       cmd("device_del", id="vm0"), QMD],
      differences=[unplug_allowed(4)]),
    S("hot-plug with requested-size, device_del, resize to 0, device_del",
      PC + "-m 1G,maxmem=9G",
      [object_add("memory-backend-ram", "mem0", 8 * GiB, reserve=False),
       cmd("device_add", driver="virtio-mem-pci", id="vm0", memdev="mem0",
           **{"unplugged-inaccessible": "on", "requested-size": GiB}),
       QMD, cmd("device_del", id="vm0"),
       qom_set("vm0", "requested-size", 0), cmd("device_del", id="vm0"),
       QMD],
      differences=[unplug_refused(3, UNPLUG_REQ), unplug_allowed(5)]),
    S("hot-plug and device_del on a PCIe root port",
      Q35 + "-m 1G,maxmem=9G -device pcie-root-port,id=rp0,chassis=1",
      [object_add("memory-backend-ram", "mem0", 8 * GiB, reserve=False),
       cmd("device_add", driver="virtio-mem-pci", id="vm0", memdev="mem0",
           bus="rp0"),
       QMD, cmd("device_del", id="vm0"), QMD],
      differences=[unplug_refused(3)]),
    S("device_del of virtio-pmem-pci",
      PC + "-m 1G,maxmem=5G -object memory-backend-file,id=pm0,size=1G,"
      "mem-path={tmp}/pmem0,share=on -device virtio-pmem-pci,id=vp0,"
      "memdev=pm0",
      [cmd("device_del", id="vp0"), QMD]),
    S("device_del of a DIMM next to virtio-mem",
      PC + "-m 1G,slots=2,maxmem=5G -object memory-backend-ram,id=d0,"
      "size=1G -device pc-dimm,id=dimm0,memdev=d0 -object "
      "memory-backend-ram,id=m0,size=2G,reserve=off -device virtio-mem-pci,"
      "id=vm0,memdev=m0",
      [cmd("device_del", id="dimm0"), QMD]),

    # -- vhost-user devices ---------------------------------------------------
    # A backend that drops QEMU's first connection (restarting, say): 7.2
    # connects again and runs; the series gave up after the first failure
    # (stderr "vhost-user backend ... could not be started", status 1).
    S("vhost-user NIC on the command line, backend drops the first "
      "connection",
      PC + "-m 1G -chardev socket,id=vn,path={vu1} "
      "-netdev vhost-user,id=net0,chardev=vn",
      vhost={"vu1": {"memslots": 32, "drop_first": 1}},
      bugs=[bug("exit", 1)]),
    S("vhost-user NIC over QMP, backend drops the first connection",
      PC + "-m 1G", vhost={"vu1": {"memslots": 32, "drop_first": 1}},
      qmp=[cmd("chardev-add", id="vn", backend={
               "type": "socket", "data": {
                   "addr": {"type": "unix", "data": {"path": "{vu1}"}},
                   "server": False}}),
           cmd("netdev_add", type="vhost-user", id="net0", chardev="vn"),
           hmp("info network")],
      bugs=[bug(1, {"error": {"class": "GenericError", "desc":
                              "Device 'vhost-user' could not be "
                              "initialized"}})]),
    S("vhost-user with 32 memslots, then virtio-mem",
      PC + "-m 1G,slots=8,maxmem=66G", vhost={"vu1": 32},
      qmp=vhost_add(1) + [
          object_add("memory-backend-ram", "mem0", 64 * GiB, reserve=False),
          cmd("device_add", driver="virtio-mem-pci", id="vm0",
              memdev="mem0"), QMD]),
    S("virtio-mem, then vhost-user with 32 and 128 memslots",
      PC + "-m 1G,slots=8,maxmem=66G -object memory-backend-ram,id=mem0,"
      "size=64G,reserve=off -device virtio-mem-pci,id=vm0,memdev=mem0",
      vhost={"vu1": 32, "vu2": 128}, qmp=vhost_add(1) + vhost_add(2) + [QMD]),
    S("vhost-user with 4 memslots, a 5th DIMM on shared memory",
      PC + "-m 1G,slots=8,maxmem=66G", vhost={"vu1": 4},
      qmp=vhost_add(1) + [c for n in range(5) for c in memfd_dimm(n)] +
      [QMD]),
    S("two DIMMs and virtio-mem, then vhost-user with 2 and 1 memslots",
      PC + "-m 1G,slots=8,maxmem=66G -object memory-backend-ram,id=mem0,"
      "size=1G,reserve=off -device virtio-mem-pci,id=vm0,memdev=mem0",
      vhost={"vu1": 2, "vu2": 1},
      qmp=memfd_dimm(1) + memfd_dimm(2) + vhost_add(1) + vhost_add(2)),
    S("vhost-user with 1 memslot, virtio-mem on shared memory, then a DIMM",
      PC + "-m 1G,slots=8,maxmem=66G", vhost={"vu1": 1},
      qmp=vhost_add(1) + [
          object_add("memory-backend-memfd", "mem0", GiB),
          cmd("device_add", driver="virtio-mem-pci", id="vm0",
              memdev="mem0")] + memfd_dimm(1) + [QMD]),
    # 2 regions of boot memory (the 640 KiB..1 MiB hole splits it) and 254
    # DIMMs fill 7.2's 256 vhost-user slots: DIMMs 254 and 255 (answers 511
    # and 513) are refused there, accepted here
    S("vhost-user with 509 memslots and 256 shared-memory DIMMs",
      "-M pc,memory-backend=ram0 -object memory-backend-memfd,id=ram0,"
      "size=1G -m 1G,slots=256,maxmem=40G", vhost={"vu1": 509},
      qmp=vhost_add(1) + [c for n in range(256) for c in memfd_dimm(n)],
      differences=[replaced("vhost-user-512", at, {"error": {
          "class": "GenericError",
          "desc": "a used vhost backend has no free memory slots left"}},
          {"return": {}}) for at in (511, 513)]),
    S("vhost-user with 509 memslots and virtio-mem",
      PC + "-m 1G,slots=8,maxmem=66G", vhost={"vu1": 509},
      qmp=vhost_add(1) + [
          object_add("memory-backend-ram", "mem0", 64 * GiB, reserve=False),
          cmd("device_add", driver="virtio-mem-pci", id="vm0",
              memdev="mem0"), QMD, HMD, MTREE_F],
      differences=[device_memory_flat(
          6, "mem0",
          "0000000000000000-0000000fffffffff (prio 0, ram): mem0")]),
]
