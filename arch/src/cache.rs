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
