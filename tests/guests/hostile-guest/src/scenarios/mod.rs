//! One module per attack; registered in `SCENARIOS` by name.

mod aarch32_wfi;
mod bus_holes;
mod cpu_off_on;
mod cpu_on_bad_entry;
mod disk;
mod forge_hv_lines;
mod hvc_flood;
mod irq;
mod mmio_flood;
mod net;
mod probe_ipa;
mod ram_zeroed;
mod rezero;
mod timeshare;
mod uart_tx_off;
mod virtq;

/// A scenario's body; it gets the device tree address.
pub type Scenario = fn(u64);

/// Scenario name (the `hostile=` value) and its body.
pub const SCENARIOS: &[(&str, Scenario)] = &[
    ("hvc-flood", hvc_flood::run),
    ("aarch32-wfi", aarch32_wfi::run),
    ("ram-zeroed", ram_zeroed::run),
    ("sgi-overflow", irq::sgi_overflow),
    ("spi-unbacked", irq::spi_unbacked),
    ("vtimer-deassert", irq::vtimer_deassert),
    ("vtimer-icactive", irq::vtimer_icactive),
    ("ptimer", irq::ptimer),
    ("mmio-flood", mmio_flood::run),
    ("uart-tx-off", uart_tx_off::run),
    ("forge-hv-lines", forge_hv_lines::run),
    ("cpu-on-bad-entry", cpu_on_bad_entry::run),
    ("probe-ipa", probe_ipa::run),
    ("cpu-off-on", cpu_off_on::run),
    ("rezero", rezero::run),
    ("gic-storm", irq::gic_storm),
    ("irq-quiet", irq::irq_quiet),
    ("timeshare", timeshare::run),
    ("timeshare-smp", timeshare::run_smp),
    ("timeshare-pingpong", timeshare::run_pingpong),
    ("bus-holes", bus_holes::run),
    ("disk", disk::run),
    ("net", net::run),
];

/// Secondary vCPUs of scenarios that start them park here unless a scenario
/// needs them to do something else.
pub fn secondary_main(_cpu: u64) -> ! {
    if cpu_off_on::ACTIVE.load(core::sync::atomic::Ordering::SeqCst) {
        cpu_off_on::secondary();
    }
    if timeshare::ACTIVE.load(core::sync::atomic::Ordering::SeqCst) {
        timeshare::secondary();
    }
    if timeshare::PINGPONG.load(core::sync::atomic::Ordering::SeqCst) {
        timeshare::pingpong_secondary();
    }
    loop {
        // SAFETY: waiting only.
        unsafe { core::arch::asm!("wfi", options(nostack)) };
    }
}
