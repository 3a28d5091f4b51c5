//! Cache and TLB maintenance.

const CACHE_LINE: usize = 64;

/// Clean data cache lines covering `[start, start+len)` to the point of
/// coherency, so a guest that starts with its MMU and caches off sees what
/// the hypervisor wrote through its cacheable mapping.
pub fn clean_dcache_range(start: usize, len: usize) {
    let mut line = start & !(CACHE_LINE - 1);
    let end = start.saturating_add(len);
    while line < end {
        // SAFETY: DC CVAC on an identity-mapped address only cleans.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) line, options(nostack)) };
        line += CACHE_LINE;
    }
    crate::sysreg::dsb_sy();
}

/// Zero `[start, start+len)` and clean it to the point of coherency, so a
/// reader with caches off (a guest that has not enabled its MMU) sees the
/// zeros. Uses DC ZVA (one instruction per zeroing block, 64 bytes on
/// Cortex-A72) when DCZID_EL0 permits it and the range is block aligned;
/// otherwise 16-byte stores. The range must be Normal memory (DC ZVA faults
/// on Device memory) that nothing else uses.
pub fn zero_and_clean(start: usize, len: usize) {
    let dczid = read_sysreg!("DCZID_EL0");
    let block = 4usize << (dczid & 0xf);
    let zva_allowed = dczid & (1 << 4) == 0;
    const UNROLL: usize = 4 * CACHE_LINE;
    if zva_allowed
        && block == CACHE_LINE
        && start.is_multiple_of(UNROLL)
        && len.is_multiple_of(UNROLL)
    {
        // The common case (guest RAM chunks, tables): four lines per
        // iteration, 3.5 instructions per line instead of 12.5 (guest RAM
        // is zeroed at first touch, inside the guest's time).
        let end = start + len;
        let mut addr = start;
        while addr < end {
            // SAFETY: the caller owns the range; each DC ZVA zeroes one
            // 64-byte block of it, DC CVAC cleans it; the asm advances only
            // its copy of the address.
            unsafe {
                core::arch::asm!(
                    "dc zva, {a}", "dc cvac, {a}", "add {a}, {a}, #64",
                    "dc zva, {a}", "dc cvac, {a}", "add {a}, {a}, #64",
                    "dc zva, {a}", "dc cvac, {a}", "add {a}, {a}, #64",
                    "dc zva, {a}", "dc cvac, {a}",
                    a = inout(reg) addr => _,
                    options(nostack)
                )
            };
            addr += UNROLL;
        }
        crate::sysreg::dsb_sy();
    } else if zva_allowed
        && block >= CACHE_LINE
        && start.is_multiple_of(block)
        && len.is_multiple_of(block)
    {
        let mut addr = start;
        while addr < start + len {
            // SAFETY: the caller owns the range; DC ZVA zeroes one block of it.
            unsafe { core::arch::asm!("dc zva, {}", in(reg) addr, options(nostack)) };
            let mut line = addr;
            while line < addr + block {
                // SAFETY: cleaning only.
                unsafe { core::arch::asm!("dc cvac, {}", in(reg) line, options(nostack)) };
                line += CACHE_LINE;
            }
            addr += block;
        }
        crate::sysreg::dsb_sy();
    } else {
        // SAFETY: the caller owns the range.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, len) };
        clean_dcache_range(start, len);
    }
}

/// Copy `len` bytes from `src` to `dst` and clean the destination to the
/// point of coherency, like `copy_nonoverlapping` then [`clean_dcache_range`]
/// but in one pass of 64-byte lines (the guest kernel is tens of MiB: the
/// byte-generic `memcpy` of this soft-float target moves 8 bytes per
/// iteration, which made the copy most of the hypervisor's start-up).
///
/// # Safety
/// Both ranges are identity-mapped memory the caller owns, and they do not overlap.
pub unsafe fn copy_and_clean(dst: usize, src: usize, len: usize) {
    // DC CVAC cleans the whole line, so the bulk loop needs line-aligned
    // destination; 16-byte alignment of the source keeps LDP aligned.
    let bulk = if dst.is_multiple_of(CACHE_LINE) && src.is_multiple_of(16) {
        len & !(CACHE_LINE - 1)
    } else {
        0
    };
    if bulk > 0 {
        // SAFETY: within the caller's ranges (bulk <= len); only loads,
        // stores and cache cleans of those ranges.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldp {a}, {b}, [{src}], #16",
                "ldp {c}, {d}, [{src}], #16",
                "stp {a}, {b}, [{dst}]",
                "stp {c}, {d}, [{dst}, #16]",
                "ldp {a}, {b}, [{src}], #16",
                "ldp {c}, {d}, [{src}], #16",
                "stp {a}, {b}, [{dst}, #32]",
                "stp {c}, {d}, [{dst}, #48]",
                "dc cvac, {dst}",
                "add {dst}, {dst}, #64",
                "subs {n}, {n}, #64",
                "b.ne 2b",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                n = inout(reg) bulk => _,
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                options(nostack),
            );
        }
    }
    let rest = len - bulk;
    if rest > 0 {
        // SAFETY: the tail of the caller's ranges.
        unsafe {
            core::ptr::copy_nonoverlapping((src + bulk) as *const u8, (dst + bulk) as *mut u8, rest)
        };
    }
    // Cleans the tail and ends with the DSB that completes the bulk's cleans.
    clean_dcache_range(dst + bulk, rest);
}

/// Clean and invalidate one cache line by set/way (the guest's DC ISW/CSW/CISW,
/// emulated as clean+invalidate so no data is ever discarded).
pub fn clean_invalidate_set_way(value: u64) {
    // SAFETY: set/way maintenance on the local CPU; clean+invalidate loses nothing.
    unsafe { core::arch::asm!("dc cisw, {}", in(reg) value, options(nostack)) };
}

/// Invalidate this CPU's stage-1 and stage-2 TLB entries of the current
/// VMID. Local, not broadcast: each physical CPU flushes for itself when it
/// starts a vCPU, and no other CPU has to wait for it.
pub fn flush_local_guest_tlb() {
    // SAFETY: TLB maintenance only.
    unsafe {
        core::arch::asm!(
            "dsb nshst",
            "tlbi vmalls12e1",
            "dsb nsh",
            "isb",
            options(nostack)
        )
    };
}

/// Invalidate the whole instruction cache to the point of unification.
pub fn invalidate_icache() {
    // SAFETY: I-cache maintenance only.
    unsafe { core::arch::asm!("ic ialluis", "dsb ish", "isb", options(nostack)) };
}

/// Invalidate the stage-2 entries for `ipa` and all stage-1 entries of the
/// current VMID (they may cache the combined translation), inner shareable.
pub fn invalidate_guest_ipa(ipa: u64) {
    // SAFETY: TLB maintenance only.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi ipas2e1is, {}",
            "dsb ish",
            "tlbi vmalle1is",
            "dsb ish",
            "isb",
            in(reg) ipa >> 12,
            options(nostack)
        )
    };
}
