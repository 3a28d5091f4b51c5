//! The hypervisor's spin lock: a waiter executes YIELD between attempts.
//!
//! Under QEMU's round-robin TCG (one host thread runs every vCPU in turn, as
//! with `-icount`), a CPU that spins on a lock whose holder's time slice has
//! ended spins until its own slice ends (the next timer deadline), while
//! YIELD hands the host thread to the next CPU at once. On hardware YIELD
//! is only a hint (an SMT core gives way to its sibling).

/// Lock waiting that yields the CPU's turn.
pub struct YieldRelax;

impl spin::relax::RelaxStrategy for YieldRelax {
    #[inline(always)]
    fn relax() {
        hv_arch::cpu::yield_hint();
    }
}

/// A spin lock whose waiters yield ([`YieldRelax`]).
pub type Mutex<T> = spin::mutex::Mutex<T, YieldRelax>;
