//! Exceptions the hypervisor makes the guest take, as the architecture would
//! have delivered them: the guest's EL1 vector is entered with ESR_EL1,
//! FAR_EL1, ELR_EL1 and SPSR_EL1 set, exactly as for a real exception.

use hv_arch::{read_sysreg, write_sysreg};
use hvcore::esr::{
    data_abort_syndrome, injected_spsr, instruction_abort_syndrome, undefined_syndrome,
    vector_offset, DFSC_SYNC_EXTERNAL,
};
use hvcore::trapped_insn::trapped_instruction_step;

const SPSR_EL_MASK: u64 = 0b1100;
const SPSR_EL1: u64 = 0b0100;

fn inject_sync(esr_el1: u64, far: Option<u64>) {
    let spsr = read_sysreg!("SPSR_EL2");
    let elr = read_sysreg!("ELR_EL2");
    write_sysreg!("ESR_EL1", esr_el1);
    if let Some(far) = far {
        write_sysreg!("FAR_EL1", far);
    }
    write_sysreg!("ELR_EL1", elr);
    write_sysreg!("SPSR_EL1", spsr);
    let vbar = read_sysreg!("VBAR_EL1");
    write_sysreg!("ELR_EL2", vbar.wrapping_add(vector_offset(spsr)));
    write_sysreg!("SPSR_EL2", injected_spsr(spsr));
}

fn from_el1() -> bool {
    read_sysreg!("SPSR_EL2") & SPSR_EL_MASK == SPSR_EL1
}

/// The instruction at ELR_EL2 is UNDEFINED for the guest.
pub fn undefined_instruction() {
    inject_sync(undefined_syndrome(), None);
}

/// A synchronous external abort on a data access to virtual address `far`.
pub fn data_abort(write: bool, far: u64) {
    inject_sync(
        data_abort_syndrome(from_el1(), write, DFSC_SYNC_EXTERNAL),
        Some(far),
    );
}

/// A synchronous external abort on an instruction fetch from `far`.
pub fn instruction_abort(far: u64) {
    inject_sync(
        instruction_abort_syndrome(from_el1(), DFSC_SYNC_EXTERNAL),
        Some(far),
    );
}

/// Step over the trapped instruction: 4 bytes, or 2 for a 16-bit T32 one
/// (ESR_EL2.IL), advancing the T32 IT state as executing it would have.
#[inline]
pub fn skip_instruction() {
    let spsr = read_sysreg!("SPSR_EL2");
    let elr = read_sysreg!("ELR_EL2");
    if !hvcore::trapped_insn::is_aarch32(spsr) {
        // Every AArch64 instruction is 4 bytes: no need to read ESR_EL2.
        write_sysreg!("ELR_EL2", elr.wrapping_add(4));
        return;
    }
    let step = trapped_instruction_step(read_sysreg!("ESR_EL2"), spsr);
    write_sysreg!("ELR_EL2", elr.wrapping_add(step.advance));
    if step.spsr != spsr {
        write_sysreg!("SPSR_EL2", step.spsr);
    }
}
