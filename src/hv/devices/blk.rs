//! The VM's virtio-blk disk, stored by a physical virtio-blk device (the
//! machine's, driven by `crate::hv::phys_blk`). A notification serves every
//! request the guest made available before it returns (the physical device
//! answers each one first): see the README on why synchronously.

use hvcore::blk_device::{BlkCounters, BlkDevice, Failure};
use hvcore::log_limit::{Cause, Verdict};
use hvcore::mmio::MmioOutcome;
use hvcore::virtio_mmio::VirtioMmio;

use super::{VmDevice, Width};
use crate::hv::lock::Mutex;
use crate::hv::phys_blk::PhysBlk;
use crate::hv::vcpu::Vcpu;
use crate::hv::vm::{DeviceRamAccess, Vm};

pub struct VirtioBlk {
    transport: Mutex<VirtioMmio<BlkDevice<PhysBlk>>>,
    /// Its interrupt (a software level in the vGIC).
    intid: u32,
}

impl VirtioBlk {
    pub fn new(disk: PhysBlk, vm_name: &str, intid: u32) -> VirtioBlk {
        VirtioBlk {
            transport: Mutex::new(VirtioMmio::new(BlkDevice::new(disk, vm_name))),
            intid,
        }
    }

    /// What the disk did so far.
    pub fn statistics(&self) -> BlkCounters {
        self.transport.lock().backend.counters
    }
}

impl VmDevice for VirtioBlk {
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
        let (outcome, effects, failure) = {
            let mut device = self.transport.lock();
            let (outcome, effects) = device.access(offset, size, write, value, &mut ram);
            (outcome, effects, device.backend.take_failures())
        };
        if let Some(level) = effects.interrupt {
            vm.set_device_level(self.intid, vcpu.index, level);
        }
        if let Some((failure, count)) = failure {
            let events =
                &crate::hv::guest_log::EVENTS[crate::hv::vcpu::counter_index(vm, vcpu.index)];
            for _ in 0..count {
                events.record(Cause::DiskRequestFailed);
            }
            log_disk_failure(vm, vcpu.index, failure);
        }
        outcome
    }

    /// The disk keeps its contents and counters; the guest's driver starts
    /// from a reset device.
    fn reset(&self, _vm: &Vm) {
        self.transport.lock().reset();
    }
}

/// Log a failed disk request, rate-limited per VM (a guest decides how
/// many it makes).
#[cold]
fn log_disk_failure(vm: &Vm, vcpu: usize, failure: Failure) {
    let now = hv_arch::read_sysreg!("CNTPCT_EL0");
    let verdict = vm.log_limit.lock().event(Cause::DiskRequestFailed, now);
    if let Verdict::Print { suppressed_before } = verdict {
        if suppressed_before > 0 {
            log::warn!(
                "vm{}: {suppressed_before} more {} lines suppressed",
                vm.vmid,
                Cause::DiskRequestFailed.name()
            );
        }
        let why = match failure {
            Failure::Request(hvcore::virtio_blk::S_UNSUPP) => "unsupported request type: UNSUPP",
            Failure::Request(_) => {
                "bad request (past the end, partial sector, read-only disk or short header): IOERR"
            }
            Failure::Buffers => "data not in the VM's RAM: IOERR",
            Failure::Disk => "the physical disk failed it: IOERR",
        };
        log::warn!("vm{} vcpu{vcpu}: disk request: {why}", vm.vmid);
    }
}
