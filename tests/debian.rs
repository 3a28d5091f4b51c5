//! A real system on a real disk (issue 10): Debian 12 arm64, built from
//! Debian's archive by tools/mkrootfs, boots from its virtio-blk disk
//! under the hypervisor with systemd to a login prompt; root logs in, and
//! a file written there is on the disk after the VM powers off.
//!
//! Opt-in (slow under emulation, and it needs mmdebstrap, qemu-user-static
//! and the Debian mirror the first time): `cargo test --test debian --
//! --ignored`. tools/test does not run it.

mod common;

use std::process::Command;
use std::time::Duration;

#[test]
#[ignore = "opt-in: a full Debian boot with systemd (cargo test --test debian -- --ignored)"]
fn debian_boots_from_its_disk_with_systemd_to_a_login_prompt() {
    common::build_images();
    common::fetch_linux();
    let image = common::root().join(".cache/disks/debian.img");
    if !image.exists() {
        let status = Command::new(common::root().join("tools/mkrootfs"))
            .arg(&image)
            .status()
            .expect("run tools/mkrootfs");
        assert!(status.success(), "tools/mkrootfs failed");
    }
    let config = common::root().join("configs/debian.toml");
    let stamp = format!(
        "written-by-the-debian-test-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let commands = format!(
        "grep PRETTY /etc/os-release; systemctl is-system-running; echo {stamp} > /root/stamp; sync; \
         echo DEBIAN-$(cat /root/stamp | wc -c)-BYTES; systemctl poweroff\\n"
    );
    let run = common::boot_with_input(
        "debian",
        &["--config", config.to_str().unwrap()],
        &[
            ("debian-vm login:", "root\\n"),
            ("root@debian-vm", &commands),
        ],
        Duration::from_secs(900),
    );
    run.assert_line("GUEST-ROOT /dev/vda: switching to its /sbin/init");
    run.assert_line("Reached target");
    run.assert_line("debian-vm login:");
    run.assert_line("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"");
    run.assert_line(&format!("DEBIAN-{}-BYTES", stamp.len() + 1));
    // systemd powers the VM off cleanly: the last VM, so the machine too.
    run.assert_hv_line("stopped (SYSTEM_OFF)");
    assert_eq!(run.exit_code, Some(0), "{}", run.tail(30));
    eprintln!(
        "debian: login prompt and clean power-off in {:.1} s",
        run.elapsed.as_secs_f64()
    );
    // The file is on the disk, seen from the host.
    let out = Command::new("/usr/sbin/debugfs")
        .args(["-R", "cat /root/stamp"])
        .arg(&image)
        .output()
        .expect("run debugfs");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&stamp),
        "the stamp is not on the disk"
    );
}
