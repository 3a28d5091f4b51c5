//! Interrupt attacks (issue 8): each boots the hostile guest with one
//! scenario and checks the line it printed. A hypervisor that livelocks at
//! EL2 never lets the guest print, and the run times out.

mod common;

use std::time::Duration;

fn run_scenario(name: &str) -> common::Run {
    common::build_images();
    let append = format!("hostile={name}");
    let run = common::boot(
        &format!("hostile-{name}"),
        &[
            "--guest",
            "hostile-guest",
            "--log",
            "warn",
            "--append",
            &append,
        ],
        Duration::from_secs(40),
    );
    run.assert_clean_exit();
    run.assert_line(&format!("HOSTILE {name}: done"));
    run
}

#[test]
fn more_sgis_than_list_registers_are_all_delivered() {
    let run = run_scenario("sgi-overflow");
    run.assert_line("sgi-overflow: 8 SGIs sent, delivered mask 0xff");
}

#[test]
fn unbacked_level_spi_completes_without_livelock() {
    let run = run_scenario("spi-unbacked");
    run.assert_line("spi-unbacked: delivered 3 of 3, then 1023");
}

#[test]
fn vtimer_interrupt_follows_its_output() {
    let run = run_scenario("vtimer-deassert");
    for case in ["disable", "mask", "future"] {
        run.assert_line(&format!(
            "vtimer-deassert {case}: fired true, pending after false, delivered 1023"
        ));
    }
}

#[test]
fn vtimer_deactivated_through_icactiver_fires_again() {
    let run = run_scenario("vtimer-icactive");
    run.assert_line("vtimer-icactive: 3 of 3 timer interrupts, active after false");
}

#[test]
fn el1_physical_timer_is_emulated() {
    let run = run_scenario("ptimer");
    run.assert_line(
        "ptimer: tval ok true, delivered 30, status 0x5, pending after false, then 1023",
    );
}
