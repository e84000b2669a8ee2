#!/usr/bin/env bash
# wasp's Python wheels, ready for `pip install` on a machine without Rust: abi3 (CPython
# >= 3.9) manylinux2014 wheels (glibc 2.17 or newer) for x86-64 and aarch64, each holding
# the `wasp` package, its native extension, wasp's Python runner, and the `wasp` command
# (a binary in the wheel's scripts, installed next to `python`); the wheel of this machine's
# architecture also holds the runner's code, compiled ahead for that architecture's baseline.
#
#   scripts/wheels.sh [x86_64|aarch64|all] [OUT]    -> OUT/wasp_parallel-*.whl (default
#                                                      all, target/wheels); their paths on
#                                                      stdout, one a line
#   scripts/wheels.sh binary ARCH                    only the release `wasp` for ARCH, as
#                                                      the wheel holds it; prints its path
#                                                      (scripts/image.sh puts it in the image)
#   scripts/wheels.sh runner                         only the Python runner the wheels hold
#                                                      (built if missing); prints its path
#                                                      (scripts/image.sh compiles it ahead)
#
# One release build per architecture, linked by zig against glibc 2.17 (maturin --zig,
# from PyPI: no cross toolchain, and the aarch64 wheel is cross-built): the extension, the
# `wasp` in the wheel and the container image's `wasp` are built together and share every
# compiled dependency (wasmtime once per architecture).
#
# Needs: rustup (it adds the targets), CPython >= 3.9 with venv and pip, PyPI (maturin,
# ziglang, auditwheel, pinned in python/requirements-wheels.txt), and wasp's Python
# runner, built into the package with `python -m wasp.runner build --if-needed` (in the
# environment `scripts/test setup` makes, made first if it is missing). Messages go to
# stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "wheels: $*" >&2; }
fail() {
    say "error: $*"
    exit 1
}

triple_of() {
    case $1 in
        x86_64 | amd64) echo x86_64-unknown-linux-gnu ;;
        aarch64 | arm64) echo aarch64-unknown-linux-gnu ;;
        *) fail "unknown architecture $1 (x86_64 or aarch64)" ;;
    esac
}

# The glibc the wheels (and the image's binary) need at least.
readonly COMPATIBILITY=manylinux2014
readonly TOOLS=target/wheel-tools
# Where the wheel's `wasp` command waits to be packaged: the data directory maturin takes
# when it exists (`<module-name>.data`; its scripts/ go to the environment's bin/). Removed
# after, so that `pip install ./python` never packages a stale one.
readonly DATA=python/wasp._wasp.data
# Where the Python runner is packaged from (pyproject.toml's include), with runner.json.
readonly RUNNER=python/wasp/runner/runner.wasm
# Where its code compiled ahead is staged (pyproject.toml's include; wasp.runner.SHIPPED_CODE),
# for the wheel of the architecture this machine runs: its `wasp precompile` compiles it for
# the architecture's baseline CPU (x86-64-v3), so that a fresh machine's first Python job
# compiles nothing. Removed after, as the data directory is.
readonly CODE=python/wasp/runner/code

tools() {
    if [[ ! -x $TOOLS/bin/python ]]; then
        say "making the build tools' environment $TOOLS"
        "${PYTHON:-python3}" -m venv "$TOOLS"
    fi
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r python/requirements-wheels.txt >&2
    export PATH=$PWD/$TOOLS/bin:$PATH
}

target() {
    grep -qx "$1" <<<"$(rustup target list --installed)" && return
    say "installing the $1 target"
    rustup target add "$1" >&2
}

# maturin's flags for ARCH's release build (the same for the binary and the extension,
# so that they share one build).
maturin_flags() {
    echo --release --locked --strip --zig --target "$(triple_of "$1")" \
        --compatibility "$COMPATIBILITY"
}

# Builds the release `wasp` for ARCH; prints its path.
binary() {
    local triple scratch
    triple=$(triple_of "$1")
    target "$triple"
    scratch=$(mktemp -d)
    # shellcheck disable=SC2046 # one word per flag
    maturin build $(maturin_flags "$1") -b bin -m cli/Cargo.toml -o "$scratch" >&2
    rm -rf "$scratch"
    local path=target/$triple/release/wasp
    [[ -x $path ]] || fail "no binary at $path after the build"
    echo "$PWD/$path"
}

# The Python runner the wheels ship: built into the package (with runner.json, which says
# from which inputs: the package finds it stale, and ignores it, once they change), again
# only if its inputs changed since.
runner() {
    if [[ ! -x target/python-venv/bin/python ]]; then
        say "building what the runner needs first (scripts/test setup)"
        scripts/test setup >&2
    fi
    target/python-venv/bin/python -m wasp.runner build --if-needed "$(dirname "$RUNNER")" >&2
    [[ -s $RUNNER ]] || fail "the Python runner $RUNNER is missing"
    echo "$RUNNER"
}

# Builds ARCH's wheel into OUT; prints its path.
wheel() {
    local arch=$1 out=$2 binary before wheel shipped
    binary=$(binary "$arch")
    before=$(mktemp)
    find "$out" -maxdepth 1 -name '*.whl' >"$before" 2>/dev/null || true
    # The data directory is one for all architectures: one packaging at a time.
    exec 9>target/wheels.lock
    flock -w 3600 9 || fail "another scripts/wheels.sh held target/wheels.lock for an hour"
    packaging=yes
    rm -rf "$DATA" "$CODE"
    mkdir -p "$DATA/scripts"
    cp "$binary" "$DATA/scripts/wasp"
    shipped=""
    if [[ $arch == "$(uname -m)" ]]; then
        say "compiling the runner ahead for $arch's baseline CPU"
        shipped=$("$binary" precompile "$RUNNER" --out "$CODE")
        shipped="wasp/runner/code/$(basename "$shipped")"
    fi
    # shellcheck disable=SC2046 # one word per flag
    maturin build $(maturin_flags "$arch") -m python/Cargo.toml -o "$out" >&2
    rm -rf "$DATA" "$CODE"
    packaging=""
    flock -u 9
    wheel=$(find "$out" -maxdepth 1 -name "*$arch.whl" -newer "$before" | head -n 1)
    rm -f "$before"
    [[ -n $wheel ]] || fail "maturin made no $arch wheel in $out"
    check "$wheel" "$arch" "$shipped"
    echo "$wheel"
}

# auditwheel must accept the wheel's tag, and the wheel must hold what it promises: with
# SHIPPED (the member of the runner's code compiled ahead), that code, and no other
# compiled code; without, none at all.
check() {
    local wheel=$1 arch=$2 shipped=$3 report
    report=$(auditwheel show "$wheel" 2>&1) || fail "auditwheel show $wheel failed: $report"
    # auditwheel wraps its lines: read the report as one.
    grep -q "consistent with the following platform tag: \"manylinux_2_17_$arch\"" \
        <<<"$(tr -s '\n ' '  ' <<<"$report")" ||
        fail "auditwheel does not accept $wheel as manylinux_2_17_$arch: $report"
    local listing
    listing=$("$TOOLS/bin/python" -m zipfile -l "$wheel")
    local members=(wasp/_wasp.abi3.so wasp/runner/runner.wasm wasp/runner/runner.json "data/scripts/wasp")
    [[ -z $shipped ]] || members+=("$shipped")
    for member in "${members[@]}"; do
        grep -qF "$member" <<<"$listing" || fail "$wheel lacks $member"
    done
    local compiled
    compiled=$(grep -oE 'wasp/runner/code/[^ ]*' <<<"$listing" || true)
    [[ $compiled == "$shipped" ]] ||
        fail "$wheel holds compiled code [$compiled], not just [$shipped]"
    say "$(basename "$wheel"): $(($(stat -c %s "$wheel") / 1024 / 1024)) MiB ($(stat -c %s "$wheel") bytes), auditwheel: manylinux_2_17_$arch"
}

mode=${1:-all}
tools
if [[ $mode == binary ]]; then
    [[ $# -eq 2 ]] || fail "usage: $0 binary ARCH"
    binary "$2"
    exit 0
fi
if [[ $mode == runner ]]; then
    [[ $# -eq 1 ]] || fail "usage: $0 runner"
    echo "$PWD/$(runner)"
    exit 0
fi
case $mode in
    all) arches=(x86_64 aarch64) ;;
    x86_64 | aarch64) arches=("$mode") ;;
    *) fail "usage: $0 [x86_64|aarch64|all] [OUT] | binary ARCH | runner" ;;
esac
out=${2:-target/wheels}
mkdir -p "$out"
out=$(cd "$out" && pwd)
runner >/dev/null
# The `wasp` staged for a wheel does not stay behind for a later `pip install ./python`.
packaging=""
trap '[[ -z $packaging ]] || rm -rf "$DATA" "$CODE"' EXIT
for arch in "${arches[@]}"; do
    started=$SECONDS
    wheel "$arch" "$out"
    say "$arch wheel built in $((SECONDS - started)) s"
done
