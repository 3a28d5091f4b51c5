//! The machine's own virtio-blk devices (QEMU's `-device
//! virtio-blk-device` behind a `-drive`, whose storage is a file on the
//! host), driven by the hypervisor. Each stores one VM's disk: the VM's
//! virtio-blk backend (`hvcore::blk_device`) starts the requests of a
//! notification, made of the guest's own pages, then waits for them all
//! (polling the used ring; the device's interrupt stays off), so a request
//! the guest sees completed was completed by the device.
//!
//! Why a driver of our own rather than the `virtio-drivers` crate: its block
//! driver takes one contiguous buffer per request, given as a Rust slice;
//! the hypervisor's requests are lists of host-physical pieces of guest
//! pages, which the guest may change at any time (a slice over them would
//! claim an exclusivity Rust cannot have), and its lower-level queue also
//! takes slices. What a driver needs here is small: the virtio-mmio
//! start-up sequence below, and the descriptor bookkeeping, which lives in
//! the core (`hvcore::virtq_driver`) where it is tested and proven. It also
//! keeps the design card's dependency list (the crate brings zerocopy,
//! safe-mmio, thiserror, bitflags and enumn).

use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::{read_volatile, write_volatile};

use hv_arch::read_sysreg;
use hvcore::blk_device::{Disk, MAX_IN_FLIGHT, MAX_PIECES};
use hvcore::frame_alloc::{FrameScrubber, FRAME_SIZE};
use hvcore::guest_config::Device;
use hvcore::virtio_blk::{BlkOp, ID_BYTES, S_IOERR, S_OK, T_FLUSH, T_GET_ID, T_IN, T_OUT};
use hvcore::virtq_driver::{DriverQueue, Piece, RingMemory};
use log::{info, warn};

use super::memory::{frames, HostScrubber};

/// Descriptors of the queue: a request is header + data pieces + status,
/// and several are in flight.
const QUEUE_SIZE: usize = 256;
const _: () = assert!(MAX_PIECES + 2 <= QUEUE_SIZE);
/// How long a request may take before the device counts as broken.
const TIMEOUT_SECONDS: u64 = 30;

const MAGIC: u32 = 0x7472_6976;
const DEVICE_ID_BLOCK: u32 = 2;

/// virtio-mmio registers (virtio 1.2, 4.2.2).
mod reg {
    pub const MAGIC: usize = 0x000;
    pub const VERSION: usize = 0x004;
    pub const DEVICE_ID: usize = 0x008;
    pub const DEVICE_FEATURES: usize = 0x010;
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    pub const DRIVER_FEATURES: usize = 0x020;
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    pub const QUEUE_SEL: usize = 0x030;
    pub const QUEUE_NUM_MAX: usize = 0x034;
    pub const QUEUE_NUM: usize = 0x038;
    pub const QUEUE_READY: usize = 0x044;
    pub const QUEUE_NOTIFY: usize = 0x050;
    pub const INTERRUPT_ACK: usize = 0x064;
    pub const STATUS: usize = 0x070;
    pub const QUEUE_DESC: usize = 0x080;
    pub const QUEUE_DRIVER: usize = 0x090;
    pub const QUEUE_DEVICE: usize = 0x0a0;
    pub const CONFIG_GENERATION: usize = 0x0fc;
    pub const CONFIG: usize = 0x100;
}

const STATUS_ACKNOWLEDGE: u32 = 1;
const STATUS_DRIVER: u32 = 2;
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;

const F_SEG_MAX: u64 = 1 << 2;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_VERSION_1: u64 = 1 << 32;
/// The features this driver uses when offered (no indirect descriptors, no
/// event index: one request at a time, polled).
const WANTED: u64 = F_SEG_MAX | F_RO | F_FLUSH | F_VERSION_1;

/// A transport's register window (identity-mapped Device memory at EL2).
struct Regs(usize);

impl Regs {
    fn read(&self, offset: usize) -> u32 {
        // SAFETY: a virtio-mmio window from the host device tree, mapped as
        // Device memory at EL2; a 32-bit aligned register.
        unsafe { read_volatile((self.0 + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as `read`.
        unsafe { write_volatile((self.0 + offset) as *mut u32, value) }
    }

    fn write64(&self, offset: usize, value: u64) {
        self.write(offset, value as u32);
        self.write(offset + 4, (value >> 32) as u32);
    }
}

/// The queue's memory: descriptors, available ring, used ring, and the
/// request's own header, status byte and ID buffer, a page each, in frames
/// the hypervisor owns (identity-mapped Normal memory).
struct Rings {
    base: u64,
}

impl Rings {
    const DESC: u64 = 0;
    const AVAIL: u64 = FRAME_SIZE;
    const USED: u64 = 2 * FRAME_SIZE;
    /// Request headers, one per tag.
    const HEADERS: u64 = 3 * FRAME_SIZE;
    /// Status bytes, one per tag.
    const STATUSES: u64 = 3 * FRAME_SIZE + 0x400;
    const ID: u64 = 3 * FRAME_SIZE + 0x800;
    const PAGES: usize = 4;

    fn ptr<T>(&self, offset: u64) -> *mut T {
        (self.base + offset) as *mut T
    }

    fn write<T>(&mut self, offset: u64, value: T) {
        // SAFETY: `offset` lies in the four frames this queue owns (every
        // caller's offset is a ring slot below QUEUE_SIZE or a field of the
        // last page), suitably aligned for T.
        unsafe { write_volatile(self.ptr::<T>(offset), value) }
    }

    fn read<T>(&self, offset: u64) -> T {
        // SAFETY: as `write`.
        unsafe { read_volatile(self.ptr::<T>(offset)) }
    }
}

impl RingMemory for Rings {
    fn set_descriptor(&mut self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = Self::DESC + 16 * u64::from(index % QUEUE_SIZE as u16);
        self.write(at, addr);
        self.write(at + 8, len);
        self.write(at + 12, flags);
        self.write(at + 14, next);
    }

    fn set_avail_entry(&mut self, slot: u16, head: u16) {
        self.write(
            Self::AVAIL + 4 + 2 * u64::from(slot % QUEUE_SIZE as u16),
            head,
        );
    }

    fn set_avail_idx(&mut self, idx: u16) {
        // The descriptors and the entry before the index that covers them.
        hv_arch::sysreg::dsb_ish();
        self.write(Self::AVAIL + 2, idx);
    }

    fn used_idx(&self) -> u16 {
        let idx = self.read(Self::USED + 2);
        // The elements after the index that covers them.
        hv_arch::sysreg::dsb_ish();
        idx
    }

    fn used_elem(&self, slot: u16) -> (u32, u32) {
        let at = Self::USED + 4 + 8 * u64::from(slot % QUEUE_SIZE as u16);
        (self.read(at), self.read(at + 4))
    }
}

/// One physical virtio-blk device, started and ready for requests.
pub struct PhysBlk {
    /// Its transport's address (for log lines).
    pub base: u64,
    /// What GET_ID answers (QEMU: the `serial=` of the device).
    pub serial: String,
    regs: Regs,
    queue: DriverQueue<QUEUE_SIZE>,
    rings: Rings,
    capacity: u64,
    read_only: bool,
    flush: bool,
    /// Set on a device that broke the protocol or stopped answering: every
    /// later request fails with IOERR.
    broken: bool,
    /// Tag of the request whose chain starts at each descriptor.
    tag_of_head: [u8; QUEUE_SIZE],
    /// Requests given to the device and not yet answered, by tag.
    in_flight: [bool; MAX_IN_FLIGHT],
    /// Answers known without the device (a flush it does not need, a
    /// write to a read-only disk, a broken device), reported by `finish`.
    immediate: [(usize, u8); MAX_IN_FLIGHT],
    immediate_count: usize,
    /// Requests added since the last notification.
    unnotified: bool,
    /// The transport's interrupt (from the host device tree).
    pub irq: Option<u32>,
    /// Finished requests are reported by the device's interrupt rather
    /// than waited for (`hv.diskirq=on`).
    interrupting: bool,
    /// How long a notification waits for quick answers before it leaves
    /// the rest to the interrupt, in microseconds (`hv.disksettle`).
    settle_us: u64,
    /// When each request in flight was given to the device (counter ticks),
    /// and the device's time on the requests it answered, for statistics.
    started_at: [u64; MAX_IN_FLIGHT],
    pub device_ticks: u64,
    pub device_answers: u64,
}

const _: () = assert!(MAX_IN_FLIGHT * 16 <= 0x400 && MAX_IN_FLIGHT <= 0x400);

/// Start every modern virtio-blk device among the machine's virtio-mmio
/// transports. Legacy (version 1) transports are skipped with a note: QEMU
/// makes them modern with `-global virtio-mmio.force-legacy=false`.
pub fn probe(transports: &[Device]) -> Vec<PhysBlk> {
    let mut found = Vec::new();
    for transport in transports {
        let regs = Regs(transport.base as usize);
        if regs.read(reg::MAGIC) != MAGIC || regs.read(reg::DEVICE_ID) != DEVICE_ID_BLOCK {
            continue;
        }
        if regs.read(reg::VERSION) != 2 {
            warn!(
                "virtio-blk at {:#x} is a legacy device: not used (QEMU: -global virtio-mmio.force-legacy=false)",
                transport.base
            );
            continue;
        }
        match PhysBlk::start(transport.base, regs) {
            Ok(mut disk) => {
                disk.irq = transport.irq;
                info!(
                    "virtio-blk at {:#x}: serial '{}', {} sectors{}{}",
                    disk.base,
                    disk.serial,
                    disk.capacity,
                    if disk.read_only { ", read-only" } else { "" },
                    if disk.flush { ", flush" } else { "" },
                );
                found.push(disk);
            }
            Err(problem) => warn!("virtio-blk at {:#x}: {problem}", transport.base),
        }
    }
    found
}

impl PhysBlk {
    /// The virtio start-up sequence (virtio 1.2, 3.1.1), one queue.
    fn start(base: u64, regs: Regs) -> Result<PhysBlk, &'static str> {
        regs.write(reg::STATUS, 0);
        regs.write(reg::STATUS, STATUS_ACKNOWLEDGE);
        regs.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        regs.write(reg::DEVICE_FEATURES_SEL, 0);
        let low = u64::from(regs.read(reg::DEVICE_FEATURES));
        regs.write(reg::DEVICE_FEATURES_SEL, 1);
        let offered = low | u64::from(regs.read(reg::DEVICE_FEATURES)) << 32;
        let features = offered & WANTED;
        if features & F_VERSION_1 == 0 {
            return Err("does not offer VIRTIO_F_VERSION_1");
        }
        regs.write(reg::DRIVER_FEATURES_SEL, 0);
        regs.write(reg::DRIVER_FEATURES, features as u32);
        regs.write(reg::DRIVER_FEATURES_SEL, 1);
        regs.write(reg::DRIVER_FEATURES, (features >> 32) as u32);
        let status = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
        regs.write(reg::STATUS, status);
        if regs.read(reg::STATUS) & STATUS_FEATURES_OK == 0 {
            return Err("refused the features");
        }
        if features & F_SEG_MAX != 0 && (regs.read(reg::CONFIG + 12) as usize) < MAX_PIECES {
            return Err("takes fewer data segments per request than a guest request can have");
        }

        regs.write(reg::QUEUE_SEL, 0);
        if regs.read(reg::QUEUE_READY) != 0 {
            return Err("queue 0 already in use");
        }
        if (regs.read(reg::QUEUE_NUM_MAX) as usize) < QUEUE_SIZE {
            return Err("queue 0 is too small");
        }
        let memory = {
            let mut frames = frames().lock();
            frames
                .alloc_contiguous(Rings::PAGES, FRAME_SIZE)
                .ok_or("no memory for its queue")?
        };
        HostScrubber.zero(memory, Rings::PAGES as u64 * FRAME_SIZE);
        let mut rings = Rings { base: memory };
        // We poll: VIRTQ_AVAIL_F_NO_INTERRUPT.
        rings.write(Rings::AVAIL, 1u16);
        regs.write(reg::QUEUE_NUM, QUEUE_SIZE as u32);
        regs.write64(reg::QUEUE_DESC, memory + Rings::DESC);
        regs.write64(reg::QUEUE_DRIVER, memory + Rings::AVAIL);
        regs.write64(reg::QUEUE_DEVICE, memory + Rings::USED);
        regs.write(reg::QUEUE_READY, 1);
        regs.write(reg::STATUS, status | STATUS_DRIVER_OK);

        let capacity = loop {
            let generation = regs.read(reg::CONFIG_GENERATION);
            let low = u64::from(regs.read(reg::CONFIG));
            let high = u64::from(regs.read(reg::CONFIG + 4));
            if regs.read(reg::CONFIG_GENERATION) == generation {
                break low | high << 32;
            }
        };
        let mut disk = PhysBlk {
            base,
            serial: String::new(),
            regs,
            queue: DriverQueue::new(),
            rings,
            capacity,
            read_only: features & F_RO != 0,
            flush: features & F_FLUSH != 0,
            broken: false,
            tag_of_head: [0; QUEUE_SIZE],
            in_flight: [false; MAX_IN_FLIGHT],
            immediate: [(0, 0); MAX_IN_FLIGHT],
            immediate_count: 0,
            unnotified: false,
            irq: None,
            interrupting: false,
            settle_us: 0,
            started_at: [0; MAX_IN_FLIGHT],
            device_ticks: 0,
            device_answers: 0,
        };
        let id = Piece {
            addr: memory + Rings::ID,
            len: ID_BYTES as u32,
            device_writes: true,
        };
        let mut done = [(0, 0); MAX_IN_FLIGHT];
        if !disk.add(0, T_GET_ID, 0, &[id]) || disk.finish(&mut done) != 1 || done[0].1 != S_OK {
            return Err("did not answer GET_ID");
        }
        let bytes: Vec<u8> = (0..ID_BYTES)
            .map(|i| disk.rings.read::<u8>(Rings::ID + i))
            .take_while(|b| *b != 0)
            .collect();
        disk.serial = String::from_utf8_lossy(&bytes).into_owned();
        Ok(disk)
    }

    /// Make the device read-only for its VM (the configuration said so).
    pub fn set_read_only(&mut self) {
        self.read_only = true;
    }

    /// Have the device interrupt when it finishes requests (its interrupt
    /// must then reach `Vm::disk_interrupt`). `false` without one.
    pub fn interrupt_when_done(&mut self, settle_us: u64) -> bool {
        if self.irq.is_none() {
            return false;
        }
        self.settle_us = settle_us;
        self.rings.write(Rings::AVAIL, 0u16);
        self.interrupting = true;
        true
    }

    /// Acknowledge the device's interrupt (it holds its line until then):
    /// the used-ring bit, without reading the status first (one device
    /// access fewer; a configuration change means nothing to us).
    pub fn acknowledge_interrupt(&self) {
        self.regs.write(reg::INTERRUPT_ACK, 1);
    }

    /// Take the answers the device has written, without waiting.
    fn collect(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT], mut count: usize) -> usize {
        while count < MAX_IN_FLIGHT {
            match self.queue.pop_used(&self.rings) {
                Ok(Some((head, _))) => {
                    let tag = usize::from(self.tag_of_head[usize::from(head)]);
                    if tag < MAX_IN_FLIGHT && core::mem::take(&mut self.in_flight[tag]) {
                        let now = read_sysreg!("CNTPCT_EL0");
                        self.device_ticks += now.wrapping_sub(self.started_at[tag]);
                        self.device_answers += 1;
                        let status = match self.rings.read::<u8>(Rings::STATUSES + tag as u64) {
                            0 => S_OK,
                            _ => S_IOERR,
                        };
                        done[count] = (tag, status);
                        count += 1;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.fail("answered a request it was not given");
                    break;
                }
            }
        }
        count
    }

    /// Take answers until every request in flight is answered (or the
    /// device broke), for at most `ticks` of the counter. Returns the new
    /// count and whether everything was answered in time.
    fn collect_for(
        &mut self,
        done: &mut [(usize, u8); MAX_IN_FLIGHT],
        mut count: usize,
        ticks: u64,
    ) -> (usize, bool) {
        let start = read_sysreg!("CNTPCT_EL0");
        loop {
            count = self.collect(done, count);
            if self.queue.chains_in_flight() == 0 || self.broken || count == MAX_IN_FLIGHT {
                return (count, true);
            }
            if read_sysreg!("CNTPCT_EL0").wrapping_sub(start) >= ticks {
                return (count, false);
            }
            core::hint::spin_loop();
        }
    }

    fn take_immediate(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize {
        let count = self.immediate_count;
        done[..count].copy_from_slice(&self.immediate[..count]);
        self.immediate_count = 0;
        count
    }

    /// Put request `tag` on the queue: its header, `data`, its status.
    /// `false` when the queue has no room for it.
    fn add(&mut self, tag: usize, kind: u32, sector: u64, data: &[Piece]) -> bool {
        let header = Rings::HEADERS + 16 * tag as u64;
        let status = Rings::STATUSES + tag as u64;
        self.rings.write(header, kind);
        self.rings.write(header + 4, 0u32);
        self.rings.write(header + 8, sector);
        self.rings.write(status, 0xffu8);
        let mut chain = [Piece::default(); MAX_PIECES + 2];
        chain[0] = Piece {
            addr: self.rings.base + header,
            len: 16,
            device_writes: false,
        };
        chain[1..=data.len()].copy_from_slice(data);
        chain[data.len() + 1] = Piece {
            addr: self.rings.base + status,
            len: 1,
            device_writes: true,
        };
        let Ok(head) = self.queue.add(&mut self.rings, &chain[..data.len() + 2]) else {
            return false;
        };
        self.tag_of_head[usize::from(head)] = tag as u8;
        self.in_flight[tag] = true;
        self.started_at[tag] = read_sysreg!("CNTPCT_EL0");
        self.unnotified = true;
        true
    }

    fn answer_now(&mut self, tag: usize, status: u8) {
        if let Some(slot) = self.immediate.get_mut(self.immediate_count) {
            *slot = (tag, status);
            self.immediate_count += 1;
        }
    }

    fn fail(&mut self, problem: &str) {
        warn!(
            "virtio-blk at {:#x} ('{}') {problem}: its requests fail from now on",
            self.base, self.serial
        );
        self.broken = true;
    }
}

impl Disk for PhysBlk {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn start(&mut self, tag: usize, op: BlkOp, pieces: &[Piece]) -> bool {
        if tag >= MAX_IN_FLIGHT || pieces.len() > MAX_PIECES {
            return false;
        }
        if self.broken {
            self.answer_now(tag, S_IOERR);
            return true;
        }
        let (kind, sector) = match op {
            BlkOp::Read { sector } => (T_IN, sector),
            BlkOp::Write { sector } if !self.read_only => (T_OUT, sector),
            // Without the flush feature the device writes through: a
            // completed write is already durable.
            BlkOp::Flush if !self.flush => {
                self.answer_now(tag, S_OK);
                return true;
            }
            BlkOp::Flush => (T_FLUSH, 0),
            BlkOp::Write { .. } | BlkOp::GetId => {
                self.answer_now(tag, S_IOERR);
                return true;
            }
        };
        self.add(tag, kind, sector, pieces)
    }

    fn interrupts(&self) -> bool {
        self.interrupting
    }

    fn kick(&mut self) {
        if core::mem::take(&mut self.unnotified) {
            hv_arch::sysreg::dsb_sy();
            self.regs.write(reg::QUEUE_NOTIFY, 0);
        }
    }

    fn reap(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize {
        let count = self.take_immediate(done);
        self.collect(done, count)
    }

    fn settle(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize {
        let count = self.take_immediate(done);
        let window = self.settle_us * read_sysreg!("CNTFRQ_EL0") / 1_000_000;
        self.collect_for(done, count, window).0
    }

    fn finish(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize {
        let count = self.take_immediate(done);
        self.kick();
        let deadline = TIMEOUT_SECONDS * read_sysreg!("CNTFRQ_EL0");
        let (mut count, in_time) = self.collect_for(done, count, deadline);
        if !in_time {
            self.fail("did not answer in time");
        }
        // A broken device's requests in flight fail (the caller fails any
        // it started that `done` does not name).
        for tag in 0..MAX_IN_FLIGHT {
            if core::mem::take(&mut self.in_flight[tag]) && count < MAX_IN_FLIGHT {
                done[count] = (tag, S_IOERR);
                count += 1;
            }
        }
        count
    }
}
