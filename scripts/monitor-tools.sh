#!/usr/bin/env bash
# Installs what the monitor's tests check with, when missing: `promtool` (Debian's
# `prometheus`: `promtool check metrics` on scrapes) and `chromium` (the dashboard in a
# headless browser, driven by Playwright from PyPI, which scripts/test installs).
#
# Under CI=true a failure fails (those tests must run); elsewhere it says what is missing,
# and the tests that need it skip.
set -euo pipefail

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
[[ ${#missing[@]} -eq 0 ]] && exit 0

fail() {
    echo "monitor-tools: $*" >&2
    if [[ -n ${CI:-} ]]; then
        exit 1
    fi
    exit 0
}

command -v apt-get >/dev/null || fail "missing ${missing[*]}, and no apt-get to install them"
sudo=()
if [[ $(id -u) != 0 ]]; then
    sudo -n true 2>/dev/null || fail "installing ${missing[*]} needs root (or passwordless sudo)"
    sudo=(sudo -n)
fi
echo "monitor-tools: installing ${missing[*]}" >&2
log=$(mktemp)
apt=(apt-get -qq -o DPkg::Lock::Timeout=300)
if ! { "${sudo[@]}" "${apt[@]}" update &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    fail "apt-get could not install ${missing[*]} (its last lines are above)"
fi
rm -f "$log"
