//! A virtio-mmio transport with a backend that does no work (test VMs), for
//! measuring and testing the notification path.

use hvcore::mmio::MmioOutcome;
use hvcore::virtio_mmio::{NullBackend, VirtioMmio};

use super::{VmDevice, Width};
use crate::hv::lock::Mutex;
use crate::hv::vcpu::Vcpu;
use crate::hv::vm::{DeviceRamAccess, Vm};

pub struct NullVirtio {
    transport: Mutex<VirtioMmio<NullBackend>>,
    /// Its interrupt (a software level in the vGIC).
    intid: u32,
}

impl NullVirtio {
    pub fn new(intid: u32) -> NullVirtio {
        NullVirtio {
            transport: Mutex::new(VirtioMmio::new(NullBackend::default())),
            intid,
        }
    }
}

impl VmDevice for NullVirtio {
    fn access(
        &self,
        vcpu: &mut Vcpu,
        offset: u64,
        width: Width,
        write: bool,
        value: u64,
    ) -> MmioOutcome {
        let size = width.bytes();
        let vm = vcpu.vm;
        let mut ram = DeviceRamAccess::new(vm);
        let (outcome, effects) = self
            .transport
            .lock()
            .access(offset, size, write, value, &mut ram);
        if let Some(level) = effects.interrupt {
            vm.set_device_level(self.intid, vcpu.index, level);
        }
        outcome
    }

    fn reset(&self, _vm: &Vm) {
        *self.transport.lock() = VirtioMmio::new(NullBackend::default());
    }
}
