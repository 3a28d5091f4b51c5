//! Hostile-guest scenarios for the hardening items owned by "misc": trapped
//! AArch32 (T32) instructions from EL0, and guest RAM handed over unscrubbed.

mod common;

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn aarch32_el0_t32_traps_resume_on_the_next_instruction() {
    // A 16-bit WFI resumes 2 bytes on; an emulated 16-bit MMIO load inside an
    // IT block advances the IT state; a WFI that fails its condition never waits.
    common::build_images();
    let run = common::boot(
        "hostile-aarch32-wfi",
        &[
            "--guest",
            "hostile-guest",
            "--append",
            "hostile=aarch32-wfi",
            "--log",
            "info",
        ],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("HOSTILE aarch32-wfi: done");
    assert!(
        !run.output.contains("aarch32-wfi: FAIL"),
        "scenario checks failed\n{}",
        run.tail(30)
    );
    run.assert_line("aarch32-wfi: PASS");
    run.assert_line("undef-injected=0");
}

#[test]
fn guest_ram_is_handed_over_zeroed() {
    // With hv.testdev=on the hypervisor leaves a pattern in the frames the VM
    // is about to get (a previous owner's data); the guest must read zeros.
    common::build_images();
    let run = common::boot(
        "hostile-ram-zeroed",
        &[
            "--guest",
            "hostile-guest",
            "--mem",
            "64",
            "--append",
            "hostile=ram-zeroed",
            "--log",
            "info",
        ],
        TIMEOUT,
    );
    run.assert_clean_exit();
    // Every frame of the 64 MiB but the kernel's own (the guest's RAM starts
    // where its kernel lies, which is not copied): under 256 KiB.
    let left_kib: u64 = run
        .output
        .split("testdev: left a pattern in ")
        .nth(1)
        .and_then(|rest| rest.split(" KiB").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pattern line\n{}", run.tail(30)));
    assert!(
        (64 * 1024 - 256..=64 * 1024).contains(&left_kib),
        "pattern in {left_kib} KiB"
    );
    run.assert_line("vm1: 64 MiB of RAM zeroed in");
    run.assert_line("HOSTILE ram-zeroed: done");
    assert!(
        !run.output.contains("ram-zeroed: FAIL"),
        "guest saw a previous owner's data\n{}",
        run.tail(30)
    );
    run.assert_line("ram-zeroed: PASS");
    // Zeroed lazily: the guest's own first touches zeroed (nearly) all of it.
    assert!(run.hv_counter("[hv] exits:", "ram-first-touch") > 0);
    assert_eq!(
        run.hv_counter("[hv] ram:", "chunks-zeroed"),
        run.hv_counter("[hv] ram:", "chunks")
    );
}
