//! vCPU 1 is started, counts itself in, and turns itself off with PSCI
//! CPU_OFF, three times over. Its physical CPU parks in WFI after each
//! CPU_OFF and must be woken by the next CPU_ON (the hypervisor's kick SGI),
//! and the vCPU must start afresh each time.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use guest_rt::println;
use guest_rt::smccc::{hvc, PSCI_AFFINITY_INFO, PSCI_CPU_OFF, PSCI_CPU_ON};

const ROUNDS: u64 = 3;
/// How long each step may take, in counter ticks (QEMU virt: 62.5 MHz).
const STEP_TICKS: u64 = 62_500_000 * 2;
const AFFINITY_OFF: u64 = 1;

/// Set while this scenario runs: secondaries count in and turn off.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);
static STARTS: AtomicU64 = AtomicU64::new(0);

/// vCPU 1's body in this scenario.
pub fn secondary() -> ! {
    STARTS.fetch_add(1, Ordering::SeqCst);
    hvc(PSCI_CPU_OFF, 0, 0, 0);
    println!("cpu-off-on: FAIL: CPU_OFF returned");
    loop {
        core::hint::spin_loop();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> bool {
    let start = guest_rt::counter();
    while !done() {
        if guest_rt::counter() - start > STEP_TICKS {
            println!("cpu-off-on: FAIL: timed out waiting for {what}");
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

pub fn run(_dtb: u64) {
    ACTIVE.store(true, Ordering::SeqCst);
    for round in 1..=ROUNDS {
        let ret = hvc(PSCI_CPU_ON, 1, guest_rt::secondary_entry_address(), 1)[0];
        if ret != 0 {
            println!("cpu-off-on: FAIL: CPU_ON round {round} returned {ret:#x}");
            return;
        }
        if !wait_until("vCPU 1 to start", || STARTS.load(Ordering::SeqCst) == round)
            || !wait_until("vCPU 1 to turn off", || {
                hvc(PSCI_AFFINITY_INFO, 1, 0, 0)[0] == AFFINITY_OFF
            })
        {
            return;
        }
        println!("cpu-off-on: round {round}: vCPU 1 started and turned off");
    }
    println!("cpu-off-on: PASS");
}
