//! Per-physical-CPU storage that only its own CPU touches.

use core::cell::UnsafeCell;

use hv_arch::MAX_CPUS;

/// One `T` per physical CPU. Each CPU only ever accesses its own slot (in
/// its exit handlers, which run with interrupts masked), so no lock is
/// needed and none is taken on the exit path.
pub struct PerCpu<T> {
    slots: [UnsafeCell<T>; MAX_CPUS],
}

// SAFETY: slots are never shared between CPUs (see the type's contract).
unsafe impl<T: Send> Sync for PerCpu<T> {}

impl<T> PerCpu<T> {
    pub const fn new(slots: [UnsafeCell<T>; MAX_CPUS]) -> Self {
        PerCpu { slots }
    }

    /// This CPU's slot.
    #[allow(clippy::mut_from_ref)]
    pub fn current(&self) -> &mut T {
        // SAFETY: only the current CPU accesses its slot, and handlers on one
        // CPU never nest (interrupts stay masked at EL2).
        unsafe { &mut *self.slots[hv_arch::cpu::current_index() % MAX_CPUS].get() }
    }
}
