//! Physical interrupts taken while a guest runs, and the list registers that
//! deliver virtual ones.

use core::sync::atomic::Ordering;

use hv_arch::{gic, read_sysreg, write_sysreg};
use hvcore::timer::ctl_asserts;
use hvcore::vgic::{Refill, Vgic};
use log::warn;

use super::vcpu::Vcpu;
use super::vm::{Vm, PTIMER_INTID, VTIMER_INTID};
use super::{KICK_SGI, MAINTENANCE_INTID};

/// PPI of the EL2 physical timer, which stands in for the guest's EL1
/// physical timer.
pub const HYP_TIMER_INTID: u32 = 26;

/// Bring the vGIC model up to date with what the guest did to its list
/// registers (acknowledged, completed) since it was entered, and with the
/// virtual timer's output: the guest changes CNTV_CTL/CVAL without a trap,
/// so a timer interrupt pending here stops being pending at the first exit
/// that syncs after its output deasserted (the rising edge comes as the
/// physical interrupt itself). Fast exits (hypercalls, sysreg traps) skip
/// this; between two syncs a deasserted timer interrupt already in a list
/// register may still be taken, as with KVM.
///
/// Only the list registers the last refill left in use are read (the
/// hardware never changes an invalid one): with none in use, and the timer
/// line known low in the model, this costs no lock.
pub fn sync_list_registers(vcpu: &mut Vcpu) {
    let exit = read_back(vcpu);
    if exit.needs_lock() {
        let vm = vcpu.vm;
        let kicks = sync_locked(vcpu, &mut vm.vgic.lock(), exit);
        kick_all(vm, vcpu.index, kicks);
    }
}

/// Load the highest-priority deliverable interrupts into the list registers
/// just before the guest resumes, and bring physical twins of forwarded
/// interrupts to the active state the vGIC wants. Only list registers whose
/// value changes are written.
pub fn flush_list_registers(vcpu: &mut Vcpu) {
    let vm = vcpu.vm;
    let entry = refill_locked(vcpu, &mut vm.vgic.lock());
    write_back(vcpu, entry);
}

/// Run `access` on the vGIC between a sync and a refill of this vCPU's list
/// registers, all under one hold of the vGIC lock (a GIC register access
/// that reads or may change interrupt state). Physical SPIs whose enable or
/// routing the access changed follow.
///
/// With no list register in use (so all of them empty) and the timer line
/// not dropped, the model is already exact for this vCPU: no sync, and no
/// refill unless the access changed something ([`Vgic::changes`]): an
/// access that changes nothing leaves the vCPU as an exit that never
/// touched the vGIC would.
#[inline(always)]
pub fn with_vgic_locked_synced<R>(vcpu: &mut Vcpu, access: impl FnOnce(&mut Vgic) -> R) -> R {
    let vm = vcpu.vm;
    let exit = read_back(vcpu);
    if exit.needs_lock() {
        return with_vgic_synced_slow(vcpu, exit, access);
    }
    let (result, enable_changes, entry) = {
        let mut vgic = vm.vgic.lock();
        let before = vgic.changes();
        let result = access(&mut vgic);
        if vgic.changes() == before {
            // Nothing to load or to pass on: as if the exit had not been.
            return result;
        }
        (
            result,
            vgic.has_hw_enable_changes(),
            refill_locked(vcpu, &mut vgic),
        )
    };
    if enable_changes {
        vm.apply_hw_enable_changes();
    }
    write_back(vcpu, entry);
    result
}

/// [`with_vgic_locked_synced`] when the list registers must be synced first.
#[inline(never)]
fn with_vgic_synced_slow<R>(
    vcpu: &mut Vcpu,
    exit: ExitState,
    access: impl FnOnce(&mut Vgic) -> R,
) -> R {
    let vm = vcpu.vm;
    let (result, kicks, enable_changes, entry) = {
        let mut vgic = vm.vgic.lock();
        let kicks = sync_locked(vcpu, &mut vgic, exit);
        let result = access(&mut vgic);
        let enable_changes = vgic.has_hw_enable_changes();
        (
            result,
            kicks,
            enable_changes,
            refill_locked(vcpu, &mut vgic),
        )
    };
    kick_all(vm, vcpu.index, kicks);
    if enable_changes {
        vm.apply_hw_enable_changes();
    }
    write_back(vcpu, entry);
    result
}

/// Whether the vGIC model may differ from the truth for this vCPU: list
/// registers in use (the guest may have acknowledged or completed them) or
/// the virtual timer's output may have dropped since the last sync.
#[inline(always)]
pub fn model_may_be_stale(vcpu: &Vcpu) -> bool {
    vcpu.lrs_in_use != 0 || vcpu.vtimer_level_maybe_high
}

/// What an exit found before taking the vGIC lock.
#[derive(Clone, Copy)]
struct ExitState {
    /// List registers were in use: the model must read them back.
    lrs_in_use: bool,
    /// The timer's output is low while the model may have its line high.
    vtimer_dropped: bool,
}

impl ExitState {
    fn needs_lock(self) -> bool {
        self.lrs_in_use || self.vtimer_dropped
    }
}

/// Read back the list registers in use into the vCPU's copy, and sample the
/// virtual timer's output if the model may have its line high.
#[inline(always)]
fn read_back(vcpu: &mut Vcpu) -> ExitState {
    let mut in_use = vcpu.lrs_in_use;
    let lrs_in_use = in_use != 0;
    while in_use != 0 {
        let slot = in_use.trailing_zeros() as usize;
        in_use &= in_use - 1;
        if let Some(lr) = vcpu.lrs.get_mut(slot) {
            *lr = gic::read_lr(slot);
        }
    }
    let vtimer_dropped = vcpu.vtimer_level_maybe_high && !ctl_asserts(read_sysreg!("CNTV_CTL_EL0"));
    ExitState {
        lrs_in_use,
        vtimer_dropped,
    }
}

#[inline(always)]
/// The exit half under the vGIC lock: the model takes in the list
/// registers read back and the timer's dropped line. Returns the vCPUs to kick.
fn sync_locked(vcpu: &mut Vcpu, vgic: &mut Vgic, exit: ExitState) -> u32 {
    let kicks = if exit.lrs_in_use {
        vgic.sync_lrs(vcpu.index, &vcpu.lrs[..vcpu.num_lrs])
    } else {
        0
    };
    if exit.vtimer_dropped {
        vgic.set_level(VTIMER_INTID, vcpu.index, false);
        vcpu.vtimer_level_maybe_high = false;
    }
    kicks
}

/// What an entry must still do after dropping the vGIC lock.
#[derive(Clone, Copy)]
struct EntryState {
    refill: Refill,
    phys_changes: bool,
}

#[inline(always)]
/// The entry half under the vGIC lock: new list-register contents into the
/// vCPU's copy.
fn refill_locked(vcpu: &mut Vcpu, vgic: &mut Vgic) -> EntryState {
    let refill = vgic.refill_lrs(vcpu.index, &mut vcpu.lrs[..vcpu.num_lrs]);
    vcpu.lrs_in_use = vgic.lrs_in_use(vcpu.index);
    EntryState {
        refill,
        phys_changes: vgic.has_hw_active_changes(),
    }
}

/// The entry half after the lock: physical twins, then the list registers
/// that changed and ICH_HCR_EL2 if it changed.
#[inline(always)]
fn write_back(vcpu: &mut Vcpu, entry: EntryState) {
    if entry.phys_changes {
        vcpu.vm.apply_hw_active_changes();
    }
    let mut changed = entry.refill.changed;
    while changed != 0 {
        let slot = changed.trailing_zeros() as usize;
        changed &= changed - 1;
        if let Some(lr) = vcpu.lrs.get(slot) {
            gic::write_lr(slot, *lr);
        }
    }
    if entry.refill.hcr != vcpu.ich_hcr {
        gic::write_ich_hcr(entry.refill.hcr);
        vcpu.ich_hcr = entry.refill.hcr;
    }
}

/// Kick every vCPU in the bitmask `targets` (bit = vCPU index).
pub fn kick_all(vm: &Vm, current_index: usize, mut targets: u32) {
    while targets != 0 {
        let target = targets.trailing_zeros() as usize;
        targets &= targets - 1;
        kick(vm, current_index, target);
    }
}

/// Make vCPU `target` of `vm` notice new pending interrupts: if it runs on
/// another physical CPU, interrupt that CPU so it exits and refills its list
/// registers.
pub fn kick(vm: &Vm, current_index: usize, target: usize) {
    if target != current_index && target < vm.num_vcpus {
        gic::send_sgi(vm.cpu_of(target), KICK_SGI);
    }
}

/// The guest's EL1 physical timer changed (a trapped CNTP_* write) or its
/// deadline passed: PPI 30 follows its output, and the EL2 physical timer
/// is armed for the next rising edge (disarmed while the output is high or
/// cannot rise, so it never fires twice for one edge).
pub fn update_ptimer(vcpu: &mut Vcpu) {
    if vcpu.shared {
        // The same timer also ends slices and wakes parked vCPUs.
        super::timeshare::rearm(vcpu);
    } else {
        arm_for_ptimer(vcpu);
    }
    ptimer_level(vcpu);
}

/// The EL2 physical timer fired: on a time-shared CPU it is disarmed here
/// and re-armed by the scheduler at the end of the exit (a deadline already
/// past, such as the end of a slice, would otherwise fire again at once).
fn hyp_timer_fired(vcpu: &mut Vcpu) {
    if vcpu.shared {
        write_sysreg!("CNTHP_CTL_EL2", 0);
        hv_arch::sysreg::isb();
    } else {
        arm_for_ptimer(vcpu);
    }
    ptimer_level(vcpu);
}

fn arm_for_ptimer(vcpu: &Vcpu) {
    let now = read_sysreg!("CNTPCT_EL0");
    arm_hyp_timer(vcpu.sysregs.ptimer.next_deadline(now));
}

/// Arm the EL2 physical timer for `deadline` (a physical count), or disarm it.
pub fn arm_hyp_timer(deadline: Option<u64>) {
    match deadline {
        Some(deadline) => {
            write_sysreg!("CNTHP_CVAL_EL2", deadline);
            write_sysreg!("CNTHP_CTL_EL2", 1);
        }
        None => write_sysreg!("CNTHP_CTL_EL2", 0),
    }
    hv_arch::sysreg::isb();
}

/// PPI 30 follows the emulated physical timer's output.
fn ptimer_level(vcpu: &mut Vcpu) {
    let now = read_sysreg!("CNTPCT_EL0");
    let output = vcpu.sysregs.ptimer.output(now);
    let target = vcpu
        .vm
        .vgic
        .lock()
        .set_level(PTIMER_INTID, vcpu.index, output);
    if let Some(target) = target {
        kick(vcpu.vm, vcpu.index, target);
    }
}

/// What taking a CPU's pending physical interrupts found: bit flags, so
/// the exit's common case (refilled, on an owned CPU) is one bit test, as
/// when this was a `bool` (an enum's compares were hoisted above it).
#[derive(Clone, Copy)]
pub struct Taken(u32);

impl Taken {
    const REFILLED: u32 = 1;
    const VM_STOPPED: u32 = 2;

    /// The list registers were refilled after the last change made to the
    /// vGIC (the common case: one forwarded timer interrupt, refilled
    /// under the same lock it was taken in), so the exit need not.
    #[inline(always)]
    pub fn refilled(self) -> bool {
        self.0 & Self::REFILLED != 0
    }

    /// A kick or a console command said that the vCPU's VM was stopped:
    /// the rest can wait, the vCPU parks.
    #[inline(always)]
    pub fn vm_stopped(self) -> bool {
        self.0 & Self::VM_STOPPED != 0
    }
}

/// Handle every pending physical interrupt on this CPU.
pub fn handle_physical(vcpu: &mut Vcpu) -> Taken {
    let mut refilled = false;
    loop {
        let intid = gic::acknowledge();
        if intid >= gic::SPURIOUS {
            return Taken(u32::from(refilled));
        }
        refilled = false;
        // EOImode=1: this only drops the running priority.
        gic::priority_drop(intid);
        if intid == VTIMER_INTID || vcpu.vm.assigned_spis.contains(&intid) {
            // Forwarded with the HW bit: stays physically active until the
            // guest deactivates its virtual twin.
            if intid == VTIMER_INTID {
                vcpu.vtimer_level_maybe_high = true;
            }
            let vm = vcpu.vm;
            let (target, entry) = {
                let mut vgic = vm.vgic.lock();
                let target = vgic.hw_fired(intid, vcpu.index);
                (target, refill_locked(vcpu, &mut vgic))
            };
            write_back(vcpu, entry);
            refilled = true;
            if let Some(target) = target {
                kick(vm, vcpu.index, target);
            }
        } else if Some(intid) == vcpu.vm.host_uart_irq {
            // Input for the focused VM's emulated UART or the hypervisor
            // console (whichever VM's CPU the interrupt is routed to).
            super::console::receive_input();
            gic::deactivate(intid);
            // A console command may have stopped this very VM.
            if vcpu.vm.stopped.load(Ordering::Acquire) {
                return Taken(Taken::VM_STOPPED);
            }
        } else if intid == MAINTENANCE_INTID {
            // A level signal from the list registers and ICH_HCR_EL2 (an
            // underflow, or a level interrupt's EOI). It stays asserted
            // until they change, and they change only here: resync and
            // refill now, which never leaves a maintenance condition true,
            // so it does not fire again before the guest has run.
            sync_list_registers(vcpu);
            flush_list_registers(vcpu);
            hv_arch::sysreg::isb();
            gic::deactivate(intid);
            refilled = true;
        } else if intid == HYP_TIMER_INTID {
            hyp_timer_fired(vcpu);
            gic::deactivate(intid);
        } else if intid == KICK_SGI {
            // Here to make us exit (list registers are refreshed on the way
            // out), or to stop: the VM was powered off elsewhere.
            gic::deactivate(intid);
            if vcpu.vm.stopped.load(Ordering::Acquire) {
                return Taken(Taken::VM_STOPPED);
            }
        } else if let Some(vm) = super::disk_of_irq(intid) {
            // A physical disk finished requests (of any VM: the device's
            // VM, not necessarily this vCPU's).
            // On an owned CPU the list registers are flushed at the end of
            // this exit: the loaded vCPU needs no kick. (A time-shared CPU
            // may switch first: kick.)
            let loaded = if vcpu.shared {
                (core::ptr::null(), usize::MAX)
            } else {
                (vcpu.vm as *const Vm, vcpu.index)
            };
            vm.disk_interrupt(loaded);
            gic::deactivate(intid);
        } else {
            warn!("unexpected physical interrupt {intid}");
            gic::deactivate(intid);
        }
    }
}
