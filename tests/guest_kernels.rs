//! The Debian guest kernels tools/fetch-guest provides: when the pinned
//! version has left the archive it falls back to the newest kernel of the
//! same flavour (and that kernel boots), and a second kernel configuration,
//! Debian's generic arm64 kernel, boots to userspace under the hypervisor.

mod common;

use std::process::Command;
use std::time::Duration;

const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// A version of the pinned package the archive does not have: what the
/// archive dropping the pin looks like.
const MISSING_VERSION: &str = "0.0-not-in-the-archive";

fn fetch_guest(args: &[&str]) -> (String, String) {
    let out = Command::new(common::root().join("tools/fetch-guest"))
        .args(args)
        .output()
        .expect("run tools/fetch-guest");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "tools/fetch-guest {args:?} failed\n{stderr}"
    );
    (stdout, stderr)
}

fn version_in(dir: &str) -> String {
    std::fs::read_to_string(format!("{dir}/VERSION"))
        .expect("VERSION recorded in the guest directory")
        .trim()
        .to_string()
}

#[test]
fn fetch_guest_falls_back_to_the_newest_kernel_of_the_flavour() {
    let (pinned_dir, _) = fetch_guest(&[]);
    let pinned = version_in(&pinned_dir);
    let (dir, stderr) = fetch_guest(&["--kernel-version", MISSING_VERSION]);
    assert!(
        stderr.contains("is not in the archive"),
        "no word of the fallback:\n{stderr}"
    );
    assert_ne!(dir, pinned_dir);
    let used = version_in(&dir);
    assert_ne!(used, pinned);
    assert!(
        used.starts_with("linux-image-6.1.0-") && used.contains("-cloud-arm64-unsigned="),
        "fallback is not a cloud kernel of the same series: {used}"
    );
    assert!(
        stderr.contains(&used),
        "fetch-guest does not name the version it used ({used}):\n{stderr}"
    );
    assert!(std::path::Path::new(&format!("{dir}/Image")).exists());

    // And a machine in that situation still boots Linux.
    common::build_images();
    let run = common::boot(
        "linux-fallback-kernel",
        &[
            "--guest",
            "linux",
            "--kernel-version",
            MISSING_VERSION,
            "--run",
            "smoke",
        ],
        BOOT_TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("GUEST-USERSPACE-READY");
    run.assert_line("guest: sum=42");
}

#[test]
fn generic_arm64_kernel_boots_to_userspace() {
    let (dir, _) = fetch_guest(&["--flavour", "arm64"]);
    let used = version_in(&dir);
    assert!(used.contains("-arm64-unsigned=") && !used.contains("cloud"));
    common::build_images();
    let run = common::boot(
        "linux-generic-arm64",
        &[
            "--guest",
            "linux",
            "--flavour",
            "arm64",
            "--run",
            "smoke",
            "--vcpus",
            "2",
        ],
        BOOT_TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("-arm64 (debian-kernel@lists.debian.org)");
    run.assert_line("GUEST-USERSPACE-READY");
    run.assert_line("nproc=2");
    run.assert_line("guest: sum=42");
    run.assert_line("guest requested SYSTEM_OFF");
}
