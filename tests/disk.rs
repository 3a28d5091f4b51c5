//! Virtual disks that are files (issue 10): a VM's `disk = "FILE"` becomes a
//! virtio-blk device of the QEMU machine (serial = the VM's name), which
//! the hypervisor drives; the VM gets its own virtio-blk device and Linux
//! mounts an ext4 file system from it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::config_file;

const TIMEOUT: Duration = Duration::from_secs(240);

/// A fresh ext4 image under target/disks with `/marker` holding `marker`.
fn disk_image(name: &str, marker: &str) -> PathBuf {
    let dir = common::root().join("target/disks");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.img"));
    let status = Command::new(common::root().join("tools/mkdisk"))
        .arg(&path)
        .args(["--size", "32M", "--marker", marker, "--force"])
        .status()
        .expect("run tools/mkdisk");
    assert!(status.success(), "tools/mkdisk failed");
    path
}

fn sbin(tool: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(tool))
}

/// The contents of `file` in the ext4 image, read on the host the way a
/// kernel would see it after a crash: the journal replayed (on a copy).
fn file_in_image(image: &Path, file: &str) -> String {
    let copy = image.with_extension("check.img");
    std::fs::copy(image, &copy).unwrap();
    let fsck = Command::new(sbin("e2fsck"))
        .args(["-fy"])
        .arg(&copy)
        .output()
        .expect("run e2fsck");
    // 0: clean; 1: errors corrected (a replayed journal counts as one).
    assert!(
        matches!(fsck.status.code(), Some(0 | 1)),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let out = Command::new(sbin("debugfs"))
        .args(["-R", &format!("cat {file}")])
        .arg(&copy)
        .output()
        .expect("run debugfs");
    std::fs::remove_file(&copy).ok();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn linux_vm(name: &str, run: &str, disk: &Path, extra: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nkernel = \"debian\"\ninitramfs = \"debian\"\n\
         cmdline = \"console=ttyAMA0 rdinit=/init panic=-1 hv.run={run}\"\n\
         vcpus = 1\nmemory = \"256M\"\ndisk = \"{}\"\n{extra}\n",
        disk.display()
    )
}

#[test]
fn what_a_vm_writes_stays_across_vm_reboots_and_qemu_restarts() {
    common::build_images();
    common::fetch_linux();
    let first = disk_image("persist-first", "first-disk");
    let second = disk_image("persist-second", "second-disk");
    // Two VMs, each with its own disk file: the first reboots once (its
    // own SYSTEM_RESET restarts only it), the second counts one boot.
    let config = |boots: u32| {
        config_file(
            &format!("disk-persist-{boots}"),
            &(linux_vm("first", "disk", &first, "")
                .replace("hv.run=disk", &format!("hv.run=disk hv.boots={boots}"))
                + &linux_vm("second", "disk", &second, "")
                    .replace("hv.run=disk", "hv.run=disk hv.boots=1")),
        )
    };
    let run = common::boot(
        "disk-persist-1",
        &["--config", config(2).to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_hv_line("serial 'first', 65536 sectors");
    run.assert_hv_line("serial 'second', 65536 sectors");
    run.assert_line("(first) DISK-BOOTS 1 marker=first-disk");
    run.assert_line("(first) DISK-BOOTS 2 marker=first-disk");
    run.assert_line("(second) DISK-BOOTS 1 marker=second-disk");
    assert!(!run.output.contains("DISK-ERROR"), "{}", run.tail(40));
    // QEMU restarted: the count goes on from the file.
    let run = common::boot(
        "disk-persist-2",
        &["--config", config(3).to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("(first) DISK-BOOTS 3 marker=first-disk");
    run.assert_line("(second) DISK-BOOTS 2 marker=second-disk");
    // And the host sees it in the files.
    assert_eq!(file_in_image(&first, "/boots").trim(), "3");
    assert_eq!(file_in_image(&second, "/boots").trim(), "2");
}

#[test]
fn after_sync_returns_the_data_is_in_the_host_file() {
    common::build_images();
    common::fetch_linux();
    let image = disk_image("sync", "sync-disk");
    let config = config_file("disk-sync", &linux_vm("syncer", "disk-sync", &image, ""));
    // QEMU is killed the moment the guest says sync returned: nothing is
    // unmounted, nothing else is flushed.
    let run = common::boot_until(
        "disk-sync",
        &["--config", config.to_str().unwrap()],
        "DISK-SYNCED",
        TIMEOUT,
    );
    assert!(
        run.output.contains("DISK-SYNCED"),
        "the guest never synced\n{}",
        run.tail(40)
    );
    let synced = file_in_image(&image, "/synced");
    assert!(
        synced.starts_with("written before sync"),
        "the file after sync: {synced:?}\n{}",
        run.tail(20)
    );
}

#[test]
fn a_readonly_disk_is_read_but_never_written() {
    common::build_images();
    common::fetch_linux();
    let image = disk_image("readonly", "readonly-disk");
    let before = std::fs::read(&image).unwrap();
    let config = config_file(
        "disk-readonly",
        &linux_vm("reader", "disk-readonly", &image, "readonly = true"),
    );
    let run = common::boot(
        "disk-readonly",
        &["--config", config.to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("DISK-RO-MOUNTED marker=readonly-disk");
    run.assert_line("DISK-RO-WRITE refused");
    run.assert_line("DISK-RO-RO 1");
    assert!(
        std::fs::read(&image).unwrap() == before,
        "the read-only image changed"
    );
}

#[test]
fn a_missing_disk_file_is_refused_before_anything_boots() {
    common::build_images();
    let missing = common::root().join("target/disks/no-such-disk.img");
    let config = config_file(
        "disk-missing",
        &format!(
            "[[vm]]\nname = \"lost\"\nkernel = \"test-guest\"\ndisk = \"{}\"\n",
            missing.display()
        ),
    );
    let run = common::boot(
        "disk-missing",
        &["--config", config.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(run.exit_code, Some(2), "{}", run.tail(10));
    assert!(
        run.output.contains("VM 'lost', disk: no such file"),
        "{}",
        run.tail(10)
    );
    assert!(
        !run.output.contains("[hv"),
        "the hypervisor started\n{}",
        run.tail(10)
    );
}

#[test]
fn a_qcow2_image_works_because_qemu_reads_it() {
    common::build_images();
    common::fetch_linux();
    let raw = disk_image("qcow2-source", "qcow2-disk");
    let image = raw.with_file_name("qcow2.qcow2");
    let status = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&image)
        .status()
        .expect("run qemu-img");
    assert!(status.success(), "qemu-img convert failed");
    let config = config_file(
        "disk-qcow2",
        &linux_vm("qcow", "disk", &image, "").replace("hv.run=disk", "hv.run=disk hv.boots=1"),
    );
    let run = common::boot(
        "disk-qcow2",
        &["--config", config.to_str().unwrap()],
        TIMEOUT,
    );
    run.assert_clean_exit();
    run.assert_line("DISK-BOOTS 1 marker=qcow2-disk");
    // The count went into the qcow2 file: QEMU reads it back as raw.
    let back = raw.with_file_name("qcow2-back.img");
    let status = Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&image)
        .arg(&back)
        .status()
        .expect("run qemu-img");
    assert!(status.success());
    assert_eq!(file_in_image(&back, "/boots").trim(), "1");
}
