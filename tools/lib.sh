# Shared helpers for the tools/ scripts. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
IMAGES="$CACHE/images"
TARGET=aarch64-unknown-none-softfloat
QEMU=qemu-system-aarch64
# Where the guest kernel blob waits in host RAM for the hypervisor to copy it:
# above QEMU's initrd (RAM+128 MiB) and device tree (just after it).
GUEST_KERNEL_ADDR=0x49000000

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install what a fresh Debian 12 machine lacks: QEMU for aarch64 and its
# image tools, cpio for the initramfs, e2fsprogs for disk images, and the
# bare-metal aarch64 Rust target.
ensure_dependencies() {
    local missing=()
    command -v "$QEMU" >/dev/null || missing+=(qemu-system-arm)
    command -v cpio >/dev/null || missing+=(cpio)
    command -v python3 >/dev/null || missing+=(python3)
    # Disk images: qemu-img (qcow2), mkfs.ext4/debugfs/e2fsck (tools/mkdisk, tests).
    command -v qemu-img >/dev/null || missing+=(qemu-utils)
    command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || missing+=(e2fsprogs)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! (cd "$ROOT" && rustup target list --installed 2>/dev/null) | grep -qx "$TARGET"; then
        say "adding Rust target $TARGET"
        (cd "$ROOT" && rustup target add "$TARGET")
    fi
}

# Build the hypervisor and the bare-metal guests; flatten them into Images.
build_images() {
    mkdir -p "$IMAGES"
    say "building hypervisor and guests for $TARGET"
    (cd "$ROOT" && cargo build --quiet --release --target "$TARGET" \
        -p hypervisor -p test-guest -p bench-guest -p hostile-guest)
    local out="$ROOT/target/$TARGET/release"
    for name in hypervisor test-guest bench-guest hostile-guest; do
        python3 "$ROOT/tools/elf2bin.py" "$out/$name" "$IMAGES/$name.bin"
    done
}

file_size() { stat -c %s "$1"; }
