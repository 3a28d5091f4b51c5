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
    /// A virtio-blk request refused (bad request, buffers, or a disk error).
    DiskRequestFailed,
}

/// Number of [`Cause`] variants.
pub const CAUSES: usize = 11;

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
        Cause::DiskRequestFailed,
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
            Cause::DiskRequestFailed => "disk-request-failed",
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
    use crate::verify::Source;

    /// Two causes are enough to show that budgets are independent.
    const CAUSES_CHECKED: [Cause; 2] = [Cause::UnknownSmccc, Cause::MmioRejected];

    /// What the property says about one cause, tracked beside the limiter.
    #[derive(Debug, Clone, Copy, Default)]
    struct Ghost {
        /// Start of the current period as the property defines it: the first event, then
        /// the first event at least `period` ticks after the current period's start.
        period_start: Option<u64>,
        /// Lines printed in that period, summaries included.
        lines: u64,
        events: u64,
        /// Events the summaries printed so far reported.
        summarised: u64,
    }

    /// The limiter, the property's bookkeeping, and the time of the last event.
    struct State {
        limiter: LogLimiter,
        ghosts: [Ghost; 2],
        now: u64,
    }

    /// What holds between any two events (so after any sequence of them): the limiter's
    /// periods are the property's, its lines counter is the period's event lines (at most
    /// `burst`, one summary more at most), a suppressed event leaves no budget in the
    /// period, and the counts add up.
    fn invariant(s: &State) -> bool {
        let l = &s.limiter;
        CAUSES_CHECKED.iter().zip(&s.ghosts).all(|(cause, g)| {
            let c = &l.causes[*cause as usize];
            let lines = u64::from(c.lines_in_period);
            c.started == g.period_start.is_some()
                && g.period_start
                    .is_none_or(|start| start == c.period_start && start <= s.now)
                && c.lines_in_period <= l.burst
                && (g.lines == lines || g.lines == lines + 1)
                && (c.pending == 0 || c.lines_in_period == l.burst)
                && c.total == g.events
                && c.printed.checked_add(c.suppressed) == Some(c.total)
                && g.summarised.checked_add(c.pending) == Some(c.suppressed)
        })
    }

    /// One event of either cause at any later time, checked against the property.
    fn step(s: &mut State, src: &mut Source) {
        // Any gap under Kani; small ones in tests, so that periods both end and go on.
        let gap: u64 = if cfg!(kani) { src.any() } else { src.below(6) };
        assume!(s.now.checked_add(gap).is_some());
        s.now += gap;
        let which = src.below(2) as usize;
        let verdict = s.limiter.event(CAUSES_CHECKED[which], s.now);
        let g = &mut s.ghosts[which];
        g.events += 1;
        let period = s.limiter.period_ticks;
        if g.period_start.is_none_or(|start| s.now - start >= period) {
            cover!(g.period_start.is_some(), "a new period starts");
            g.period_start = Some(s.now);
            g.lines = 0;
        }
        if let Verdict::Print { suppressed_before } = verdict {
            g.lines += 1 + u64::from(suppressed_before > 0);
            g.summarised += suppressed_before;
            cover!(suppressed_before > 0, "a summary line is printed");
        }
        cover!(verdict == Verdict::Suppress, "an event is suppressed");
        assert!(g.lines <= u64::from(s.limiter.burst) + 1, "over budget");
        assert!(invariant(s));
    }

    /// Under Kani: any state the invariant allows (events far apart or close, any counts
    /// short of overflowing), which covers every sequence of events. Under test: the state
    /// after a few random events from the start, checked on the way.
    fn any_state(src: &mut Source, burst: u32, period: u64) -> State {
        let mut s = State {
            limiter: LogLimiter::new(burst, period),
            ghosts: [Ghost::default(); 2],
            now: 0,
        };
        #[cfg(kani)]
        {
            s.now = src.any();
            for (cause, g) in CAUSES_CHECKED.iter().zip(s.ghosts.iter_mut()) {
                let c = &mut s.limiter.causes[*cause as usize];
                *c = CauseState {
                    period_start: src.any(),
                    started: src.any(),
                    lines_in_period: src.any(),
                    pending: src.any(),
                    total: src.any(),
                    printed: src.any(),
                    suppressed: src.any(),
                };
                // Counters of 64 bits do not wrap in practice.
                kani::assume(c.total < u64::MAX);
                *g = Ghost {
                    period_start: c.started.then_some(c.period_start),
                    lines: u64::from(c.lines_in_period) + u64::from(src.any::<bool>()),
                    events: c.total,
                    summarised: src.any(),
                };
            }
            kani::assume(invariant(&s));
        }
        #[cfg(not(kani))]
        {
            assert!(invariant(&s));
            for _ in 0..src.below(12) {
                step(&mut s, src);
            }
        }
        s
    }

    proof! {
        /// However events arrive (any causes, any non-decreasing times, any budget and
        /// period), a cause never prints more than `burst` event lines plus one summary in a
        /// period (`period` ticks from the event that started it), and every event is
        /// counted: printed + suppressed = total, and the summaries plus what drain() still
        /// reports add up to the suppressed events. One event from any state the invariant
        /// allows, the start included, so every sequence of events.
        #[unwind(3)]
        fn never_over_budget_and_every_event_counted(src) {
            // Any budget and period under Kani; small ones in tests, which meet their limits.
            let burst: u32 = if cfg!(kani) { src.any() } else { src.below(4) as u32 };
            let period: u64 = if cfg!(kani) { src.any() } else { src.below(9) };
            let mut s = any_state(src, burst, period);
            step(&mut s, src);
            for (i, cause) in CAUSES_CHECKED.iter().enumerate() {
                let counts = s.limiter.counts(*cause);
                assert_eq!(counts.total, s.ghosts[i].events);
                assert_eq!(counts.printed + counts.suppressed, counts.total);
                assert_eq!(s.ghosts[i].summarised + s.limiter.drain(*cause), counts.suppressed);
            }
        }
    }
}
