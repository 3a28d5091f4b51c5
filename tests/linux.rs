//! Debian's unmodified arm64 cloud kernel with a busybox initramfs, under
//! the hypervisor on QEMU: boots to userspace with 1 and 4 vCPUs, runs a
//! command whose output is checked, and powers off with status 0. A guest
//! panic or hang fails the test with the console log attached.

mod common;

use std::time::Duration;

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn boot_linux(name: &str, vcpus: &str) -> common::Run {
    common::build_images();
    common::fetch_linux();
    let run = common::boot(
        name,
        &[
            "--guest", "linux", "--run", "smoke", "--vcpus", vcpus, "--log", "info",
        ],
        BOOT_TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("GUEST-USERSPACE-READY");
    run.assert_line("guest: sum=42");
    run.assert_line("reboot: Power down");
    run.assert_hv_line("guest requested SYSTEM_OFF");
    run.assert_hv_line("[hv] exits:");
    run
}

#[test]
fn linux_boots_to_userspace_on_one_vcpu() {
    let run = boot_linux("linux-1vcpu", "1");
    run.assert_line("nproc=1");
    run.assert_line("Machine model: hvrust virtual machine");
    run.assert_line("psci: PSCIv1.1 detected in firmware.");
}

#[test]
fn linux_boots_with_four_vcpus_on_their_own_cores() {
    let run = boot_linux("linux-4vcpu", "4");
    run.assert_line("nproc=4");
    run.assert_line("cpus-online=0-3");
    run.assert_line("smp: Brought up 1 node, 4 CPUs");
    for vcpu in 1..4 {
        run.assert_hv_line(&format!(
            "[hv cpu{vcpu}] INFO  vm1 vcpu{vcpu} starting on cpu{vcpu}"
        ));
    }
    // CPU hotplug: PSCI CPU_OFF, AFFINITY_INFO polling, CPU_ON of the parked vCPU.
    run.assert_line("psci: CPU3 killed");
    run.assert_line("guest: after-offline cpus-online=0-2");
    run.assert_line("guest: after-online cpus-online=0-3");
}

#[test]
fn console_input_reaches_the_guest_shell() {
    // Typing goes through the hypervisor: the physical PL011's receive
    // interrupt feeds the guest's emulated PL011 (its SPI 33 a level in the vGIC).
    common::build_images();
    common::fetch_linux();
    let input = [
        ("type 'poweroff -f'", "echo typed-$((3*5))\n"),
        ("typed-15", "poweroff -f\n"),
    ];
    let run = common::boot_with_input(
        "linux-console",
        &["--guest", "linux", "--vcpus", "2"],
        &input,
        BOOT_TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("typed-15");
    run.assert_hv_line("guest requested SYSTEM_OFF");
}

#[test]
fn guest_kernel_panic_fails_fast_with_the_log() {
    // A root file system that does not exist: the kernel panics, and with
    // panic=-1 it asks PSCI for SYSTEM_RESET, which ends QEMU (-no-reboot).
    common::build_images();
    common::fetch_linux();
    let run = common::boot(
        "linux-panic",
        &[
            "--guest",
            "linux",
            "--append",
            "rdinit=/nonexistent root=/dev/nowhere",
        ],
        BOOT_TIMEOUT,
    );
    assert!(
        !run.timed_out,
        "a panicking guest must not hang\n{}",
        run.tail(40)
    );
    run.assert_line("Kernel panic");
    run.assert_hv_line("guest requested SYSTEM_RESET");
}
