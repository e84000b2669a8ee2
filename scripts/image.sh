#!/usr/bin/env bash
# Builds wasp's container image: one statically linked `wasp` (musl), stripped, in an
# otherwise empty OCI image (no base image: nothing is pulled from any registry), run as a
# non-root user (65532). Debian's `umoci` writes the OCI layout.
#
#   scripts/image.sh [x86_64|aarch64] [OUT]   -> OUT/wasp-<arch> (an OCI layout, tag `latest`)
#
# OUT defaults to target/image. The last line on stdout is the layout's path; the sizes go
# to stderr. Load it with e.g. `skopeo copy oci:target/image/wasp-x86_64:latest
# docker-daemon:wasp:latest`, or push it with `skopeo copy ... docker://registry/wasp`.
#
# What it needs, installed when missing (apt-get, as root or with passwordless sudo): the
# rustup target `<arch>-unknown-linux-musl`, `umoci`, and a C compiler for the target
# (ring's C): `musl-tools` on x86_64, `gcc-aarch64-linux-gnu` for aarch64 (which also links
# it, with Rust's own musl). The build has its own target directory (target/image): the
# musl dependencies share nothing with the host build anyway.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

arch=${1:-$(uname -m)}
out=${2:-target/image}
case $arch in
x86_64)
    triple=x86_64-unknown-linux-musl
    oci_arch=amd64
    packages=(musl-tools umoci)
    strip=strip
    ;;
aarch64 | arm64)
    arch=aarch64
    triple=aarch64-unknown-linux-musl
    oci_arch=arm64
    packages=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu umoci)
    strip=aarch64-linux-gnu-strip
    export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
    ;;
*)
    echo "image.sh: unknown architecture $arch (x86_64 or aarch64)" >&2
    exit 2
    ;;
esac

say() { echo "image.sh: $*" >&2; }

apt_install image.sh "${packages[@]}" || exit 1
grep -qx "$triple" <<<"$(rustup target list --installed)" || rustup target add "$triple" >&2

say "building wasp for $triple"
CARGO_TARGET_DIR=target/image cargo build --release --locked -p wasp-cli --target "$triple" >&2
binary=target/image/$triple/release/wasp

# The root: the binary, a user and group for it, a /tmp. Nothing else.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$binary" "$root/wasp"
"$strip" "$root/wasp"
if readelf -l "$root/wasp" | grep -q 'Requesting program interpreter'; then
    say "$binary is not statically linked"
    exit 1
fi
echo "nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin" >"$root/etc/passwd"
echo "nonroot:x:65532:" >"$root/etc/group"

layout=$out/wasp-$arch
rm -rf "$layout"
mkdir -p "$out"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci insert --image "$layout:latest" --history.comment "wasp, static ($triple)" "$root" /
umoci config --image "$layout:latest" \
    --architecture "$oci_arch" --os linux \
    --config.user 65532:65532 \
    --config.entrypoint /wasp --config.cmd node --config.cmd --help \
    --config.workingdir /tmp \
    --config.exposedports 7878/udp --config.exposedports 9464/tcp \
    --config.label "org.opencontainers.image.title=wasp" \
    --config.stopsignal SIGTERM
umoci gc --layout "$layout"

binary_size=$(stat -c %s "$root/wasp")
image_size=$(du -sb "$layout" | cut -f1)
say "$layout: binary $((binary_size / 1024 / 1024)) MiB stripped ($binary_size bytes), image $((image_size / 1024 / 1024)) MiB on disk ($image_size bytes, compressed layer)"
(cd "$layout" && pwd)
