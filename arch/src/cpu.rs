//! Small CPU helpers: identity, waiting, exception state.

use aarch64_cpu::registers::{Readable, MPIDR_EL1};

/// This CPU's index: Aff0 of MPIDR_EL1 (QEMU virt numbers CPUs 0..8 on Aff0).
#[inline]
pub fn current_index() -> usize {
    (MPIDR_EL1.get() & 0xff) as usize
}

/// The raw affinity fields of MPIDR_EL1 (Aff3..Aff0), as PSCI wants them.
#[inline]
pub fn current_mpidr() -> u64 {
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// Wait for an interrupt (or event); returns on any pending interrupt even when masked.
#[inline(always)]
pub fn wfi() {
    // SAFETY: WFI only waits.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
}

/// Wait for an event.
#[inline(always)]
pub fn wfe() {
    // SAFETY: WFE only waits.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
}

/// Tell the CPU (or an emulator's scheduler) that this one is spin-waiting.
#[inline(always)]
pub fn yield_hint() {
    // SAFETY: YIELD is a hint with no architectural effect.
    unsafe { core::arch::asm!("yield", options(nomem, nostack)) };
}

/// Signal an event to all CPUs (wakes WFE).
#[inline(always)]
pub fn sev() {
    // SAFETY: SEV only signals.
    unsafe { core::arch::asm!("sev", options(nomem, nostack)) };
}

/// Stop this CPU for good (interrupts masked), e.g. after a panic.
pub fn halt() -> ! {
    loop {
        // SAFETY: masking interrupts at EL2 and waiting has no memory effects.
        unsafe { core::arch::asm!("msr daifset, #0xf", "wfi", options(nomem, nostack)) };
    }
}
