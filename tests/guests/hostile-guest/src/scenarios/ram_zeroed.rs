//! Read every byte of guest RAM outside this image and the device tree:
//! all of it must be zero. A VM's RAM comes from host frames that may have
//! held another owner's data; with `hv.testdev=on` the hypervisor plays such
//! a previous owner (a byte pattern in every page) right before this VM's
//! RAM is allocated, so unscrubbed frames show up here.

use guest_rt::println;

extern "C" {
    static _start: u8;
    static __image_end: u8;
}

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

fn be32(addr: u64) -> u32 {
    u32::from_be(guest_rt::mmio_read::<u32>(addr as usize))
}

fn be64(addr: u64) -> u64 {
    (u64::from(be32(addr)) << 32) | u64::from(be32(addr + 4))
}

fn c_string_len(addr: u64) -> u64 {
    let mut len = 0;
    while guest_rt::mmio_read::<u8>((addr + len) as usize) != 0 {
        len += 1;
    }
    len
}

fn starts_with(addr: u64, prefix: &[u8]) -> bool {
    prefix
        .iter()
        .enumerate()
        .all(|(i, b)| guest_rt::mmio_read::<u8>(addr as usize + i) == *b)
}

/// The first `reg` (2 address cells, 2 size cells) of a `memory` node.
pub fn memory_range(dtb: u64) -> Option<(u64, u64)> {
    let structs = dtb + u64::from(be32(dtb + 8));
    let strings = dtb + u64::from(be32(dtb + 12));
    let mut at = structs;
    let mut in_memory = false;
    loop {
        match be32(at) {
            FDT_BEGIN_NODE => {
                in_memory = starts_with(at + 4, b"memory");
                at += 4 + (c_string_len(at + 4) + 1).next_multiple_of(4);
            }
            FDT_PROP => {
                let len = u64::from(be32(at + 4));
                let name = strings + u64::from(be32(at + 8));
                if in_memory && len >= 16 && starts_with(name, b"reg\0") {
                    return Some((be64(at + 12), be64(at + 20)));
                }
                at += 12 + len.next_multiple_of(4);
            }
            FDT_END_NODE | FDT_NOP => at += 4,
            _ => return None,
        }
    }
}

pub fn run(dtb: u64) {
    let Some((ram_base, ram_size)) = memory_range(dtb) else {
        println!("ram-zeroed: FAIL no memory node in the device tree");
        return;
    };
    let image = (
        core::ptr::addr_of!(_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    );
    let dtb_range = (dtb, dtb + u64::from(be32(dtb + 4)));
    let mut scanned = 0u64;
    let mut dirty_words = 0u64;
    let mut first_dirty = None;
    let mut addr = ram_base;
    while addr < ram_base + ram_size {
        let inside = |(start, end): (u64, u64)| addr >= start & !7 && addr < end;
        if inside(image) || inside(dtb_range) {
            addr += 8;
            continue;
        }
        let word = guest_rt::mmio_read::<u64>(addr as usize);
        if word != 0 {
            dirty_words += 1;
            first_dirty.get_or_insert((addr, word));
        }
        scanned += 8;
        addr += 8;
    }
    println!(
        "ram-zeroed: scanned {} KiB of {} MiB RAM outside image {:#x}..{:#x} and dtb, {dirty_words} non-zero words",
        scanned >> 10,
        ram_size >> 20,
        image.0,
        image.1
    );
    match first_dirty {
        None => println!("ram-zeroed: PASS"),
        Some((addr, word)) => {
            println!("ram-zeroed: FAIL first non-zero word {word:#x} at {addr:#x}")
        }
    }
}
