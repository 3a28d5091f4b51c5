//! Rate limit for log lines a guest can trigger.
//!
//! Bad guest input is the normal case, and each piece of it used to print a
//! line on the UART at EL2 with interrupts masked: a guest could make the
//! hypervisor spend its time printing (5000 unknown hypercalls cost 40 times
//! more with logging on) or flood the console without end (a vCPU started at
//! a bad entry point faults again on every vector fetch).
//!
//! Each VM has one [`LogLimiter`]; each [`Cause`] gets its own budget. Time
//! is in ticks (the glue passes the generic timer's counter). A cause's
//! period starts with an event and lasts `period` ticks; the next event
//! after it starts the next period. In each period a cause prints at most
//! `burst` event lines, and the first event line of a period is preceded by
//! one summary line "N more suppressed" when earlier events were suppressed.
//! So a cause prints at most `burst + 1` lines per period, however fast the
//! guest triggers it, and every event is accounted for:
//! printed + suppressed = total, and the summaries (plus what is still
//! pending, see [`LogLimiter::drain`]) add up to the suppressed events.

/// Why a guest made the hypervisor want to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Cause {
    /// An HVC/SMC function ID nobody implements (answered NOT_SUPPORTED).
    UnknownSmccc = 0,
    /// A trapped system register the hypervisor does not emulate (UNDEF).
    SysRegUndefined,
    /// A data abort that cannot be emulated (no syndrome, bad register...).
    DataAbortNotEmulated,
    /// An access to an IPA with no device or memory, or not permitted.
    MmioUnmapped,
    /// An access a device refused (bad width, bad offset).
    MmioRejected,
    /// An instruction fetch from an unmapped IPA.
    InstructionAbort,
    /// An exception class the hypervisor does not handle (UNDEF).
    UnhandledException,
    /// An SError taken from the guest.
    SError,
    /// An exception from AArch32 guest code.
    AArch32,
    /// A PSCI call refused (CPU_ON of a running vCPU, bad entry point...).
    PsciRefused,
}

/// Number of [`Cause`] variants.
pub const CAUSES: usize = 10;

impl Cause {
    /// All causes, in counter order.
    pub const ALL: [Cause; CAUSES] = [
        Cause::UnknownSmccc,
        Cause::SysRegUndefined,
        Cause::DataAbortNotEmulated,
        Cause::MmioUnmapped,
        Cause::MmioRejected,
        Cause::InstructionAbort,
        Cause::UnhandledException,
        Cause::SError,
        Cause::AArch32,
        Cause::PsciRefused,
    ];

    /// A short name for logs and statistics.
    pub fn name(self) -> &'static str {
        match self {
            Cause::UnknownSmccc => "unknown-smccc",
            Cause::SysRegUndefined => "sysreg-undef",
            Cause::DataAbortNotEmulated => "abort-not-emulated",
            Cause::MmioUnmapped => "mmio-unmapped",
            Cause::MmioRejected => "mmio-rejected",
            Cause::InstructionAbort => "fetch-abort",
            Cause::UnhandledException => "unhandled-exception",
            Cause::SError => "serror",
            Cause::AArch32 => "aarch32",
            Cause::PsciRefused => "psci-refused",
        }
    }
}

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Print the event's line; if `suppressed_before` > 0, first print a
    /// summary line saying that many earlier events were not printed.
    Print { suppressed_before: u64 },
    /// Print nothing (the event is counted).
    Suppress,
}

#[derive(Debug, Clone, Copy, Default)]
struct CauseState {
    /// When the current period started (time that seems to go backwards,
    /// e.g. counters read on two CPUs, stays in the current period).
    period_start: u64,
    started: bool,
    lines_in_period: u32,
    /// Suppressed events not yet reported by a summary.
    pending: u64,
    total: u64,
    printed: u64,
    suppressed: u64,
}

/// Per-VM, per-cause log budget.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    burst: u32,
    period_ticks: u64,
    causes: [CauseState; CAUSES],
}

/// Counts of one cause, for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CauseCounts {
    pub total: u64,
    pub printed: u64,
    pub suppressed: u64,
}

impl LogLimiter {
    /// At most `burst` event lines (and one summary) per cause per
    /// `period_ticks` ticks. A zero period is taken as one tick.
    pub const fn new(burst: u32, period_ticks: u64) -> Self {
        LogLimiter {
            burst,
            period_ticks: if period_ticks == 0 { 1 } else { period_ticks },
            causes: [CauseState {
                period_start: 0,
                started: false,
                lines_in_period: 0,
                pending: 0,
                total: 0,
                printed: 0,
                suppressed: 0,
            }; CAUSES],
        }
    }

    /// One event of `cause` at time `now` (ticks): print it or not.
    pub fn event(&mut self, cause: Cause, now: u64) -> Verdict {
        let state = &mut self.causes[cause as usize];
        state.total += 1;
        // No division: cheap on the exit path, and for the prover.
        let period_over =
            now >= state.period_start && now - state.period_start >= self.period_ticks;
        if !state.started || period_over {
            state.started = true;
            state.period_start = now;
            state.lines_in_period = 0;
        }
        if state.lines_in_period < self.burst {
            state.lines_in_period += 1;
            state.printed += 1;
            Verdict::Print {
                suppressed_before: core::mem::take(&mut state.pending),
            }
        } else {
            state.pending += 1;
            state.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// Suppressed events of `cause` no summary has reported yet (reported
    /// now: e.g. before the statistics at power-off).
    pub fn drain(&mut self, cause: Cause) -> u64 {
        core::mem::take(&mut self.causes[cause as usize].pending)
    }

    /// How many events of `cause` were seen, printed and suppressed.
    pub fn counts(&self, cause: Cause) -> CauseCounts {
        let s = &self.causes[cause as usize];
        CauseCounts {
            total: s.total,
            printed: s.printed,
            suppressed: s.suppressed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_burst_printed_then_suppressed_then_one_summary() {
        let mut l = LogLimiter::new(3, 100);
        let verdicts: Vec<Verdict> = (0..10).map(|t| l.event(Cause::UnknownSmccc, t)).collect();
        assert_eq!(
            verdicts[..3],
            [Verdict::Print {
                suppressed_before: 0
            }; 3]
        );
        assert!(verdicts[3..].iter().all(|v| *v == Verdict::Suppress));
        // Next period: the summary comes with the first line.
        assert_eq!(
            l.event(Cause::UnknownSmccc, 150),
            Verdict::Print {
                suppressed_before: 7
            }
        );
        assert_eq!(
            l.counts(Cause::UnknownSmccc),
            CauseCounts {
                total: 11,
                printed: 4,
                suppressed: 7
            }
        );
        assert_eq!(l.drain(Cause::UnknownSmccc), 0);
    }

    #[test]
    fn causes_have_separate_budgets() {
        let mut l = LogLimiter::new(1, 100);
        assert!(matches!(
            l.event(Cause::MmioRejected, 0),
            Verdict::Print { .. }
        ));
        assert_eq!(l.event(Cause::MmioRejected, 1), Verdict::Suppress);
        assert!(matches!(
            l.event(Cause::MmioUnmapped, 2),
            Verdict::Print { .. }
        ));
    }

    #[test]
    fn time_going_backwards_stays_in_the_current_period() {
        let mut l = LogLimiter::new(1, 10);
        assert!(matches!(l.event(Cause::SError, 25), Verdict::Print { .. }));
        assert_eq!(l.event(Cause::SError, 3), Verdict::Suppress);
        assert_eq!(l.event(Cause::SError, 34), Verdict::Suppress);
        assert_eq!(
            l.event(Cause::SError, 35),
            Verdict::Print {
                suppressed_before: 2
            }
        );
    }

    #[test]
    fn drain_reports_what_no_summary_did() {
        let mut l = LogLimiter::new(0, 10);
        for t in 0..5 {
            assert_eq!(l.event(Cause::PsciRefused, t), Verdict::Suppress);
        }
        assert_eq!(l.drain(Cause::PsciRefused), 5);
        assert_eq!(l.drain(Cause::PsciRefused), 0);
        assert_eq!(l.counts(Cause::PsciRefused).suppressed, 5);
    }

    #[test]
    fn zero_period_does_not_divide_by_zero() {
        let mut l = LogLimiter::new(1, 0);
        assert!(matches!(
            l.event(Cause::AArch32, u64::MAX),
            Verdict::Print { .. }
        ));
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in Cause::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
            for b in &Cause::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    const EVENTS: usize = 6;

    proof! {
        /// However events arrive (any causes, any non-decreasing times, any
        /// budget), a cause never prints more than `burst` event lines plus
        /// one summary in a period (`period` ticks from the event that
        /// started it), and every event is counted: printed + suppressed =
        /// total, and the summaries plus what drain() still reports add up
        /// to the suppressed events.
        #[unwind(8)]
        fn never_over_budget_and_every_event_counted(src) {
            let burst = src.below(4) as u32;
            let period = 1 + src.below(8);
            let mut limiter = LogLimiter::new(burst, period);
            let mut now = 0u64;
            // Per cause (two are enough to show independence): lines in the current period.
            let causes = [Cause::UnknownSmccc, Cause::MmioRejected];
            let mut lines = [0u32; 2];
            let mut period_start: [Option<u64>; 2] = [None; 2];
            let mut summarised = [0u64; 2];
            let mut events = [0u64; 2];
            for _ in 0..EVENTS {
                now += src.below(6);
                let which = src.below(2) as usize;
                let verdict = limiter.event(causes[which], now);
                events[which] += 1;
                if period_start[which].is_none_or(|start| now - start >= period) {
                    period_start[which] = Some(now);
                    lines[which] = 0;
                }
                if let Verdict::Print { suppressed_before } = verdict {
                    lines[which] += 1 + u32::from(suppressed_before > 0);
                    summarised[which] += suppressed_before;
                    cover!(suppressed_before > 0, "a summary line is printed");
                }
                cover!(verdict == Verdict::Suppress, "an event is suppressed");
                assert!(lines[which] <= burst + 1);
            }
            for (i, cause) in causes.iter().enumerate() {
                let counts = limiter.counts(*cause);
                assert_eq!(counts.total, events[i]);
                assert_eq!(counts.printed + counts.suppressed, counts.total);
                assert_eq!(summarised[i] + limiter.drain(*cause), counts.suppressed);
            }
        }
    }
}
