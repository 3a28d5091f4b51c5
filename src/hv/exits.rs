//! VM exit handlers, entered from the vector table with the guest's
//! registers saved. Each decodes the exit with the core and emulates it;
//! what the exit means for the vCPU (resume, wait, yield, a scheduling
//! point, off, parked) is an [`ExitAction`] that the exit entry hands to
//! the run loop ([`run_loop::finish_exit`]), the one place that switches
//! vCPUs, waits or parks. Then the vector code restores and ERETs.

use hv_arch::boot::GuestRegs;
use hv_arch::read_sysreg;
use hvcore::esr::{
    data_fault_status, decode_data_abort, decode_sysreg, decode_wfx, exception_class,
    mmio_load_value, mmio_store_value, reg_value, set_reg, DecodeError, ExceptionClass,
    FaultStatus, MmioAccess, WfxKind,
};
use hvcore::exit_action::ExitAction;
use hvcore::exit_stats::ExitCause;
use hvcore::log_limit::Cause;
use hvcore::mmio::MmioOutcome;
use hvcore::sysreg::SysRegOutcome;
use hvcore::trapped_insn::trapped_instruction_step;

use super::devices::Width;
use super::el1_regs::HardwareEl1;
use super::irq;
use super::vcpu::{self, Vcpu};
use super::{hypercall, inject, run_loop};

/// Synchronous exception from the guest (EL1/EL0).
///
/// The fast path: hypercalls and system-register traps that cannot change
/// interrupt state return without touching the list registers or the vGIC
/// lock. Exits that can (WFI, MMIO, SGIs, PSCI) bring the vGIC model up to
/// date first and refill the list registers before returning.
///
/// Each exception class has its own out-of-line handler, so this dispatch
/// needs no stack frame and a hypercall does not pay for saving the
/// registers the MMIO path needs.
#[no_mangle]
extern "C" fn hv_lower_sync(regs: &mut GuestRegs) {
    let vcpu = vcpu::current();
    let esr = read_sysreg!("ESR_EL2");
    match exception_class(esr) {
        ExceptionClass::Hvc64 => handle_hvc(vcpu, regs),
        ExceptionClass::Smc64 => handle_smc(vcpu, regs),
        ExceptionClass::SysReg64 => handle_sysreg(vcpu, regs, esr),
        ExceptionClass::Wfx => wfx_exit(vcpu, regs, esr),
        ExceptionClass::DataAbortLower => handle_data_abort(vcpu, regs, esr),
        ExceptionClass::InstAbortLower => handle_instruction_abort(vcpu),
        other => handle_unknown(vcpu, other, esr),
    }
}

/// A conditional AArch32 (EL0) instruction that failed its condition check
/// may trap all the same (IMPLEMENTATION DEFINED): step over it without
/// effect and say so. Only the classes that AArch32 code can cause and that
/// report a condition need asking; AArch64 instructions never fail here.
fn condition_failed(vcpu: &mut Vcpu, esr: u64) -> bool {
    if !trapped_instruction_step(esr, read_sysreg!("SPSR_EL2")).condition_failed {
        return false;
    }
    vcpu.count(ExitCause::Other);
    inject::skip_instruction();
    true
}

#[inline(never)]
fn handle_hvc(vcpu: &mut Vcpu, regs: &mut GuestRegs) {
    vcpu.count(ExitCause::Hvc);
    // ELR_EL2 already points past the HVC.
    if !hypercall::handle_fast(vcpu, regs) {
        psci_exit(vcpu, regs);
    }
}

#[inline(never)]
fn handle_smc(vcpu: &mut Vcpu, regs: &mut GuestRegs) {
    vcpu.count(ExitCause::Smc);
    // A trapped SMC returns to the SMC itself: step over it.
    inject::skip_instruction();
    if !hypercall::handle_fast(vcpu, regs) {
        psci_exit(vcpu, regs);
    }
}

/// A PSCI call (the fast path did not answer it): it may turn the vCPU
/// off or stop its VM.
#[inline(never)]
fn psci_exit(vcpu: &mut Vcpu, regs: &mut GuestRegs) {
    let action = with_vgic_synced(vcpu, |vcpu| hypercall::handle_psci(vcpu, regs));
    run_loop::finish_exit(vcpu, regs, action);
}

#[cold]
#[inline(never)]
fn handle_instruction_abort(vcpu: &mut Vcpu) {
    if first_touch_of_ram(vcpu) {
        return;
    }
    let far = read_sysreg!("FAR_EL2");
    guest_warn!(
        vcpu,
        Cause::InstructionAbort,
        "instruction fetch from unmapped IPA (VA {far:#x}): abort"
    );
    vcpu.count(ExitCause::AbortInjected);
    inject::instruction_abort(far);
}

#[cold]
#[inline(never)]
fn handle_unknown(vcpu: &mut Vcpu, class: ExceptionClass, esr: u64) {
    // Checked here, out of the dispatch, so the common exits do not pay for
    // a stack frame.
    if condition_failed(vcpu, esr) {
        return;
    }
    guest_warn!(
        vcpu,
        Cause::UnhandledException,
        "unhandled exit {class:?} (ESR {esr:#x}) at {:#x}: undefined instruction",
        read_sysreg!("ELR_EL2")
    );
    vcpu.count(ExitCause::UndefInjected);
    inject::undefined_instruction();
}

/// Run `handler` with the vGIC model in step with this vCPU's list
/// registers, and reload them afterwards.
fn with_vgic_synced<R>(vcpu: &mut Vcpu, handler: impl FnOnce(&mut Vcpu) -> R) -> R {
    irq::sync_list_registers(vcpu);
    let result = handler(vcpu);
    irq::flush_list_registers(vcpu);
    result
}

#[inline(never)]
fn handle_sysreg(vcpu: &mut Vcpu, regs: &mut GuestRegs, esr: u64) {
    vcpu.count(ExitCause::SysRegTrap);
    let Ok(access) = decode_sysreg(esr) else {
        inject::undefined_instruction();
        return;
    };
    let value = reg_value(&regs.x, access.rt);
    match vcpu.sysregs.handle(&access, value, &mut HardwareEl1) {
        SysRegOutcome::Done => {}
        SysRegOutcome::Read(v) => set_reg(&mut regs.x, access.rt, v),
        SysRegOutcome::Undefined => {
            guest_warn!(
                vcpu,
                Cause::SysRegUndefined,
                "{} of unemulated system register {:?} at {:#x}: undefined instruction",
                if access.read { "read" } else { "write" },
                access.id,
                read_sysreg!("ELR_EL2")
            );
            vcpu.count(ExitCause::UndefInjected);
            inject::undefined_instruction();
            return;
        }
        SysRegOutcome::SendSgi { value, .. } => send_sgi(vcpu, value),
        SysRegOutcome::CacheMaintenanceSetWay { value, .. } => {
            hv_arch::cache::clean_invalidate_set_way(value)
        }
        SysRegOutcome::PhysTimerWritten => ptimer_written(vcpu),
    }
    inject::skip_instruction();
}

/// ICC_SGI1R_EL1 written. Out of line (as [`ptimer_written`]), so that the
/// common sysreg traps do not pay for the vGIC paths' stack frame.
/// Sync and the send under one hold of the vGIC lock (as a GIC register
/// access); the other targets are kicked after. The send does not count as
/// a change that needs a refill (`Vgic::changes`): an SGI to itself is
/// loaded into the list registers here.
#[inline(never)]
fn send_sgi(vcpu: &mut Vcpu, value: u64) {
    let index = vcpu.index;
    let targets = irq::with_vgic_locked_synced(vcpu, |vgic| vgic.send_sgi(index, value));
    if targets & (1 << index) != 0 {
        irq::flush_list_registers(vcpu);
    }
    irq::kick_all(vcpu.vm, index, targets);
}

#[inline(never)]
fn ptimer_written(vcpu: &mut Vcpu) {
    with_vgic_synced(vcpu, irq::update_ptimer);
}

/// A WFI or WFE exit: the run loop waits, blocks or yields.
#[inline(never)]
fn wfx_exit(vcpu: &mut Vcpu, regs: &mut GuestRegs, esr: u64) {
    let action = handle_wfx(vcpu, esr);
    run_loop::finish_exit(vcpu, regs, action);
}

/// WFI waits for an interrupt, WFE for another vCPU; either resumes after
/// the instruction (whoever runs this vCPU next).
fn handle_wfx(vcpu: &mut Vcpu, esr: u64) -> ExitAction {
    if condition_failed(vcpu, esr) {
        return ExitAction::Resume;
    }
    inject::skip_instruction();
    match decode_wfx(esr) {
        WfxKind::Wfi | WfxKind::Wfit => {
            vcpu.count(ExitCause::Wfi);
            ExitAction::WaitForInterrupt
        }
        WfxKind::Wfe | WfxKind::Wfet => {
            vcpu.count(ExitCause::Wfe);
            ExitAction::Yield
        }
    }
}

#[inline(never)]
fn handle_data_abort(vcpu: &mut Vcpu, regs: &mut GuestRegs, esr: u64) {
    let far = read_sysreg!("FAR_EL2");
    let hpfar = read_sysreg!("HPFAR_EL2");
    let access = match decode_data_abort(esr, far, hpfar) {
        Ok(access) => access,
        Err(error) => return data_abort_not_decoded(vcpu, esr, far, error),
    };
    // Nothing on the bus there (a hole between devices, or RAM not yet
    // mapped): the cold path below decides.
    let Some((device, offset)) = vcpu.vm.bus.lookup(access.ipa) else {
        return data_abort_refused(vcpu, access, far, None);
    };
    let store = mmio_store_value(&access, reg_value(&regs.x, access.reg));
    let width = Width::of_size(access.size);
    let outcome = device.access(vcpu, offset, width, access.write, store);
    match outcome {
        MmioOutcome::Read(raw) => {
            vcpu.count(ExitCause::MmioEmulated);
            set_reg(&mut regs.x, access.reg, mmio_load_value(&access, raw));
            inject::skip_instruction();
        }
        MmioOutcome::Written => {
            vcpu.count(ExitCause::MmioEmulated);
            inject::skip_instruction();
        }
        outcome => data_abort_refused(vcpu, access, far, Some(outcome)),
    }
}

#[cold]
#[inline(never)]
fn data_abort_not_decoded(vcpu: &mut Vcpu, esr: u64, far: u64, error: DecodeError) {
    if first_touch_of_ram(vcpu) {
        return;
    }
    guest_warn!(
        vcpu,
        Cause::DataAbortNotEmulated,
        "data abort at VA {far:#x} not emulated ({error:?}): external abort"
    );
    vcpu.count(ExitCause::AbortInjected);
    inject::data_abort(esr & (1 << 6) != 0, far);
}

#[cold]
#[inline(never)]
fn data_abort_refused(vcpu: &mut Vcpu, access: MmioAccess, far: u64, outcome: Option<MmioOutcome>) {
    if outcome.is_none() && first_touch_of_ram(vcpu) {
        return;
    }
    let cause = match outcome {
        Some(_) => Cause::MmioRejected,
        None => Cause::MmioUnmapped,
    };
    guest_warn!(
        vcpu,
        cause,
        "{}-byte {} at IPA {:#x} {}: external abort",
        access.size,
        if access.write { "write" } else { "read" },
        access.ipa,
        match outcome {
            Some(_) => "rejected by the device",
            None if vcpu.vm.is_mapped(access.ipa) => "not permitted by stage 2",
            None => "hits no device or memory",
        }
    );
    vcpu.count(ExitCause::AbortInjected);
    inject::data_abort(access.write, far);
}

/// Guest RAM is mapped at stage 2 chunk by chunk as it is zeroed, at first
/// touch: a translation fault on RAM zeroes and maps its chunk and the
/// access is retried (the ELR still points at it). Reached only from the
/// cold paths an access outside every device takes, so MMIO pays nothing.
#[cold]
#[inline(never)]
fn first_touch_of_ram(vcpu: &mut Vcpu) -> bool {
    let esr = read_sysreg!("ESR_EL2");
    if !matches!(data_fault_status(esr), FaultStatus::Translation(_)) {
        return false;
    }
    // HPFAR_EL2.FIPA (bits [43:4]) is the faulting IPA's page number.
    let hpfar = read_sysreg!("HPFAR_EL2");
    let ipa = ((hpfar >> 4) & ((1 << 40) - 1)) << 12 | (read_sysreg!("FAR_EL2") & 0xfff);
    if !vcpu.vm.zero_on_first_touch(ipa) {
        return false;
    }
    vcpu.count(ExitCause::RamFirstTouch);
    true
}

/// A physical IRQ (or FIQ) arrived while the guest ran.
#[no_mangle]
extern "C" fn hv_lower_irq(regs: &mut GuestRegs) {
    let vcpu = vcpu::current();
    vcpu.count(ExitCause::Irq);
    irq::sync_list_registers(vcpu);
    let taken = irq::handle_physical(vcpu);
    run_loop::finish_interrupt_exit(vcpu, regs, taken);
}

/// An SError from the guest: report it to the guest as a virtual SError would
/// need RAS support we do not model; log and carry on.
#[no_mangle]
extern "C" fn hv_lower_serror(_regs: &mut GuestRegs) {
    let vcpu = vcpu::current();
    vcpu.count(ExitCause::Other);
    guest_warn!(
        vcpu,
        Cause::SError,
        "SError from guest, ESR {:#x}",
        read_sysreg!("ESR_EL2")
    );
}

/// Reached only if guest EL1 ran AArch32, which HCR_EL2.RW=1 rules out: the
/// vector is chosen by EL1's execution state, so exits from AArch32 EL0
/// arrive at [`hv_lower_sync`].
#[no_mangle]
extern "C" fn hv_lower_aarch32(_regs: &mut GuestRegs) {
    let vcpu = vcpu::current();
    vcpu.count(ExitCause::UndefInjected);
    guest_warn!(
        vcpu,
        Cause::AArch32,
        "exception from AArch32 guest code: undefined instruction"
    );
    inject::undefined_instruction();
}

/// An exception taken from EL2 itself: a hypervisor bug.
#[no_mangle]
extern "C" fn hv_current_el_fault(kind: u64) -> ! {
    panic!(
        "exception in the hypervisor: vector {kind}, ESR {:#x}, ELR {:#x}, FAR {:#x}",
        read_sysreg!("ESR_EL2"),
        read_sysreg!("ELR_EL2"),
        read_sysreg!("FAR_EL2")
    );
}
