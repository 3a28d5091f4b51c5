//! The real EL1 registers behind trapped system-register accesses.
//!
//! The core decides what a trapped access means (`hvcore::sysreg`); this
//! reads and writes the hardware register it names. Each physical CPU runs
//! one vCPU, so the hardware register is the vCPU's register.

use hvcore::esr::SysRegId;
use hvcore::sysreg::El1Registers;

/// The EL1 registers of the CPU we are running on.
pub struct HardwareEl1;

macro_rules! el1_table {
    ($( ($op0:literal, $op1:literal, $crn:literal, $crm:literal, $op2:literal) => $name:literal ),* $(,)?) => {
        impl El1Registers for HardwareEl1 {
            fn read(&self, id: SysRegId) -> u64 {
                match (id.op0, id.op1, id.crn, id.crm, id.op2) {
                    $( ($op0, $op1, $crn, $crm, $op2) => hv_arch::read_sysreg!($name), )*
                    _ => 0,
                }
            }

            fn write(&mut self, id: SysRegId, value: u64) {
                match (id.op0, id.op1, id.crn, id.crm, id.op2) {
                    $( ($op0, $op1, $crn, $crm, $op2) => hv_arch::write_sysreg!($name, value), )*
                    _ => {}
                }
            }
        }
    };
}

// The registers HCR_EL2.TVM/TRVM trap, by encoding.
el1_table! {
    (3, 0, 1, 0, 0) => "SCTLR_EL1",
    (3, 0, 2, 0, 0) => "TTBR0_EL1",
    (3, 0, 2, 0, 1) => "TTBR1_EL1",
    (3, 0, 2, 0, 2) => "TCR_EL1",
    (3, 0, 5, 1, 0) => "AFSR0_EL1",
    (3, 0, 5, 1, 1) => "AFSR1_EL1",
    (3, 0, 5, 2, 0) => "ESR_EL1",
    (3, 0, 6, 0, 0) => "FAR_EL1",
    (3, 0, 10, 2, 0) => "MAIR_EL1",
    (3, 0, 10, 3, 0) => "AMAIR_EL1",
    (3, 0, 13, 0, 1) => "CONTEXTIDR_EL1",
}
