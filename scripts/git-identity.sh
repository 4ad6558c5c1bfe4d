# shellcheck shell=bash
# Sourced by the scripts that make commits in the QEMU work tree (the
# pristine base, `git am` of the series). A fresh machine has no git
# identity, and git refuses to commit without one: fall back to one of
# ours as the committer, unless the user configured theirs. Only the
# committer: `git am` would give every patch GIT_AUTHOR_* as its author.
if [ -z "$(git config user.email 2>/dev/null)" ] &&
   [ -z "${GIT_COMMITTER_EMAIL:-}" ]; then
    export GIT_COMMITTER_NAME="qemu-memslots scripts"
    export GIT_COMMITTER_EMAIL="qemu-memslots@localhost"
fi
