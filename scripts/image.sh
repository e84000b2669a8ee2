#!/usr/bin/env bash
# Builds wasp's container image: the release `wasp` of the wheels (glibc, linked against
# glibc 2.17 by zig: see scripts/wheels.sh), the few shared libraries it loads (glibc's
# loader, libc, libm, libpthread and libdl, from Debian), for this machine's architecture
# the Python runner's code compiled ahead (/code, as the wheel ships it), and nothing else
# (no shell, no base image: nothing is pulled from any registry), run as a non-root user
# (65532). Debian's `umoci` writes the OCI layout.
#
#   scripts/image.sh [x86_64|aarch64] [OUT]   -> OUT/wasp-<arch> (an OCI layout, tag `latest`)
#
# OUT defaults to target/image. The last line on stdout is the layout's path; the sizes go
# to stderr. Load it with e.g. `skopeo copy oci:target/image/wasp-x86_64:latest
# docker-daemon:wasp:latest`, or push it with `skopeo copy ... docker://registry/wasp`.
#
# What it needs, installed when missing (apt-get, as root or with passwordless sudo):
# `umoci`, and for aarch64 Debian's aarch64 glibc (libc6-arm64-cross), whose files go into
# the image. The binary is the one the
# aarch64 and x86-64 wheels hold: one release build per architecture serves both. For this
# machine's architecture, also wasp's Python runner (`scripts/wheels.sh runner`, which
# builds it where missing, as the wheels need it: see scripts/wheels.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

arch=${1:-$(uname -m)}
out=${2:-target/image}
case $arch in
x86_64)
    oci_arch=amd64
    libdir=/lib/x86_64-linux-gnu
    packages=(umoci)
    ;;
aarch64 | arm64)
    arch=aarch64
    oci_arch=arm64
    # Debian's aarch64 glibc for cross builds: the files the image's loader searches for in
    # /lib/aarch64-linux-gnu.
    libdir=/usr/aarch64-linux-gnu/lib
    packages=(umoci libc6-arm64-cross)
    ;;
*)
    echo "image.sh: unknown architecture $arch (x86_64 or aarch64)" >&2
    exit 2
    ;;
esac

say() { echo "image.sh: $*" >&2; }

apt_install image.sh "${packages[@]}" || exit 1

binary=$(scripts/wheels.sh binary "$arch")

# The root: the binary, its loader and libraries, a user and group for it, a /tmp.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$binary" "$root/wasp"
interpreter=$(readelf -l "$root/wasp" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[[ -n $interpreter ]] || {
    say "$binary has no program interpreter: not the dynamically linked build expected"
    exit 1
}
mkdir -p "$root$(dirname "$interpreter")" "$root/lib/$arch-linux-gnu"
cp -L "$libdir/$(basename "$interpreter")" "$root$interpreter"
# The libraries it needs, and theirs: glibc's loader searches /lib/<arch>-linux-gnu, as on
# Debian.
needed=$(readelf -d "$root/wasp" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for library in $needed; do
    [[ $library == "$(basename "$interpreter")" ]] ||
        cp -L "$libdir/$library" "$root/lib/$arch-linux-gnu/$library"
done
for library in $(readelf -d "$root"/lib/"$arch"-linux-gnu/* | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u); do
    [[ -e $root/lib/$arch-linux-gnu/$library || $library == "$(basename "$interpreter")" ]] ||
        cp -L "$libdir/$library" "$root/lib/$arch-linux-gnu/$library"
done
# The image of this machine's architecture (x86-64 here) holds the Python runner's code
# compiled ahead, as that wheel does, and says where (WASP_SHIPPED_CODE_DIR): a new
# container's node runs its first Python job without compiling the runner. Root's, and
# nobody else's to write.
shipped=()
if [[ $arch == "$(uname -m)" ]]; then
    runner=$(scripts/wheels.sh runner)
    "$binary" precompile "$runner" --out "$root/code" >/dev/null
    chmod 0755 "$root/code"
    chmod 0644 "$root"/code/*
    shipped=(--config.env WASP_SHIPPED_CODE_DIR=/code)
fi
contents="wasp ($arch, glibc), its loader and libraries"
[[ ${#shipped[@]} -eq 0 ]] || contents+=", the Python runner's code"
echo "nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin" >"$root/etc/passwd"
echo "nonroot:x:65532:" >"$root/etc/group"

layout=$out/wasp-$arch
rm -rf "$layout"
mkdir -p "$out"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci insert --image "$layout:latest" --history.comment "$contents" "$root" /
umoci config --image "$layout:latest" \
    --architecture "$oci_arch" --os linux \
    --config.user 65532:65532 ${shipped[@]+"${shipped[@]}"} \
    --config.entrypoint /wasp --config.cmd node --config.cmd --help \
    --config.workingdir /tmp \
    --config.exposedports 7878/udp --config.exposedports 9464/tcp \
    --config.label "org.opencontainers.image.title=wasp" \
    --config.stopsignal SIGTERM
umoci gc --layout "$layout"

binary_size=$(stat -c %s "$root/wasp")
image_size=$(du -sb "$layout" | cut -f1)
libraries_size=$(du -sb "$root/lib" | cut -f1)
libraries_size=$((libraries_size + $(du -sb "$root$interpreter" | cut -f1)))
say "$layout: binary $((binary_size / 1024 / 1024)) MiB stripped ($binary_size bytes), loader and libraries $((libraries_size / 1024)) KiB, image $((image_size / 1024 / 1024)) MiB on disk ($image_size bytes, compressed layer)"
(cd "$layout" && pwd)
