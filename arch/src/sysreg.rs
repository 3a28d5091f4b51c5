//! `mrs`/`msr` by register name, for registers `aarch64-cpu` does not cover.

/// Read a system register by its assembler name.
#[macro_export]
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading a system register has no memory effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack)) };
        value
    }};
}

/// Write a system register by its assembler name.
#[macro_export]
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the caller chose a register whose write is valid here.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nostack)) };
    }};
}

/// Instruction synchronisation barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}

/// Full-system data synchronisation barrier.
#[inline(always)]
pub fn dsb_sy() {
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Inner-shareable data synchronisation barrier.
#[inline(always)]
pub fn dsb_ish() {
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("dsb ish", options(nostack)) };
}

/// Inner-shareable store barrier, for page-table updates.
#[inline(always)]
pub fn dsb_ishst() {
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
}
