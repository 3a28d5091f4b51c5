//! PSCI calls to the firmware below us (QEMU's built-in PSCI, reached by SMC
//! because EL2 is the highest exception level QEMU emulates here).

const CPU_ON_64: u64 = 0xC400_0003;
const SYSTEM_OFF: u64 = 0x8400_0008;
const SYSTEM_RESET: u64 = 0x8400_0009;

/// One SMC Calling Convention call; returns x0.
pub fn smc_call(function: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let ret: u64;
    // SAFETY: SMC into firmware; SMCCC allows x0-x17 to be clobbered.
    unsafe {
        core::arch::asm!(
            "smc #0",
            inlateout("x0") function => ret,
            inlateout("x1") a1 => _, inlateout("x2") a2 => _, inlateout("x3") a3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack)
        );
    }
    ret
}

/// Start physical CPU `mpidr` at `entry` (a physical address) with `context` in x0.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> i64 {
    smc_call(CPU_ON_64, mpidr, entry, context) as i64
}

/// Power the machine off (QEMU exits with status 0).
pub fn system_off() -> ! {
    smc_call(SYSTEM_OFF, 0, 0, 0);
    crate::cpu::halt()
}

/// Reset the machine (QEMU with -no-reboot exits).
pub fn system_reset() -> ! {
    smc_call(SYSTEM_RESET, 0, 0, 0);
    crate::cpu::halt()
}
