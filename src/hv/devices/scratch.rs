//! The scratch test device (test VMs only, `hv.testdev=on`).

use hvcore::mmio::{MmioDevice, MmioOutcome, ScratchDevice};

use super::{VmDevice, Width};
use crate::hv::lock::Mutex;
use crate::hv::vcpu::Vcpu;
use crate::hv::vm::Vm;

pub struct Scratch(Mutex<ScratchDevice>);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(Mutex::new(ScratchDevice::new()))
    }
}

impl VmDevice for Scratch {
    fn access(
        &self,
        _vcpu: &mut Vcpu,
        offset: u64,
        width: Width,
        write: bool,
        value: u64,
    ) -> MmioOutcome {
        let size = width.bytes();
        self.0.lock().access(offset, size, write, value)
    }

    fn reset(&self, _vm: &Vm) {
        *self.0.lock() = ScratchDevice::new();
    }
}
