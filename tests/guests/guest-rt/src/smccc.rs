//! SMC Calling Convention calls over HVC (and SMC, which the hypervisor traps).

/// One SMC Calling Convention call through `$insn` (HVC or SMC): x0..x3 in
/// and out, x4-x17 clobbered.
macro_rules! smccc_call {
    ($insn:literal, $function:expr, $a1:expr, $a2:expr, $a3:expr) => {{
        let (r0, r1, r2, r3);
        // SAFETY: SMCCC call; x0-x17 may be clobbered.
        unsafe {
            core::arch::asm!($insn,
                inlateout("x0") $function => r0, inlateout("x1") $a1 => r1,
                inlateout("x2") $a2 => r2, inlateout("x3") $a3 => r3,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _, options(nostack));
        }
        [r0, r1, r2, r3]
    }};
}

/// HVC #0 with x0..x3; returns x0..x3.
pub fn hvc(function: u64, a1: u64, a2: u64, a3: u64) -> [u64; 4] {
    smccc_call!("hvc #0", function, a1, a2, a3)
}

/// SMC #0 with x0..x3; returns x0..x3.
pub fn smc(function: u64, a1: u64, a2: u64, a3: u64) -> [u64; 4] {
    smccc_call!("smc #0", function, a1, a2, a3)
}

pub const PSCI_VERSION: u64 = 0x8400_0000;
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
pub const PSCI_CPU_ON: u64 = 0xC400_0003;
pub const PSCI_AFFINITY_INFO: u64 = 0xC400_0004;
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
pub const PSCI_FEATURES: u64 = 0x8400_000A;
pub const SMCCC_VERSION: u64 = 0x8000_0000;
pub const NOT_SUPPORTED: u64 = u64::MAX; // -1

/// The hypervisor's vendor calls (see src/hv/hypercall.rs).
pub const HV_CALL_PING: u64 = 0x8600_0001;
pub const HV_CALL_EXIT_COUNT: u64 = 0x8600_0002;
pub const HV_PING_MAGIC: u64 = 0x4856_5255_5354_3031;
pub const HV_CALL_TEST_PANIC: u64 = 0x8600_00ff;

/// Exit-cause indices of HV_CALL_EXIT_COUNT (hvcore::exit_stats::ExitCause order).
pub mod exit_cause {
    pub const HVC: u64 = 0;
    pub const SMC: u64 = 1;
    pub const SYSREG: u64 = 2;
    pub const WFI: u64 = 3;
    pub const MMIO: u64 = 5;
    pub const ABORT_INJECTED: u64 = 6;
    pub const UNDEF_INJECTED: u64 = 7;
    pub const IRQ: u64 = 8;
}

/// How many exits of `cause` the hypervisor has counted for this VM.
pub fn exit_count(cause: u64) -> u64 {
    hvc(HV_CALL_EXIT_COUNT, cause, 0, 0)[1]
}

/// PSCI SYSTEM_OFF.
pub fn system_off() -> ! {
    hvc(PSCI_SYSTEM_OFF, 0, 0, 0);
    loop {
        // SAFETY: waiting only.
        unsafe { core::arch::asm!("wfi", options(nostack)) };
    }
}
