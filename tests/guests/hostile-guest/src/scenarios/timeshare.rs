//! Work that a time-shared CPU must not disturb: rounds of a compute loop
//! with values held in FP/SIMD registers and FPCR across the whole loop, so
//! every switch to another vCPU and back happens with them live. Prints the
//! loop's checksum (the same however the CPU is shared), the counter ticks
//! the rounds took (the rate tools/bench and tests/timeshare.rs compare),
//! and how many FP values came back wrong (must be 0).
//!
//! `timeshare` runs on vCPU 0; `timeshare-smp` also starts vCPU 1 with the
//! same work, so one VM has two vCPUs to share whatever CPUs it has.
//! `timeshare-pingpong` passes a token between vCPUs 0 and 1 a number of
//! times, each waiting for its turn in a WFE loop (as a spinlock waiter
//! does): on a shared CPU each wait must hand the CPU over at once rather
//! than spin out a slice.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use guest_rt::println;
use guest_rt::smccc::{hvc, PSCI_CPU_ON};

const ROUNDS: u64 = 10;
const ITERATIONS: u64 = 2_000_000;
/// FPCR with RMode = round towards zero: a value a switch must keep.
const FPCR_TOWARDS_ZERO: u64 = 0xc0_0000;

/// Set while `timeshare-smp` runs: vCPU 1 works too.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set while `timeshare-pingpong` runs: vCPU 1 passes the token back.
pub static PINGPONG: AtomicBool = AtomicBool::new(false);
/// Whose turn it is (vCPU index), and how many passes are left.
static TURN: AtomicU64 = AtomicU64::new(0);
const PASSES: u64 = 50;
static SECONDARY_DONE: AtomicBool = AtomicBool::new(false);
static SECONDARY_BAD: AtomicU64 = AtomicU64::new(0);

/// One round: FP registers d0, d8, d15, d31 and FPCR set from `seed`, an
/// integer loop, then each checked. Returns (loop checksum, mismatches).
fn round(seed: u64) -> (u64, u64) {
    let mut sum: u64 = 1;
    let mut bad: u64 = 0;
    // The hypervisor-free guest runtime is soft-float: nothing else uses
    // the FP registers, so they are not declared as clobbered.
    // SAFETY: register arithmetic only; FPCR is restored to 0.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            "fmov d0, {s}",
            "add {t}, {s}, #1",
            "fmov d8, {t}",
            "add {t}, {s}, #2",
            "fmov d15, {t}",
            "add {t}, {s}, #3",
            "fmov d31, {t}",
            "mov {t}, #{fpcr}",
            "msr fpcr, {t}",
            "2:",
            "mul {sum}, {sum}, {s}",
            "add {sum}, {sum}, {n}",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "fmov {t}, d0",
            "cmp {t}, {s}",
            "cinc {bad}, {bad}, ne",
            "fmov {t}, d8",
            "sub {t}, {t}, #1",
            "cmp {t}, {s}",
            "cinc {bad}, {bad}, ne",
            "fmov {t}, d15",
            "sub {t}, {t}, #2",
            "cmp {t}, {s}",
            "cinc {bad}, {bad}, ne",
            "fmov {t}, d31",
            "sub {t}, {t}, #3",
            "cmp {t}, {s}",
            "cinc {bad}, {bad}, ne",
            "mrs {t}, fpcr",
            "cmp {t}, #{fpcr_hi}, lsl #12",
            "cinc {bad}, {bad}, ne",
            "msr fpcr, xzr",
            s = in(reg) seed,
            t = out(reg) _,
            sum = inout(reg) sum,
            bad = inout(reg) bad,
            n = inout(reg) ITERATIONS => _,
            fpcr = const FPCR_TOWARDS_ZERO,
            fpcr_hi = const FPCR_TOWARDS_ZERO >> 12,
            options(nostack, nomem),
        );
    }
    (sum, bad)
}

fn work(vcpu: u64) -> u64 {
    // FP/SIMD on for EL1 and EL0 (CPACR_EL1.FPEN), or fmov traps.
    guest_rt::msr!("CPACR_EL1", 3 << 20);
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("isb", options(nostack)) };
    let start = guest_rt::counter();
    let (mut checksum, mut bad) = (0u64, 0u64);
    for r in 0..ROUNDS {
        let (sum, wrong) = round(0x1234_5678_9abc_def1 ^ r);
        checksum = checksum.wrapping_mul(31).wrapping_add(sum);
        bad += wrong;
    }
    let ticks = guest_rt::counter() - start;
    println!("timeshare: vcpu{vcpu} ticks={ticks} checksum={checksum:#x} fp-mismatches={bad}");
    bad
}

fn wait_for_turn(me: u64) {
    while TURN.load(Ordering::Acquire) != me {
        // SAFETY: waiting for an event only.
        unsafe { core::arch::asm!("wfe", options(nostack)) };
    }
}

fn pass_to(other: u64) {
    TURN.store(other, Ordering::Release);
    // SAFETY: signals an event only.
    unsafe { core::arch::asm!("dsb ish", "sev", options(nostack)) };
}

/// vCPU 1's body in `timeshare-pingpong`.
pub fn pingpong_secondary() -> ! {
    for _ in 0..PASSES {
        wait_for_turn(1);
        pass_to(0);
    }
    loop {
        // SAFETY: waiting only.
        unsafe { core::arch::asm!("wfi", options(nostack)) };
    }
}

pub fn run_pingpong(_dtb: u64) {
    PINGPONG.store(true, Ordering::SeqCst);
    let ret = hvc(PSCI_CPU_ON, 1, guest_rt::secondary_entry_address(), 1)[0];
    if ret != 0 {
        println!("timeshare: FAIL: CPU_ON returned {ret:#x}");
        return;
    }
    let start = guest_rt::counter();
    for _ in 0..PASSES {
        pass_to(1);
        wait_for_turn(0);
    }
    let ticks = guest_rt::counter() - start;
    println!("timeshare: pingpong passes={PASSES} ticks={ticks}");
    println!("timeshare: PASS");
}

/// vCPU 1's body in `timeshare-smp`.
pub fn secondary() -> ! {
    SECONDARY_BAD.store(work(1), Ordering::SeqCst);
    SECONDARY_DONE.store(true, Ordering::SeqCst);
    loop {
        // SAFETY: waiting only (a time-shared CPU runs someone else).
        unsafe { core::arch::asm!("wfi", options(nostack)) };
    }
}

pub fn run(_dtb: u64) {
    let bad = work(0);
    println!("timeshare: {}", if bad == 0 { "PASS" } else { "FAIL" });
}

pub fn run_smp(_dtb: u64) {
    ACTIVE.store(true, Ordering::SeqCst);
    let ret = hvc(PSCI_CPU_ON, 1, guest_rt::secondary_entry_address(), 1)[0];
    if ret != 0 {
        println!("timeshare: FAIL: CPU_ON returned {ret:#x}");
        return;
    }
    let bad = work(0);
    while !SECONDARY_DONE.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    let bad = bad + SECONDARY_BAD.load(Ordering::SeqCst);
    println!("timeshare: {}", if bad == 0 { "PASS" } else { "FAIL" });
}
