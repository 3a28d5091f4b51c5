//! One module per attack; registered in `SCENARIOS` by name.

mod hvc_flood;

/// Scenario name (the `hostile=` value) and its body.
pub const SCENARIOS: &[(&str, fn(u64))] = &[("hvc-flood", hvc_flood::run)];

/// Secondary vCPUs of scenarios that start them park here unless a scenario
/// needs them to do something else.
pub fn secondary_main(_cpu: u64) -> ! {
    loop {
        // SAFETY: waiting only.
        unsafe { core::arch::asm!("wfi", options(nostack)) };
    }
}
