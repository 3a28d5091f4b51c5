//! Counters of VM exits by cause, kept per physical CPU so the hot path never
//! contends, and summed when printed (e.g. at guest power-off) or read by the
//! test guest's statistics hypercall.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::log_limit::{Cause, CAUSES};

/// Why the guest stopped running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum ExitCause {
    Hvc = 0,
    Smc,
    SysRegTrap,
    Wfi,
    Wfe,
    MmioEmulated,
    AbortInjected,
    UndefInjected,
    Irq,
    Other,
    /// A stage-2 fault on guest RAM not yet zeroed (see `lazy_zero`).
    RamFirstTouch,
}

/// Number of [`ExitCause`] variants.
pub const EXIT_CAUSES: usize = 11;

impl ExitCause {
    /// All causes, in counter order.
    pub const ALL: [ExitCause; EXIT_CAUSES] = [
        ExitCause::Hvc,
        ExitCause::Smc,
        ExitCause::SysRegTrap,
        ExitCause::Wfi,
        ExitCause::Wfe,
        ExitCause::MmioEmulated,
        ExitCause::AbortInjected,
        ExitCause::UndefInjected,
        ExitCause::Irq,
        ExitCause::Other,
        ExitCause::RamFirstTouch,
    ];

    /// The cause with counter index `index`, if any (used by the statistics hypercall).
    pub fn from_index(index: u64) -> Option<ExitCause> {
        Self::ALL.get(usize::try_from(index).ok()?).copied()
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            ExitCause::Hvc => "hvc",
            ExitCause::Smc => "smc",
            ExitCause::SysRegTrap => "sysreg",
            ExitCause::Wfi => "wfi",
            ExitCause::Wfe => "wfe",
            ExitCause::MmioEmulated => "mmio",
            ExitCause::AbortInjected => "abort-injected",
            ExitCause::UndefInjected => "undef-injected",
            ExitCause::Irq => "irq",
            ExitCause::Other => "other",
            ExitCause::RamFirstTouch => "ram-first-touch",
        }
    }
}

/// Exit counters of one physical CPU.
pub struct ExitCounters {
    counts: [AtomicU64; EXIT_CAUSES],
}

impl ExitCounters {
    pub const fn new() -> Self {
        ExitCounters {
            counts: [const { AtomicU64::new(0) }; EXIT_CAUSES],
        }
    }

    /// Count one exit. Only the owning CPU writes, so a plain load and store
    /// suffice (no atomic read-modify-write on the exit path); readers on
    /// other CPUs may see a slightly old value.
    #[inline]
    pub fn record(&self, cause: ExitCause) {
        let counter = &self.counts[cause as usize];
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// The count for one cause.
    pub fn get(&self, cause: ExitCause) -> u64 {
        self.counts[cause as usize].load(Ordering::Relaxed)
    }
}

impl Default for ExitCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of guest-triggered events (the causes of rate-limited log
/// lines) of one physical CPU: every event is counted here, whether its
/// line was printed, suppressed or below the log level.
pub struct EventCounters {
    counts: [AtomicU64; CAUSES],
}

impl EventCounters {
    pub const fn new() -> Self {
        EventCounters {
            counts: [const { AtomicU64::new(0) }; CAUSES],
        }
    }

    /// Count one event (owning CPU only, as [`ExitCounters::record`]).
    #[inline]
    pub fn record(&self, cause: Cause) {
        let counter = &self.counts[cause as usize];
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// The count for one cause.
    pub fn get(&self, cause: Cause) -> u64 {
        self.counts[cause as usize].load(Ordering::Relaxed)
    }
}

impl Default for EventCounters {
    fn default() -> Self {
        Self::new()
    }
}

/// Sum one event cause over several CPUs' counters.
pub fn total_events(per_cpu: &[EventCounters], cause: Cause) -> u64 {
    per_cpu.iter().map(|c| c.get(cause)).sum()
}

/// Sum one cause over several CPUs' counters.
pub fn total(per_cpu: &[ExitCounters], cause: ExitCause) -> u64 {
    per_cpu.iter().map(|c| c.get(cause)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_across_cpus() {
        let cpus = [ExitCounters::new(), ExitCounters::new()];
        cpus[0].record(ExitCause::Hvc);
        cpus[1].record(ExitCause::Hvc);
        cpus[1].record(ExitCause::Wfi);
        assert_eq!(total(&cpus, ExitCause::Hvc), 2);
        assert_eq!(total(&cpus, ExitCause::Wfi), 1);
        assert_eq!(total(&cpus, ExitCause::Irq), 0);
    }

    #[test]
    fn events_sum_across_cpus() {
        let cpus = [EventCounters::new(), EventCounters::new()];
        cpus[0].record(Cause::UnknownSmccc);
        cpus[1].record(Cause::UnknownSmccc);
        cpus[1].record(Cause::MmioRejected);
        assert_eq!(total_events(&cpus, Cause::UnknownSmccc), 2);
        assert_eq!(total_events(&cpus, Cause::MmioRejected), 1);
        assert_eq!(total_events(&cpus, Cause::SError), 0);
    }

    #[test]
    fn index_round_trips_and_rejects_unknown() {
        for (i, c) in ExitCause::ALL.iter().enumerate() {
            assert_eq!(ExitCause::from_index(i as u64), Some(*c));
        }
        assert_eq!(ExitCause::from_index(EXIT_CAUSES as u64), None);
        assert_eq!(ExitCause::from_index(u64::MAX), None);
    }
}
