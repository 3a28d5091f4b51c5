//! Log lines a guest can trigger, rate-limited per VM and per cause (the
//! core's `log_limit`), and counted per CPU whatever the log level.
//!
//! Use [`guest_warn!`] (or [`guest_log!`] with a level) instead of `warn!`
//! wherever the guest decides how often a line is printed:
//! `guest_warn!(vcpu, Cause::MmioRejected, "{size}-byte read at {ipa:#x}")`.
//! The line gets a `vmN vcpuM: ` prefix; the first few of each cause in a
//! period are printed, then one "N more ... suppressed" summary per period.

use core::fmt::Arguments;

use hv_arch::read_sysreg;
use hvcore::exit_stats::EventCounters;
use hvcore::log_limit::{Cause, LogLimiter, Verdict};
use log::Level;

use super::vcpu::Vcpu;

/// Event lines of one cause printed per period, before suppression.
pub const BURST: u32 = 5;
/// The period, in seconds of the generic timer.
const PERIOD_SECONDS: u64 = 1;

/// A VM's limiter (the period is set from the timer's frequency).
pub fn new_limiter() -> LogLimiter {
    LogLimiter::new(BURST, read_sysreg!("CNTFRQ_EL0") * PERIOD_SECONDS)
}

/// Guest events by cause, one set per vCPU (indexed as `vcpu::COUNTERS`).
pub static EVENTS: [EventCounters; super::vcpu::COUNTER_SETS] =
    [const { EventCounters::new() }; super::vcpu::COUNTER_SETS];

/// Count one event of `cause` by `vcpu` (every event, whatever the log level).
#[inline(always)]
pub fn count(vcpu: &Vcpu, cause: Cause) {
    vcpu.events.record(cause);
}

/// Log an event of `cause` by `vcpu` at `level` if the VM's budget for
/// `cause` allows (the caller checked the level and counted the event).
#[inline(never)]
pub fn event(vcpu: &Vcpu, level: Level, cause: Cause, args: Arguments) {
    let now = read_sysreg!("CNTPCT_EL0");
    let verdict = vcpu.vm.log_limit.lock().event(cause, now);
    if let Verdict::Print { suppressed_before } = verdict {
        if suppressed_before > 0 {
            log::log!(
                level,
                "vm{}: {suppressed_before} more {} lines suppressed",
                vcpu.vm.vmid,
                cause.name()
            );
        }
        log::log!(level, "vm{} vcpu{}: {args}", vcpu.vm.vmid, vcpu.index);
    }
}

/// Log a guest-triggered event at `level`, rate-limited: see the module.
macro_rules! guest_log {
    ($vcpu:expr, $level:expr, $cause:expr, $($arg:tt)+) => {{
        let (level, cause) = ($level, $cause);
        $crate::hv::guest_log::count(&*$vcpu, cause);
        // The message is only formatted when it may be printed.
        if level <= log::max_level() {
            $crate::hv::guest_log::event(&*$vcpu, level, cause, format_args!($($arg)+));
        }
    }};
}

/// Warn about a guest-triggered event, rate-limited: see the module.
macro_rules! guest_warn {
    ($vcpu:expr, $cause:expr, $($arg:tt)+) => {
        guest_log!($vcpu, log::Level::Warn, $cause, $($arg)+)
    };
}
