//! The VM's virtio-net card, plugged into the hypervisor's switch
//! (`crate::hv::net`, deciding with the core's `net_switch`). Frames the
//! guest transmits are copied out under the card's lock, then forwarded
//! with it released (each receiving card is locked on its own, so two VMs
//! sending to each other cannot deadlock).

use alloc::string::String;

use hvcore::mmio::MmioOutcome;
use hvcore::net_device::{NetCounters, NetDevice, RX_QUEUE, TX_QUEUE};
use hvcore::net_switch::Mac;
use hvcore::virtio_mmio::{VirtioBackend, VirtioMmio};

use super::{VmDevice, Width};
use crate::hv::lock::Mutex;
use crate::hv::vcpu::Vcpu;
use crate::hv::vm::{DeviceRamAccess, Vm};

pub struct VirtioNet {
    transport: Mutex<VirtioMmio<NetDevice>>,
    /// Its interrupt (a software level in the vGIC).
    intid: u32,
    /// The network (switch) it is plugged into, by name.
    pub network: String,
    pub mac: Mac,
}

impl VirtioNet {
    pub fn new(network: &str, mac: Mac, intid: u32) -> VirtioNet {
        VirtioNet {
            transport: Mutex::new(VirtioMmio::new(NetDevice::new(mac))),
            intid,
            network: String::from(network),
            mac,
        }
    }

    /// A frame from the switch for `vm`: into its receive queue, or
    /// dropped (and counted) when it has no buffer for it.
    pub fn receive(&self, vm: &Vm, frame: &[u8]) {
        let mut ram = DeviceRamAccess::new(vm);
        let effects = self
            .transport
            .lock()
            .with_queue(RX_QUEUE, &mut ram, |nic, queue, mem| {
                nic.receive(frame, queue, mem)
            });
        if let Some(level) = effects.interrupt {
            vm.set_device_level(self.intid, 0, level);
        }
    }

    pub fn statistics(&self) -> NetCounters {
        self.transport.lock().backend.counters
    }
}

impl VmDevice for VirtioNet {
    fn access(
        &self,
        vcpu: &mut Vcpu,
        offset: u64,
        width: Width,
        write: bool,
        value: u64,
    ) -> MmioOutcome {
        let vm = vcpu.vm;
        let mut ram = DeviceRamAccess::new(vm);
        let (outcome, mut effects, mut frames, mut more) = {
            let mut card = self.transport.lock();
            let (outcome, effects) = card.access(offset, width.bytes(), write, value, &mut ram);
            (
                outcome,
                effects,
                card.backend.take_outbox(),
                card.backend.tx_pending,
            )
        };
        loop {
            if let Some(level) = effects.interrupt {
                vm.set_device_level(self.intid, vcpu.index, level);
            }
            if !frames.is_empty() {
                crate::hv::net::forward(vm, frames);
            }
            if !more {
                break;
            }
            // More frames than one burst: the next burst, once this one
            // was forwarded.
            let mut card = self.transport.lock();
            effects = card.with_queue(TX_QUEUE, &mut ram, |nic, queue, mem| {
                nic.notify(TX_QUEUE, queue, mem)
            });
            frames = card.backend.take_outbox();
            more = card.backend.tx_pending;
        }
        outcome
    }

    /// The card keeps its address and counters; the guest's driver starts
    /// from a reset device.
    fn reset(&self, _vm: &Vm) {
        self.transport.lock().reset();
    }
}
