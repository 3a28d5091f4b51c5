#!/usr/bin/env python3
"""Flatten an ELF's loadable segments into a raw binary (what QEMU's -kernel
expects for an arm64 Image). Replaces objcopy, which on an x86-64 Debian
host does not know aarch64 ELF files."""
import struct
import sys


def main(src: str, dst: str) -> None:
    data = open(src, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        sys.exit(f"{src}: not a little-endian ELF64 file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    segments = []
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, p_paddr, p_filesz, _memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize
        )
        if p_type == 1 and p_filesz > 0:  # PT_LOAD with file contents
            segments.append((p_paddr, data[p_offset : p_offset + p_filesz]))
    if not segments:
        sys.exit(f"{src}: no loadable segments")
    base = min(addr for addr, _ in segments)
    end = max(addr + len(body) for addr, body in segments)
    image = bytearray(end - base)
    for addr, body in segments:
        image[addr - base : addr - base + len(body)] = body
    open(dst, "wb").write(bytes(image))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
