#!/usr/bin/env bash
# wasp for aarch64 Linux, cross-built on an x86-64 Linux machine, and a mixed cluster tested
# on it: an aarch64 `wasp node` under qemu-user next to an x86-64 one, both on 127.0.0.1,
# with an x86-64 client running one batch across both (cli/tests/e2e/mixed_arch.rs).
#
#   scripts/aarch64.sh          install what is missing, build (dev profile), run the test
#   scripts/aarch64.sh node     install what is missing, build (dev profile), and print the
#                               command that runs the aarch64 node, for WASP_AARCH64_NODE
#                               (CI sets it so that `cargo test --workspace` runs the test)
#   scripts/aarch64.sh build    install what is missing, build a release `wasp` to copy to
#                               an aarch64 machine (a Raspberry Pi, an ARM cloud node)
#
# In the test and node modes, WASP_AARCH64_BINARY names an aarch64 `wasp` built already
# (CI gives the release one of the aarch64 wheel, `scripts/wheels.sh binary aarch64`):
# nothing is built, and only qemu-user and aarch64 glibc are needed.
#
# What it needs, installed with apt-get (as root or with passwordless sudo) when missing:
# gcc-aarch64-linux-gnu (the cross linker, and the C compiler `ring` needs),
# libc6-dev-arm64-cross (aarch64 glibc), qemu-user-static (only to test), and rustup's
# aarch64-unknown-linux-gnu target. Where these cannot be installed it prints
# "aarch64: skipped: <why>" and exits 0, except under CI=true, where a skip is a failure;
# any other failure fails. Messages go to stderr (stdout is the command, in `node` mode).
# CARGO_TARGET_DIR is
# honoured, as are the CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER and
# CC_aarch64_unknown_linux_gnu of another cross toolchain.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

readonly TARGET=aarch64-unknown-linux-gnu
# Where Debian's cross packages put aarch64 glibc: qemu-user loads the binary's dynamic
# libraries from there (-L).
readonly SYSROOT=/usr/aarch64-linux-gnu
# The emulated node gets the address space of an aarch64 kernel with 39-bit addresses, as
# Raspberry Pi OS ships (512 GiB), so the test also covers a sandbox pool sized to fit. It
# also keeps qemu 7.2 (Debian 12) quick: it spends about 24 bytes of bookkeeping per 4 KiB
# page the guest reserves, 6 GiB and tens of seconds for the full 1 TiB pool.
readonly ADDRESS_SPACE=$((1 << 39))

say() { echo "aarch64: $*" >&2; }
skip() {
    if under_ci; then
        fail "cannot run here, and CI must: $*"
    fi
    say "skipped: $*"
    exit 0
}
fail() {
    say "error: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 [test|build]" >&2
    exit 2
}

mode=${1:-test}
[[ $# -le 1 ]] || usage
# The dev profile to test: dependencies (wasmtime, cranelift) are optimised in it too, and
# it shares the host's build scripts and proc macros with `cargo test`.
case $mode in
    test | node) profile=(--profile dev) profile_dir=debug ;;
    build) profile=(--release) profile_dir=release ;;
    *) usage ;;
esac
prebuilt=${WASP_AARCH64_BINARY:-}
[[ $mode != build ]] || prebuilt=""
packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
[[ -z $prebuilt ]] || packages=(libc6-arm64-cross)
[[ $mode == build ]] || packages+=(qemu-user-static)

qemu() { command -v qemu-aarch64-static || command -v qemu-aarch64; }

# What is missing to build (and, to test, to run) an aarch64 `wasp`, one word each.
missing() {
    if [[ -n $prebuilt ]]; then
        [[ -e $SYSROOT/lib/ld-linux-aarch64.so.1 ]] || echo "aarch64-glibc($SYSROOT)"
    else
        command -v aarch64-linux-gnu-gcc >/dev/null || echo "aarch64-linux-gnu-gcc"
        [[ -e $SYSROOT/lib/crt1.o && -e $SYSROOT/lib/ld-linux-aarch64.so.1 ]] ||
            echo "aarch64-glibc($SYSROOT)"
    fi
    [[ $mode == build ]] || qemu >/dev/null || echo "qemu-aarch64"
}

install_packages() {
    say "missing: $*"
    apt_install aarch64 "${packages[@]}" ||
        skip "could not install ${packages[*]} (on another distribution, install an aarch64 cross gcc, aarch64 glibc and qemu-user, then run this again)"
}

install_target() {
    grep -qx "$TARGET" <<<"$(rustup target list --installed)" && return
    say "installing the $TARGET target"
    rustup target add "$TARGET" || skip "rustup could not add the $TARGET target"
}

[[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] ||
    skip "this script cross-builds from x86-64 Linux, and this is $(uname -sm)"
command -v rustup >/dev/null || skip "no rustup, to add the $TARGET target"

started=$SECONDS
lacking=$(missing | xargs)
if [[ -n $lacking ]]; then
    install_packages "$lacking"
    lacking=$(missing | xargs)
    # The packages are installed: anything still missing is this script's mistake.
    [[ -z $lacking ]] || fail "still missing after installing ${packages[*]}: $lacking"
fi
[[ -n $prebuilt ]] || install_target
say "toolchain ready in $((SECONDS - started)) s"

if [[ -n $prebuilt ]]; then
    binary=$prebuilt
    [[ -x $binary ]] || fail "WASP_AARCH64_BINARY names no executable: $binary"
    say "using $binary, built already"
else
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
    export CC_aarch64_unknown_linux_gnu=${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc}
    export AR_aarch64_unknown_linux_gnu=${AR_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-ar}

    started=$SECONDS
    cargo build --locked "${profile[@]}" --target "$TARGET" -p wasp-cli --bin wasp >&2
    target_dir=$(cargo metadata --locked --no-deps --format-version 1 |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    binary=$target_dir/$TARGET/$profile_dir/wasp
    [[ -x $binary ]] || fail "no binary at $binary after the build"
    say "built $binary in $((SECONDS - started)) s"
fi

if [[ $mode == build ]]; then
    glibc=$(aarch64-linux-gnu-objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
    say "copy it to the aarch64 machine: it needs ${glibc/_/ } or newer (Debian 12 and Raspberry Pi OS 12 have 2.36)"
    exit 0
fi

command -v prlimit >/dev/null || fail "prlimit (util-linux) is needed to bound the emulated node's address space"
[[ $binary != *[[:space:]]* && $(qemu) != *[[:space:]]* ]] ||
    fail "the test takes the aarch64 command as words: no spaces in $binary or $(qemu)"
node=(prlimit "--as=$ADDRESS_SPACE" "$(qemu)" -L "$SYSROOT" "$binary")
say "$("${node[@]}" --version) runs under $(qemu)"

if [[ $mode == node ]]; then
    echo "${node[*]}"
    exit 0
fi

started=$SECONDS
WASP_AARCH64_NODE="${node[*]}" \
    cargo test --locked -p wasp-cli --test e2e mixed_arch:: -- --nocapture --test-threads=1 >&2
say "mixed cluster tested in $((SECONDS - started)) s"
