//! A lone VM's kernel runs where QEMU's loader put it: its RAM is claimed
//! around the blob instead of the kernel being copied (27 MB for Debian's
//! kernel: the largest single cost of the hypervisor's start-up under TCG).
//! With several VMs each kernel is still copied, so a VM can be restarted
//! from its images.

mod common;

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Where `tools/boot` has QEMU's loader put the guest kernel (tools/lib.sh).
const KERNEL_BLOB: &str = "0x49000000";

#[test]
fn a_lone_vm_runs_its_kernel_in_place() {
    common::build_images();
    let run = common::boot("in-place-test-guest", &["--guest", "test-guest"], TIMEOUT);
    run.assert_clean_exit();
    run.assert_hv_line(&format!(
        "vm1: kernel run in place at PA {KERNEL_BLOB} (not copied)"
    ));
    // The guest's RAM starts below the blob by the kernel's offset in RAM.
    let placed = run
        .output
        .lines()
        .find(|l| common::is_hv_line(l) && l.contains(" MiB RAM at PA "))
        .unwrap_or_else(|| panic!("no VM line\n{}", run.tail(30)));
    let field = |key: &str| {
        let rest = placed.split(key).nth(1).expect(key);
        let hex = rest.trim_start_matches("0x");
        let end = hex
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(hex.len());
        u64::from_str_radix(&hex[..end], 16).expect(key)
    };
    let ram_pa = field("RAM at PA ");
    let kernel_ipa = field("kernel at IPA ");
    assert_eq!(ram_pa + (kernel_ipa - 0x4000_0000), 0x4900_0000, "{placed}");
    assert!(
        !run.output.contains(": FAIL"),
        "test guest checks failed\n{}",
        run.tail(30)
    );
}

#[test]
fn several_vms_copy_their_kernels() {
    common::build_images();
    let config = common::root().join("configs/two-test-guests.toml");
    let run = common::boot(
        "in-place-two-test-guests",
        &["--config", config.to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    assert!(
        !run.output.contains("kernel run in place"),
        "a VM among several must keep its images for a restart\n{}",
        run.tail(30)
    );
}
