//! A restarted VM must find its RAM zeroed again, to the last byte. Checks
//! the last MiB of RAM (with 65 MiB of RAM: the short last 2 MiB chunk the
//! hypervisor zeroes lazily), prints whether it is clean, writes a pattern
//! there and waits: tests/vm_config.rs reboots the VM from the hypervisor
//! console after the first boot and checks the second boot finds it clean.

use guest_rt::println;

const CHECKED: u64 = 1 << 20;
const PATTERN: u64 = 0x5a5a_c0de_5a5a_c0de;

pub fn run(dtb: u64) {
    let Some((base, size)) = super::ram_zeroed::memory_range(dtb) else {
        println!("rezero: FAIL: no memory node");
        return;
    };
    let start = base + size - CHECKED;
    let dirty = (start..base + size)
        .step_by(8)
        .filter(|&addr| guest_rt::mmio_read::<u64>(addr as usize) != 0)
        .count();
    if dirty == 0 {
        println!("rezero: the last MiB of RAM at {start:#x} is clean");
    } else {
        println!("rezero: FAIL: {dirty} words of the last MiB kept data from a previous boot");
    }
    for addr in (start..base + size).step_by(8) {
        guest_rt::mmio_write::<u64>(addr as usize, PATTERN);
    }
    println!("rezero: pattern written; waiting to be restarted");
    loop {
        // SAFETY: waiting only.
        unsafe { core::arch::asm!("wfi", options(nostack)) };
    }
}
