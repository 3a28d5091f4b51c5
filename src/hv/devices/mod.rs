//! The emulated MMIO devices a VM can have, one file each, behind one
//! interface ([`VmDevice`]) on the VM's bus ([`Bus`], ranges kept by the
//! core's [`MmioBus`]). A stage-2 data abort in a device's range becomes one
//! call of its [`VmDevice::access`] with the offset in its range.
//!
//! Adding a device type: a new file here implementing [`VmDevice`], and one
//! `bus.register(base, size, device)` in `Vm::create`.

use hvcore::mmio::MmioOutcome;
use hvcore::mmio_bus::MmioBus;

use super::vcpu::Vcpu;
use super::vm::Vm;

pub mod blk;
pub mod gic;
pub mod net;
pub mod pl011;
pub mod scratch;
pub mod virtio;

/// A VM's devices by guest-physical range.
pub type Bus = MmioBus<&'static dyn VmDevice>;

/// The width of an access. An enum rather than a byte count so that a
/// device, called through a trait object, still knows the width is a
/// power of two up to 8 (its alignment checks compile to a mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Width {
    Byte = 0,
    Half = 1,
    Word = 2,
    Double = 3,
}

impl Width {
    /// The width of an access of `size` bytes (1, 2, 4 or 8 as decoded).
    #[inline(always)]
    pub fn of_size(size: u8) -> Width {
        match size {
            1 => Width::Byte,
            2 => Width::Half,
            4 => Width::Word,
            _ => Width::Double,
        }
    }

    /// Bytes accessed.
    #[inline(always)]
    pub fn bytes(self) -> u8 {
        1 << self as u8
    }
}

/// One emulated device of a VM, as its bus sees it.
pub trait VmDevice: Sync {
    /// Emulate one access of `width` by `vcpu` at `offset` in the device's
    /// range; `value` is what a store writes. A device whose state lives
    /// partly in the list registers (the vGIC's) brings it in step itself,
    /// and only for the registers that need it.
    fn access(
        &self,
        vcpu: &mut Vcpu,
        offset: u64,
        width: Width,
        write: bool,
        value: u64,
    ) -> MmioOutcome;

    /// Return to the state at reset (the VM restarts; no vCPU of it runs).
    /// Devices whose state the VM keeps itself (the vGIC) need nothing.
    fn reset(&self, _vm: &Vm) {}
}

/// A device that lives as long as its VM (VMs are never freed).
pub fn leak<D: VmDevice + 'static>(device: D) -> &'static dyn VmDevice {
    alloc::boxed::Box::leak(alloc::boxed::Box::new(device))
}
