# shellcheck shell=bash
# A private apt configuration in a directory of its own: its sources
# (DIR/etc/sources.list.d), preferences, package lists and cache; the
# system's apt sources and lists never change. Sourced by apt-suite.sh,
# apt-backports.sh and apt-base.sh.
#
# apt_private DIR [STATUS]: write DIR/apt.conf; STATUS is the dpkg status
# (default: an empty one of DIR's, for downloads and queries only).
apt_private() {
    local dir=$1 status=${2:-}
    mkdir -p "$dir/etc/sources.list.d" "$dir/etc/preferences.d" \
             "$dir/state/lists/partial" "$dir/cache/archives/partial"
    if [ -z "$status" ]; then
        status="$dir/status"
        : > "$status"
    fi
    cat > "$dir/apt.conf" <<CONF
Dir::State "$dir/state";
Dir::State::status "$status";
Dir::Cache "$dir/cache";
Dir::Etc::SourceParts "$dir/etc/sources.list.d";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::PreferencesParts "$dir/etc/preferences.d";
Dir::Etc::Preferences "/dev/null";
APT::Sandbox::User "root";
CONF
}
