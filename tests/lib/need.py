"""Fail at once, naming the Debian package, when a tool is missing.

The Python side of scripts/need.sh: need("pgrep", "procps", ...) exits
with status 127 and a message that names the package of every command
not in $PATH, before a test starts what it would leave half done.
scripts/deps.sh installs all of them.
"""

import os
import shutil
import sys


def missing(*pairs):
    """The "'cmd' (Debian package pkg)" of every command not in $PATH."""
    if len(pairs) % 2:
        raise ValueError("need: pairs of command and package")
    return [f"'{cmd}' (Debian package {pkg})"
            for cmd, pkg in zip(pairs[::2], pairs[1::2])
            if shutil.which(cmd) is None]


def need(*pairs):
    """need(cmd, package, cmd, package, ...): exit 127 if any is missing."""
    absent = missing(*pairs)
    if absent:
        print(f"{os.path.basename(sys.argv[0])}: missing {' '.join(absent)};"
              " install it (scripts/deps.sh installs every package the "
              "project needs: 'make deps' as root)", file=sys.stderr)
        sys.exit(127)
