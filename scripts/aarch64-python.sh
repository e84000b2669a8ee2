#!/usr/bin/env bash
# An aarch64 CPython, run under qemu-user, to test the aarch64 wheel on an x86-64 machine:
# Debian's own python3.11 for arm64 (multiarch), its packages downloaded with apt-get and
# unpacked into DIR/root, nothing installed on the host but qemu-user-static.
#
#   scripts/aarch64-python.sh DIR      prints the command that runs it (words, no spaces
#                                      inside them): prlimit, qemu-aarch64-static -L ROOT,
#                                      ROOT/usr/bin/python3.11
#
# It adds the arm64 architecture to dpkg (for apt-get download) and updates apt's lists if
# they lack it. The emulated process gets the address space of a 39-bit aarch64 kernel (512
# GiB): qemu spends memory per page a guest reserves, and a wasp server's pool would take
# 1 TiB. Needs root (or passwordless sudo) and apt-get; otherwise it prints "aarch64-python:
# skipped: <why>" on stderr and exits 3, except under CI=true, where it fails.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PYTHON=python3.11
readonly PACKAGES=(
    "$PYTHON-minimal" "lib$PYTHON-minimal" "lib$PYTHON-stdlib" "$PYTHON"
    libc6 libbz2-1.0 libcrypt1 libdb5.3 libexpat1 libffi8 liblzma5 libncursesw6 libnsl2
    libreadline8 libsqlite3-0 libtinfo6 libtirpc3 libuuid1 zlib1g libssl3 libgcc-s1
    libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
)
readonly ADDRESS_SPACE=$((1 << 39))

say() { echo "aarch64-python: $*" >&2; }
skip() {
    ! under_ci || {
        say "error: cannot run here, and CI must: $*"
        exit 1
    }
    say "skipped: $*"
    exit 3
}

[[ $# -eq 1 ]] || {
    echo "usage: $0 DIR" >&2
    exit 2
}
mkdir -p -- "$1"
dir=$(cd -- "$1" && pwd -P)
[[ $dir != *[[:space:]]* ]] || skip "no spaces in the directory, please: $dir"
root=$dir/root

apt_install aarch64-python qemu-user-static || skip "qemu-user-static cannot be installed"

if [[ ! -x $root/usr/bin/$PYTHON ]]; then
    rm -rf "$dir/debs" "$root"
    mkdir -p "$dir/debs" "$root"
    apt_download aarch64-python "$dir/debs" "${PACKAGES[@]/%/:arm64}" media-types ||
        skip "Debian's arm64 $PYTHON cannot be downloaded"
    for deb in "$dir"/debs/*.deb; do
        dpkg-deb -x "$deb" "$root"
    done
fi

command=(prlimit "--as=$ADDRESS_SPACE" qemu-aarch64-static -L "$root" "$root/usr/bin/$PYTHON")
machine=$("${command[@]}" -c 'import platform; print(platform.machine())')
[[ $machine == aarch64 ]] || skip "the emulated $PYTHON says it runs on $machine"
echo "${command[*]}"
