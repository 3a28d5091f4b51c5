//! A hostile VM attacks its virtio-blk disk (tests/guests/hostile-guest,
//! scenario `disk`): bad requests, malformed chains, a flood. Every answer
//! must be the virtio specification's, the read-only disk must not change,
//! the hypervisor's log must stay bounded, and a VM beside it must not
//! notice.

mod common;

use std::process::Command;
use std::time::Duration;

use common::config_file;

/// Requests completed on the physical disk's interrupt (the default).
#[test]
fn malformed_disk_requests_get_the_specs_answers_and_hurt_nobody() {
    attack_the_disk("hv.diskirq=on");
}

/// Requests waited for at the notification.
#[test]
fn the_same_attack_with_requests_waited_for_at_the_notification() {
    attack_the_disk("hv.diskirq=off");
}

fn attack_the_disk(mode: &str) {
    common::build_images();
    let dir = common::root().join("target/disks");
    std::fs::create_dir_all(&dir).unwrap();
    // One image per mode: the two tests may run at once.
    let image = dir.join(format!("hostile-{}.img", mode.replace('=', "-")));
    let status = Command::new(common::root().join("tools/mkdisk"))
        .arg(&image)
        .args(["--size", "16M", "--marker", "hostile", "--force"])
        .status()
        .expect("run tools/mkdisk");
    assert!(status.success());
    let before = std::fs::read(&image).unwrap();
    let config = config_file(
        "hostile-disk",
        &format!(
            "[[vm]]\nname = \"attacker\"\nkernel = \"hostile-guest\"\ncmdline = \"hostile=disk\"\n\
             memory = \"64M\"\ndisk = \"{}\"\nreadonly = true\n\n\
             [[vm]]\nname = \"bystander\"\nkernel = \"test-guest\"\nmemory = \"64M\"\n",
            image.display()
        ),
    );
    let run = common::boot(
        &format!("hostile-disk-{}", mode.replace('=', "-")),
        &[
            "--config",
            config.to_str().unwrap(),
            "--log",
            "warn",
            "--hv-append",
            mode,
        ],
        Duration::from_secs(120),
    );
    run.assert_clean_exit();
    let checks: Vec<&str> = run
        .output
        .lines()
        .filter(|l| l.starts_with("(attacker) disk: ") && l.ends_with(": ok"))
        .collect();
    assert!(
        !run.output.contains("FAIL"),
        "a check failed\n{}",
        run.tail(60)
    );
    // 13 request checks, 6 chains needing a reset (each with its restart).
    assert_eq!(checks.len(), 1 + 13 + 2 * 6, "{}", run.tail(60));
    run.assert_line("(attacker) disk: 0 failures");
    run.assert_line("(bystander) test-guest: 16 passed, 0 failed");
    // About 2000 refused requests: a handful of lines, then summaries.
    let disk_lines = run
        .hv_lines()
        .filter(|l| l.contains("disk request"))
        .count();
    assert!(
        (1..=20).contains(&disk_lines),
        "{disk_lines} disk lines\n{}",
        run.tail(40)
    );
    assert!(
        run.hv_lines()
            .any(|l| l.contains("more disk-request-failed lines suppressed")),
        "{}",
        run.tail(40)
    );
    // Every refusal is counted: 5 bad requests, the write, the short
    // header and the flood.
    run.assert_hv_line(
        "[hv] disk vm1: reads=4 writes=0 flushes=0 read-kib=4 written-kib=0 refused=2007 disk-errors=0",
    );
    assert!(
        std::fs::read(&image).unwrap() == before,
        "the read-only image changed"
    );
}
