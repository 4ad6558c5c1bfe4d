#!/usr/bin/env bash
# make demo: set up, build, then let a real guest resize a 1 TiB device.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/need.sh"
need python3 python3
"$top/scripts/guest.sh" >/dev/null
# stock 7.2 and upstream 10.0.2 for the memory limits at the end; without
# them the demo says which row it leaves out
"$top/scripts/peers.sh" >/dev/null ||
    echo "demo: scripts/peers.sh failed (above): the memory limits table" \
         "leaves out what it did not fetch" >&2
exec python3 "$top/scripts/demo.py"
