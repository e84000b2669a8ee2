#!/usr/bin/env bash
# Installs what the monitor's tests check with, when missing: `promtool` (Debian's
# `prometheus`: `promtool check metrics` on scrapes) and `chromium` (the dashboard in a
# headless browser, driven by Playwright from PyPI, which scripts/test installs).
#
# Under CI=true a failure fails (those tests must run); elsewhere it says what is missing,
# and the tests that need it skip.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
[[ ${#missing[@]} -eq 0 ]] && exit 0
# Outside CI, the tests that need what could not be installed skip, saying so.
apt_install monitor-tools "${missing[@]}" || exit 0
