//! CPU_ON with an entry point where nothing is mapped: the new vCPU faults
//! on its first fetch, and again on every vector fetch after that (its
//! VBAR_EL1 is 0, also unmapped), forever. The hypervisor must keep its log
//! bounded and the rest of the VM running; vCPU 0 powers the VM off.

use guest_rt::println;
use guest_rt::smccc::{hvc, PSCI_CPU_ON};

const BAD_ENTRY: u64 = 0x1000;
/// How long vCPU 0 lets vCPU 1 fault, in counter ticks (QEMU virt: 62.5 MHz).
const WAIT_TICKS: u64 = 62_500_000 * 3;

pub fn run(_dtb: u64) {
    let ret = hvc(PSCI_CPU_ON, 1, BAD_ENTRY, 0)[0];
    println!("cpu-on-bad-entry: CPU_ON(1, {BAD_ENTRY:#x}) returned {ret:#x}");
    let start = guest_rt::counter();
    while guest_rt::counter() - start < WAIT_TICKS {
        core::hint::spin_loop();
    }
    println!("cpu-on-bad-entry: vcpu0 still running after 3 s");
}
