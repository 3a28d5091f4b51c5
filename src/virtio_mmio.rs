//! The virtio-mmio transport (virtio 1.2, section 4.2.2, version 2 layout):
//! the register window a guest driver uses to discover a device, negotiate
//! features and set up its virtqueues. A device backend plugs in through
//! [`VirtioBackend`]; the transport validates everything the driver writes.
//!
//! Bad driver behaviour follows the specification: writes to read-only
//! registers are ignored, odd widths and offsets abort, and a queue that
//! cannot be used sets DEVICE_NEEDS_RESET in the status register.

use crate::mmio::MmioOutcome;
use crate::virtqueue::{GuestMemory, QueueConfig, SplitQueue};

const MAGIC: u64 = 0x7472_6976; // "virt"
const VERSION: u64 = 2;
/// Vendor ID the hypervisor reports ("HVRS").
pub const VENDOR_ID: u64 = 0x5352_5648;
/// Queues a transport offers at most.
pub const MAX_QUEUES: usize = 2;
/// Largest queue the transport offers.
pub const QUEUE_NUM_MAX: u16 = 256;

/// Device status bits (virtio 2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// VIRTIO_F_VERSION_1: the device is a modern (1.x) device.
const FEATURE_VERSION_1: u64 = 1 << 32;

/// A read of `size` bytes at `offset` of a device's configuration fields
/// laid out in `fields` (little-endian; 0 beyond them).
pub fn config_bytes(fields: &[u8], offset: u64, size: u8) -> u64 {
    let mut value = 0u64;
    for k in (0..u64::from(size)).rev() {
        let byte = offset
            .checked_add(k)
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| fields.get(at))
            .copied()
            .unwrap_or(0);
        value = value << 8 | u64::from(byte);
    }
    value
}

/// What a concrete device does with its queues.
pub trait VirtioBackend {
    /// Virtio device ID (e.g. 4 = entropy source).
    fn device_id(&self) -> u32;
    /// Device-specific feature bits (VERSION_1 is added by the transport).
    fn features(&self) -> u64;
    /// The driver notified queue `index`; the queue was validated. Returns
    /// whether the used ring changed (the transport then raises its interrupt).
    fn notify(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<bool, crate::virtqueue::QueueError>;
    /// Read `size` bytes at `offset` of the device configuration space
    /// (little-endian; 0 where the device has nothing).
    fn config_read(&self, offset: u64, size: u8) -> u64 {
        let _ = (offset, size);
        0
    }
    /// Work the backend finished outside a notification (e.g. on a
    /// physical device's interrupt) for live queue `index`. Returns whether
    /// the used ring changed, as [`VirtioBackend::notify`].
    fn poll(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<bool, crate::virtqueue::QueueError> {
        let _ = (index, queue, mem);
        Ok(false)
    }
    /// The device is reset: drop (after waiting for) any work in flight.
    fn reset(&mut self) {}
}

/// A backend that does nothing with notifications (used to measure the
/// notification path itself).
#[derive(Debug, Default)]
pub struct NullBackend {
    pub notifications: u64,
}

impl VirtioBackend for NullBackend {
    fn device_id(&self) -> u32 {
        4
    }
    fn features(&self) -> u64 {
        0
    }
    fn notify(
        &mut self,
        _index: usize,
        _queue: &mut SplitQueue,
        _mem: &mut dyn GuestMemory,
    ) -> Result<bool, crate::virtqueue::QueueError> {
        self.notifications += 1;
        Ok(false)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct QueueRegs {
    num: u16,
    ready: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

/// One virtio-mmio device: transport state plus its backend.
pub struct VirtioMmio<B: VirtioBackend> {
    pub backend: B,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: [QueueRegs; MAX_QUEUES],
    live: [Option<SplitQueue>; MAX_QUEUES],
    interrupt_status: u32,
}

/// Register offsets.
mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// What the hypervisor must do after an access, besides answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// The device's interrupt line level changed to this.
    pub interrupt: Option<bool>,
}

fn set_low(v: u64, low: u64) -> u64 {
    (v & !0xffff_ffff) | (low & 0xffff_ffff)
}

fn set_high(v: u64, high: u64) -> u64 {
    (v & 0xffff_ffff) | ((high & 0xffff_ffff) << 32)
}

impl<B: VirtioBackend> VirtioMmio<B> {
    pub fn new(backend: B) -> Self {
        VirtioMmio {
            backend,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: [QueueRegs::default(); MAX_QUEUES],
            live: [None, None],
            interrupt_status: 0,
        }
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    /// Device reset (the driver wrote 0 to Status, or the VM restarts):
    /// everything but the backend.
    pub fn reset(&mut self) {
        self.backend.reset();
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.queues = [QueueRegs::default(); MAX_QUEUES];
        self.live = [None, None];
        self.interrupt_status = 0;
    }

    fn selected(&mut self) -> Option<&mut QueueRegs> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn needs_reset(&mut self) {
        self.status |= status::NEEDS_RESET;
    }

    /// Let the backend answer what it finished outside a notification
    /// (see [`VirtioBackend::poll`]); returns the interrupt change.
    pub fn poll_backend(&mut self, mem: &mut dyn GuestMemory) -> Effects {
        let mut effects = Effects { interrupt: None };
        for index in 0..MAX_QUEUES {
            let polled = self.with_queue(index, mem, |backend, queue, mem| {
                backend.poll(index, queue, mem)
            });
            effects.interrupt = effects.interrupt.or(polled.interrupt);
        }
        effects
    }

    /// Work on live queue `index` outside a notification (e.g. deliver a
    /// received frame): `work` gets the backend, the queue and the RAM and
    /// says whether the used ring changed; the interrupt follows. Nothing
    /// happens while the driver has not set DRIVER_OK or the device needs
    /// a reset.
    pub fn with_queue(
        &mut self,
        index: usize,
        mem: &mut dyn GuestMemory,
        work: impl FnOnce(
            &mut B,
            &mut SplitQueue,
            &mut dyn GuestMemory,
        ) -> Result<bool, crate::virtqueue::QueueError>,
    ) -> Effects {
        let mut effects = Effects { interrupt: None };
        if self.status & status::DRIVER_OK == 0 || self.status & status::NEEDS_RESET != 0 {
            return effects;
        }
        let Some(queue) = self.live.get_mut(index).and_then(Option::as_mut) else {
            return effects;
        };
        match work(&mut self.backend, queue, mem) {
            Ok(true) => {
                self.interrupt_status |= 1;
                effects.interrupt = Some(true);
            }
            Ok(false) => {}
            Err(_) => self.needs_reset(),
        }
        effects
    }

    /// One access by the driver; `mem` is the VM's RAM (for queue setup and notifications).
    pub fn access(
        &mut self,
        offset: u64,
        size: u8,
        write: bool,
        value: u64,
        mem: &mut dyn GuestMemory,
    ) -> (MmioOutcome, Effects) {
        let none = Effects { interrupt: None };
        // Device configuration space is byte-addressable (virtio 4.2.2.2):
        // the backend answers reads; no device here has writable fields.
        if offset >= reg::CONFIG {
            if !matches!(size, 1 | 2 | 4 | 8) || !offset.is_multiple_of(u64::from(size)) {
                return (MmioOutcome::Abort, none);
            }
            return (
                if write {
                    MmioOutcome::Written
                } else {
                    MmioOutcome::Read(self.backend.config_read(offset - reg::CONFIG, size))
                },
                none,
            );
        }
        // All transport registers are 32-bit, naturally aligned (virtio 4.2.2.2).
        if size != 4 || !offset.is_multiple_of(4) {
            return (MmioOutcome::Abort, none);
        }
        if !write {
            let features = self.backend.features() | FEATURE_VERSION_1;
            let v = match offset {
                reg::MAGIC => MAGIC,
                reg::VERSION => VERSION,
                reg::DEVICE_ID => u64::from(self.backend.device_id()),
                reg::VENDOR_ID => VENDOR_ID,
                reg::DEVICE_FEATURES => match self.device_features_sel {
                    0 => features & 0xffff_ffff,
                    1 => features >> 32,
                    _ => 0,
                },
                reg::QUEUE_NUM_MAX => self.selected().map_or(0, |_| u64::from(QUEUE_NUM_MAX)),
                reg::QUEUE_READY => self.selected().map_or(0, |q| u64::from(q.ready)),
                reg::INTERRUPT_STATUS => u64::from(self.interrupt_status),
                reg::STATUS => u64::from(self.status),
                reg::CONFIG_GENERATION => 0,
                _ => 0,
            };
            return (MmioOutcome::Read(v), none);
        }
        let v = value & 0xffff_ffff;
        let mut effects = none;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v as u32,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v as u32,
            reg::DRIVER_FEATURES => match self.driver_features_sel {
                0 => self.driver_features = set_low(self.driver_features, v),
                1 => self.driver_features = set_high(self.driver_features, v),
                _ => {}
            },
            reg::QUEUE_SEL => self.queue_sel = v as u32,
            reg::QUEUE_NUM => {
                if let Some(q) = self.selected() {
                    q.num = v as u16;
                }
            }
            reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => {
                if let Some(q) = self.selected() {
                    let high = offset % 8 == 4;
                    let field = match offset & !4 {
                        reg::QUEUE_DESC_LOW => &mut q.desc,
                        reg::QUEUE_DRIVER_LOW => &mut q.driver,
                        _ => &mut q.device,
                    };
                    *field = if high {
                        set_high(*field, v)
                    } else {
                        set_low(*field, v)
                    };
                }
            }
            reg::QUEUE_READY => {
                let index = self.queue_sel as usize;
                if let Some(q) = self.queues.get(index).copied() {
                    if v & 1 == 1 {
                        let config = QueueConfig {
                            size: q.num,
                            desc_table: q.desc,
                            avail_ring: q.driver,
                            used_ring: q.device,
                        };
                        match SplitQueue::new(config, mem) {
                            Ok(queue) if q.num <= QUEUE_NUM_MAX => {
                                self.live[index] = Some(queue);
                                self.queues[index].ready = true;
                            }
                            _ => self.needs_reset(),
                        }
                    } else {
                        self.live[index] = None;
                        self.queues[index].ready = false;
                    }
                }
            }
            reg::QUEUE_NOTIFY => {
                let index = v as usize;
                match self.live.get_mut(index).and_then(Option::as_mut) {
                    Some(queue) if self.status & status::DRIVER_OK != 0 => {
                        match self.backend.notify(index, queue, mem) {
                            Ok(true) => {
                                self.interrupt_status |= 1;
                                effects.interrupt = Some(true);
                            }
                            Ok(false) => {}
                            Err(_) => self.needs_reset(),
                        }
                    }
                    // Notifying a queue that is not live is a driver bug; ignore it.
                    _ => {}
                }
            }
            reg::INTERRUPT_ACK => {
                self.interrupt_status &= !(v as u32);
                if self.interrupt_status == 0 {
                    effects.interrupt = Some(false);
                }
            }
            reg::STATUS => {
                if v == 0 {
                    self.reset();
                    effects.interrupt = Some(false);
                } else {
                    // The driver may only add bits (virtio 2.1.2); NEEDS_RESET stays set.
                    self.status |= v as u32 & !status::NEEDS_RESET;
                }
            }
            // Read-only registers ignore writes.
            _ => {}
        }
        (MmioOutcome::Written, effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtqueue::FlatMemory;

    fn ram() -> FlatMemory {
        FlatMemory {
            base: 0x4000_0000,
            bytes: alloc::vec![0; 0x4000],
        }
    }

    fn w(d: &mut VirtioMmio<NullBackend>, mem: &mut FlatMemory, off: u64, v: u64) {
        assert_eq!(d.access(off, 4, true, v, mem).0, MmioOutcome::Written);
    }

    fn r(d: &mut VirtioMmio<NullBackend>, mem: &mut FlatMemory, off: u64) -> u64 {
        match d.access(off, 4, false, 0, mem).0 {
            MmioOutcome::Read(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn driver_initialisation_and_notify() {
        let (mut d, mut mem) = (VirtioMmio::new(NullBackend::default()), ram());
        assert_eq!(r(&mut d, &mut mem, reg::MAGIC), MAGIC);
        assert_eq!(r(&mut d, &mut mem, reg::VERSION), 2);
        assert_eq!(r(&mut d, &mut mem, reg::DEVICE_ID), 4);
        w(&mut d, &mut mem, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(r(&mut d, &mut mem, reg::DEVICE_FEATURES), 1); // VERSION_1
        w(
            &mut d,
            &mut mem,
            reg::STATUS,
            u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK),
        );
        w(&mut d, &mut mem, reg::QUEUE_SEL, 0);
        assert_eq!(r(&mut d, &mut mem, reg::QUEUE_NUM_MAX), 256);
        w(&mut d, &mut mem, reg::QUEUE_NUM, 8);
        w(&mut d, &mut mem, reg::QUEUE_DESC_LOW, 0x4000_1000);
        w(&mut d, &mut mem, reg::QUEUE_DRIVER_LOW, 0x4000_2000);
        w(&mut d, &mut mem, reg::QUEUE_DEVICE_LOW, 0x4000_3000);
        w(&mut d, &mut mem, reg::QUEUE_READY, 1);
        assert_eq!(r(&mut d, &mut mem, reg::QUEUE_READY), 1);
        w(&mut d, &mut mem, reg::STATUS, u64::from(status::DRIVER_OK));
        w(&mut d, &mut mem, reg::QUEUE_NOTIFY, 0);
        assert_eq!(d.backend.notifications, 1);
        assert_eq!(
            r(&mut d, &mut mem, reg::STATUS) & u64::from(status::NEEDS_RESET),
            0
        );
    }

    #[test]
    fn bad_driver_input() {
        let (mut d, mut mem) = (VirtioMmio::new(NullBackend::default()), ram());
        // Odd widths and offsets abort; read-only registers ignore writes.
        assert_eq!(
            d.access(reg::MAGIC, 1, false, 0, &mut mem).0,
            MmioOutcome::Abort
        );
        assert_eq!(d.access(0x2, 4, false, 0, &mut mem).0, MmioOutcome::Abort);
        w(&mut d, &mut mem, reg::MAGIC, 0);
        assert_eq!(r(&mut d, &mut mem, reg::MAGIC), MAGIC);
        // A queue outside guest memory cannot go live: NEEDS_RESET.
        w(&mut d, &mut mem, reg::QUEUE_NUM, 8);
        w(&mut d, &mut mem, reg::QUEUE_DESC_LOW, 0x1000);
        w(&mut d, &mut mem, reg::QUEUE_READY, 1);
        assert_eq!(r(&mut d, &mut mem, reg::QUEUE_READY), 0);
        assert_ne!(
            r(&mut d, &mut mem, reg::STATUS) & u64::from(status::NEEDS_RESET),
            0
        );
        // Notifying a queue that does not exist is ignored; reset clears everything.
        w(&mut d, &mut mem, reg::QUEUE_NOTIFY, 7);
        assert_eq!(d.backend.notifications, 0);
        w(&mut d, &mut mem, reg::STATUS, 0);
        assert_eq!(r(&mut d, &mut mem, reg::STATUS), 0);
        // Selecting a queue beyond the device's: QueueNumMax reads 0.
        w(&mut d, &mut mem, reg::QUEUE_SEL, 9);
        assert_eq!(r(&mut d, &mut mem, reg::QUEUE_NUM_MAX), 0);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;
    use crate::virtqueue::FlatMemory;

    /// Register offsets a driver uses, plus one past the transport and one reserved.
    const OFFSETS: [u64; 20] = [
        reg::MAGIC,
        reg::DEVICE_FEATURES,
        reg::DEVICE_FEATURES_SEL,
        reg::DRIVER_FEATURES,
        reg::DRIVER_FEATURES_SEL,
        reg::QUEUE_SEL,
        reg::QUEUE_NUM_MAX,
        reg::QUEUE_NUM,
        reg::QUEUE_READY,
        reg::QUEUE_NOTIFY,
        reg::INTERRUPT_STATUS,
        reg::INTERRUPT_ACK,
        reg::STATUS,
        reg::QUEUE_DESC_LOW,
        reg::QUEUE_DESC_HIGH,
        reg::QUEUE_DRIVER_LOW,
        reg::QUEUE_DEVICE_LOW,
        reg::CONFIG_GENERATION,
        reg::CONFIG,
        0x0c0,
    ];

    proof! {
        /// No sequence of driver accesses makes the transport panic; registers answer only
        /// aligned 32-bit accesses; the driver can only add status bits, and once NEEDS_RESET
        /// is set only a device reset clears it; the magic value always reads "virt".
        #[unwind(5)]
        fn transport_is_total(src) {
            let mut d = VirtioMmio::new(NullBackend::default());
            // RAM at 0, so that queues at the reset addresses (0) can be made live.
            let mut mem = FlatMemory { base: 0, bytes: alloc::vec![0; 0x100] };
            // Most cases start from a driver that set up queue 0 of some size (0 and 3 are
            // invalid: NEEDS_RESET), then DRIVER_OK, states random accesses rarely reach.
            if src.below(3) != 0 {
                let _ = d.access(reg::QUEUE_NUM, 4, true, src.below(5), &mut mem);
                let _ = d.access(reg::QUEUE_READY, 4, true, 1, &mut mem);
                let _ = d.access(reg::STATUS, 4, true, u64::from(status::DRIVER_OK), &mut mem);
            }
            for _ in 0..3 {
                let offset = if src.any() { OFFSETS[src.below(OFFSETS.len() as u64) as usize] } else { src.below(0x110) };
                let size = if src.any() { 4 } else { [1u8, 2, 4, 8][src.below(4) as usize] };
                let value = match src.below(4) {
                    0 => 0,
                    1 | 2 => src.below(8),
                    _ => src.any(),
                };
                let write: bool = src.any();
                let before = d.status();
                let notified = d.backend.notifications;
                let (outcome, _) = d.access(offset, size, write, value, &mut mem);
                let is_register = offset < reg::CONFIG;
                // Registers are 32-bit words; configuration fields are read
                // naturally aligned, at any width.
                let misaligned = if is_register { size != 4 || offset % 4 != 0 } else { offset % u64::from(size) != 0 };
                assert_eq!(outcome == MmioOutcome::Abort, misaligned);
                let reset = write && offset == reg::STATUS && size == 4 && value & 0xffff_ffff == 0;
                if reset {
                    assert_eq!(d.status(), 0);
                } else {
                    assert_eq!(d.status() & before, before, "status bits only added");
                }
                if !write && offset == reg::MAGIC && size == 4 {
                    assert_eq!(outcome, MmioOutcome::Read(MAGIC));
                }
                crate::cover!(before & status::NEEDS_RESET == 0 && d.status() & status::NEEDS_RESET != 0, "a bad queue sets NEEDS_RESET");
                crate::cover!(before & status::NEEDS_RESET != 0 && reset, "a reset clears NEEDS_RESET");
                crate::cover!(d.backend.notifications > notified, "a notification reaches the backend");
                crate::cover!(outcome == MmioOutcome::Abort, "a bad width aborts");
            }
        }
    }
}
