//! The hypervisor's own address space: an EL2 stage-1 identity map.
//!
//! One level-1 table of 1 GiB blocks covers a 39-bit space: the first
//! gigabyte (devices on QEMU virt: GIC, PL011, virtio-mmio) as Device-nGnRE,
//! the gigabytes holding RAM as Normal write-back. Identity mapping keeps
//! physical and virtual addresses equal, so frames handed out by the frame
//! allocator can be used directly as pointers.

use aarch64_cpu::registers::{Writeable, MAIR_EL2, SCTLR_EL2, TCR_EL2, TTBR0_EL2};

const GIB: u64 = 1 << 30;
const ENTRIES: usize = 512;

const ATTR_DEVICE: u64 = 0; // MAIR index 0
const ATTR_NORMAL: u64 = 1; // MAIR index 1
const BLOCK: u64 = 0b01;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const XN: u64 = 1 << 54;

#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

static mut EL2_L1: Table = Table([0; ENTRIES]);

/// Build the identity map for RAM `[ram_start, ram_end)` and devices below 1 GiB.
/// Called once by the boot CPU while the MMU is still off.
pub fn build_identity_map(ram_start: u64, ram_end: u64) {
    // SAFETY: runs once on the boot CPU before any other CPU uses the table.
    let table = unsafe { &mut *core::ptr::addr_of_mut!(EL2_L1) };
    table.0[0] = BLOCK | AF | (ATTR_DEVICE << 2) | XN;
    let first = (ram_start / GIB) as usize;
    let last = (ram_end.div_ceil(GIB) as usize).min(ENTRIES);
    for (index, entry) in table.0.iter_mut().enumerate().take(last).skip(first.max(1)) {
        *entry = (index as u64 * GIB) | BLOCK | AF | SH_INNER | (ATTR_NORMAL << 2);
    }
}

/// TCR_EL2: T0SZ=25 (39-bit VA), inner/outer write-back, inner shareable,
/// 4 KiB granule, 40-bit PA; bits 31 and 23 are RES1.
const TCR_EL2_VALUE: u64 =
    25 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (0b010 << 16) | (1 << 23) | (1 << 31);
/// SCTLR_EL2 RES1 bits (non-VHE): 4, 5, 11, 16, 18, 22, 23, 28, 29.
const SCTLR_EL2_RES1: u64 = 0x30C5_0830;
const SCTLR_EL2_M: u64 = 1 << 0;
const SCTLR_EL2_C: u64 = 1 << 2;
const SCTLR_EL2_SA: u64 = 1 << 3;
const SCTLR_EL2_I: u64 = 1 << 12;

/// Turn on the EL2 MMU and caches with the identity map on this CPU.
pub fn enable() {
    MAIR_EL2.write(
        MAIR_EL2::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck
            + MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
    );
    TCR_EL2.set(TCR_EL2_VALUE);
    TTBR0_EL2.set(core::ptr::addr_of!(EL2_L1) as u64);
    // SAFETY: make the table visible to the walker and drop stale TLB entries.
    unsafe { core::arch::asm!("dsb sy", "tlbi alle2", "dsb sy", "isb", options(nostack)) };
    SCTLR_EL2.set(SCTLR_EL2_RES1 | SCTLR_EL2_M | SCTLR_EL2_C | SCTLR_EL2_SA | SCTLR_EL2_I);
    crate::sysreg::isb();
}
