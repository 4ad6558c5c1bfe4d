# shellcheck shell=bash
# Sourced by the scripts: fail at once, naming the Debian package, when a
# tool they call is missing, instead of a "command not found" that a loop
# or a $(...) would swallow. scripts/deps.sh installs all of them.
#
#   need CMD PACKAGE [CMD PACKAGE]...   commands looked up in $PATH
#   need_file PATH PACKAGE              a file a script uses directly

_need_fail() { # what...
    echo "${0##*/}: missing $*; install it (scripts/deps.sh installs every" \
         "package the project needs: 'make deps' as root)" >&2
    exit 127
}

need() {
    local missing=()
    while [ $# -ge 2 ]; do
        command -v "$1" >/dev/null 2>&1 || missing+=("'$1' (Debian package $2)")
        shift 2
    done
    [ ${#missing[@]} -eq 0 ] || _need_fail "${missing[*]}"
}

need_file() { # path package
    [ -e "$1" ] || _need_fail "$1 (Debian package $2)"
}
