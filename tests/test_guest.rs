//! The bare-metal test guest under the hypervisor on QEMU: every trap path
//! prints a CHECK line, and the run must end by PSCI SYSTEM_OFF (status 0).

mod common;

use std::time::Duration;

const CHECKS: &[&str] = &[
    "hvc",
    "psci-version",
    "smc-trapped",
    "hvc-unknown-function",
    "sysreg-tvm-write",
    "sysreg-res1-bits",
    "sysreg-id-tid3",
    "wfi-and-virtual-timer",
    "stage2-abort-unmapped",
    "mmio-decode",
    "mmio-bad-width",
    "mmio-no-syndrome",
    "undef-unemulated-sysreg",
    "readonly-register-write",
    "virtio-mmio-transport",
    "still-running-after-bad-input",
];

#[test]
fn test_guest_passes_every_check_and_powers_off() {
    common::build_images();
    let run = common::boot(
        "test-guest",
        &["--guest", "test-guest", "--log", "info"],
        Duration::from_secs(60),
    );
    run.assert_clean_exit();
    for check in CHECKS {
        run.assert_line(&format!("CHECK {check}: ok"));
    }
    assert!(
        !run.output.contains(": FAIL"),
        "a check failed\n{}",
        run.tail(80)
    );
    run.assert_line(&format!("test-guest: {} passed, 0 failed", CHECKS.len()));
    run.assert_hv_line("guest requested SYSTEM_OFF");
    run.assert_hv_line("[hv] exits:");
}

#[test]
fn bad_guest_input_is_logged_and_the_hypervisor_keeps_running() {
    common::build_images();
    let run = common::boot(
        "test-guest-bad-input",
        &["--guest", "test-guest", "--log", "warn"],
        Duration::from_secs(60),
    );
    run.assert_clean_exit();
    // Each piece of bad input got an architectural answer and a log line…
    run.assert_hv_line("hits no device or memory: external abort");
    run.assert_hv_line("rejected by the device: external abort");
    run.assert_hv_line("not emulated (NoSyndrome)");
    run.assert_hv_line("of unemulated system register");
    // …except unknown SMCCC calls, an ordinary probe: counted, logged at debug only.
    assert!(run.hv_counter("[hv] events:", "unknown-smccc") >= 1);
    assert!(
        !run.output.contains("unknown SMCCC function"),
        "unknown SMCCC call logged at warn\n{}",
        run.tail(40)
    );
    // …and the guest went on to finish its checks.
    run.assert_line("CHECK still-running-after-bad-input: ok");
    // Log levels work: once `hv.log=warn` is parsed, no INFO lines (the VM's
    // creation and start are logged at INFO).
    assert!(
        !run.output.contains("INFO  vm1"),
        "INFO line at log level warn\n{}",
        run.tail(40)
    );
}

#[test]
fn bad_configuration_is_refused_with_a_reason() {
    common::build_images();
    // A guest "kernel" that is not an arm64 Image.
    let not_an_image = common::root().join("Cargo.toml");
    let run = common::boot(
        "bad-kernel",
        &[
            "--guest",
            "test-guest",
            "--kernel",
            not_an_image.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(
        !run.timed_out,
        "boot failure must be reported at once\n{}",
        run.tail(20)
    );
    run.assert_hv_line("boot failed: VM 'vm1': guest kernel: BadMagic");
    // A misspelt option is named, not ignored.
    let run = common::boot(
        "bad-option",
        &["--guest", "test-guest", "--hv-append", "hv.vcpu=2"],
        Duration::from_secs(60),
    );
    run.assert_hv_line("boot failed: command line: UnknownOption(\"hv.vcpu=2\")");
}

#[test]
fn hypervisor_panic_prints_its_location_and_halts() {
    common::build_images();
    let run = common::boot(
        "hypervisor-panic",
        &["--guest", "test-guest", "--append", "hv-test-panic"],
        Duration::from_secs(60),
    );
    run.assert_line("test-guest: asking the hypervisor to panic");
    run.assert_hv_line("] PANIC at src/hv/hypercall.rs:");
    run.assert_hv_line("test panic requested by vm1 vcpu0");
    // Halted: the guest never ran again, and nothing powered the machine off.
    assert!(!run.output.contains("did not panic"), "{}", run.tail(20));
    assert!(!run.output.contains("SYSTEM_OFF"), "{}", run.tail(20));
}
