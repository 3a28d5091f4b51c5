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

    /// What the disk did so far, and the physical device's mean time per
    /// request in microseconds (from being given it to its answer being
    /// seen).
    pub fn statistics(&self) -> (BlkCounters, u64) {
        let device = self.transport.lock();
        let disk = &device.backend.disk;
        let us = disk.device_ticks * 1_000_000
            / hv_arch::read_sysreg!("CNTFRQ_EL0").max(1)
            / disk.device_answers.max(1);
        (device.backend.counters, us)
    }

    /// The physical interrupt of the device storing the disk, when its
    /// requests complete on it.
    pub fn physical_irq(&self) -> Option<u32> {
        let device = self.transport.lock();
        let disk = &device.backend.disk;
        hvcore::blk_device::Disk::interrupts(disk)
            .then_some(disk.irq)
            .flatten()
    }

    /// The physical device storing `vm`'s disk interrupted: answer the
    /// requests it finished and raise the VM's disk interrupt. `loaded` is
    /// the vCPU whose interrupt exit this is (VM pointer, index): if it is
    /// the one to take the interrupt, the list registers refilled on the
    /// way out deliver it, with no kick (one exit fewer per request).
    pub fn physical_interrupt(&self, vm: &Vm, loaded: (*const Vm, usize)) {
        let mut ram = DeviceRamAccess::new(vm);
        let (effects, failure) = {
            let mut device = self.transport.lock();
            device.backend.disk.acknowledge_interrupt();
            let effects = device.poll_backend(&mut ram);
            device.backend.counters.interrupts += u64::from(effects.interrupt == Some(true));
            (effects, device.backend.take_failures())
        };
        if let Some(level) = effects.interrupt {
            if let Some(target) = vm.vgic.lock().set_level(self.intid, 0, level) {
                if loaded != (vm as *const Vm, target) {
                    hv_arch::gic::send_sgi(vm.cpu_of(target), crate::hv::KICK_SGI);
                }
            }
        }
        if let Some((failure, _)) = failure {
            log_disk_failure(vm, 0, failure);
        }
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
            let counters = &mut device.backend.counters;
            counters.accesses += 1;
            counters.interrupts += u64::from(effects.interrupt == Some(true));
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
