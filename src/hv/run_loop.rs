//! The one place where what an exit means is carried out.
//!
//! Exit handlers (`super::exits`, `super::hypercall`) emulate and return an
//! [`ExitAction`]; the lower-EL exit entries hand it to [`finish_exit`],
//! which takes the step the core's [`next_step`] chooses: back to the guest,
//! wait in place, block or yield or reschedule on a time-shared CPU, park
//! the vCPU, reset the machine. Only here do exits switch vCPUs, wait or
//! never return.
//!
//! The null hypercall, system-register traps and MMIO return straight to
//! the guest without passing here: their action is always `Resume`, and
//! returning it to the vector code cost each 5-6 instructions (measured:
//! null hypercall 78 -> 83, over its budget of 79).

use hv_arch::boot::GuestRegs;
use hv_arch::cpu;
use hvcore::exit_action::{after_interrupts, next_step, ExitAction, Step};

use super::irq::Taken;
use super::vcpu::{self, Vcpu};
use super::{console, irq, timeshare};

/// Carry out `action` for `vcpu`, whose exit saved `regs`. Returns when the
/// guest (this vCPU, or another one switched in) is to be entered.
#[inline(always)]
pub fn finish_exit(vcpu: &mut Vcpu, regs: &mut GuestRegs, action: ExitAction) {
    match next_step(action, vcpu.shared) {
        Step::Resume => {}
        Step::WaitInPlace => wait_in_place(vcpu),
        Step::Block => {
            if timeshare::block(vcpu, regs) {
                park()
            }
        }
        Step::YieldToOthers => timeshare::yield_to_others(vcpu, regs),
        Step::Schedule => timeshare::schedule(vcpu, regs),
        Step::Park => park(),
        Step::ResetMachine => reset_machine(vcpu),
    }
}

/// The end of a physical-interrupt exit that found `taken`: as
/// [`finish_exit`] with its action (a scheduling point, or park), and the
/// list registers refilled on an owned CPU unless that was done. Written
/// out so that each common case costs the one test it did before actions
/// (on an owned CPU the timer's exit tests one bit; a stopped VM is the
/// rare case behind it).
#[inline(always)]
pub fn finish_interrupt_exit(vcpu: &mut Vcpu, regs: &mut GuestRegs, taken: Taken) {
    if vcpu.shared {
        return finish_exit(vcpu, regs, after_interrupts(taken.vm_stopped()));
    }
    if !taken.refilled() {
        if taken.vm_stopped() {
            return finish_exit(vcpu, regs, after_interrupts(true));
        }
        irq::flush_list_registers(vcpu);
    }
}

/// A WFI on an owned CPU: wait for a physical interrupt for this CPU (its
/// timer, a kick from another vCPU, a device) unless one is pending; the
/// vCPU stays loaded and is entered again after it.
#[inline(never)]
fn wait_in_place(vcpu: &mut Vcpu) {
    irq::sync_list_registers(vcpu);
    // An idle guest shows its unfinished console line (a prompt).
    console::flush_guest(vcpu.vm.vmid);
    if !vcpu.vm.vgic.lock().has_pending(vcpu.index) {
        cpu::wfi();
    }
    irq::flush_list_registers(vcpu);
}

/// The vCPU is off (CPU_OFF) or its VM stopped: forget it here and wait
/// for this CPU's next vCPU.
#[cold]
#[inline(never)]
fn park() -> ! {
    vcpu::stop_current()
}

#[cold]
#[inline(never)]
fn reset_machine(vcpu: &mut Vcpu) -> ! {
    super::print_exit_counters(vcpu.vm);
    hv_arch::psci::system_reset()
}
