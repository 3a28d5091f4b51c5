//! The vGIC's two register windows: the distributor and the redistributor
//! frames (one per vCPU). Their state is the VM's vGIC, shared with the
//! interrupt paths; accesses that read or change interrupt state held in
//! the list registers sync them first and refill them after.

use hvcore::mmio::MmioOutcome;
use hvcore::vgic::{dist_needs_lr_sync, redist_needs_lr_sync, MmioResult};

use super::{VmDevice, Width};
use crate::hv::irq;
use crate::hv::vcpu::Vcpu;

/// The distributor (GICD_*).
pub static DISTRIBUTOR: Distributor = Distributor;
/// The redistributors (GICR_*), one 128 KiB frame per vCPU.
pub static REDISTRIBUTORS: Redistributors = Redistributors;

pub struct Distributor;
pub struct Redistributors;

impl VmDevice for Distributor {
    fn access(
        &self,
        vcpu: &mut Vcpu,
        offset: u64,
        width: Width,
        write: bool,
        value: u64,
    ) -> MmioOutcome {
        let size = width.bytes();
        if dist_needs_lr_sync(offset, write) {
            return access_synced(vcpu, Window::Dist, offset, size, write, value);
        }
        let index = vcpu.index;
        outcome(
            vcpu.vm
                .vgic
                .lock()
                .dist_access(index, offset, size, write, value),
        )
    }
}

impl VmDevice for Redistributors {
    fn access(
        &self,
        vcpu: &mut Vcpu,
        offset: u64,
        width: Width,
        write: bool,
        value: u64,
    ) -> MmioOutcome {
        let size = width.bytes();
        if redist_needs_lr_sync(offset, write) {
            return access_synced(vcpu, Window::Redist, offset, size, write, value);
        }
        outcome(
            vcpu.vm
                .vgic
                .lock()
                .redist_access(offset, size, write, value),
        )
    }
}

#[derive(Clone, Copy)]
enum Window {
    Dist,
    Redist,
}

/// A GIC register access that reads or changes list-register state: the
/// model is synced first and the list registers refilled afterwards, under
/// one hold of the vGIC lock.
#[inline(never)]
fn access_synced(
    vcpu: &mut Vcpu,
    window: Window,
    offset: u64,
    size: u8,
    write: bool,
    value: u64,
) -> MmioOutcome {
    let index = vcpu.index;
    // A read of pending or active state needs the list registers only
    // while they hold something or the timer's line may have dropped;
    // otherwise the model is exact and the read is like any other.
    if !write && !irq::model_may_be_stale(vcpu) {
        let mut vgic = vcpu.vm.vgic.lock();
        return outcome(match window {
            Window::Dist => vgic.dist_access(index, offset, size, write, value),
            Window::Redist => vgic.redist_access(offset, size, write, value),
        });
    }
    outcome(irq::with_vgic_locked_synced(
        vcpu,
        #[inline(always)]
        move |vgic| match window {
            Window::Dist => vgic.dist_access(index, offset, size, write, value),
            Window::Redist => vgic.redist_access(offset, size, write, value),
        },
    ))
}

#[inline(always)]
fn outcome(result: MmioResult) -> MmioOutcome {
    match result {
        MmioResult::Read(value) => MmioOutcome::Read(value),
        MmioResult::Written => MmioOutcome::Written,
        MmioResult::BadAccess => MmioOutcome::Abort,
    }
}
