//! A minimal virtio-mmio driver for the scenarios that attack virtio
//! devices (`disk`, `net`): one queue whose rings (three pages) are in the
//! guest's RAM, chains offered from descriptor 0, answers waited for as a
//! driver waits, and `name: case: ok` / `FAIL` lines.

use guest_rt::{mmio_read, mmio_write, println};

pub const F_NEXT: u16 = 1;
pub const F_WRITE: u16 = 2;
pub const NEEDS_RESET: u32 = 0x40;
pub const QUEUE_SIZE: u16 = 8;

pub struct Driver {
    /// The transport's address.
    pub device: usize,
    /// Descriptors, available ring and used ring, a page each.
    pub rings: usize,
    /// The queue attacked.
    pub queue: u32,
    /// The scenario's name, starting each line.
    pub name: &'static str,
    next_avail: u16,
    last_used: u16,
    pub failures: u32,
}

impl Driver {
    pub fn new(device: usize, rings: usize, queue: u32, name: &'static str) -> Driver {
        Driver {
            device,
            rings,
            queue,
            name,
            next_avail: 0,
            last_used: 0,
            failures: 0,
        }
    }

    /// Whether a virtio device of `device_id` is there.
    pub fn present(&self, device_id: u32) -> bool {
        mmio_read::<u32>(self.device) == 0x7472_6976
            && mmio_read::<u32>(self.device + 8) == device_id
    }

    /// Reset the device and bring the queue up (virtio 3.1.1).
    pub fn start(&mut self) -> bool {
        let d = self.device;
        mmio_write::<u32>(d + 0x70, 0);
        for i in 0..0x3000 {
            mmio_write::<u8>(self.rings + i, 0);
        }
        self.next_avail = 0;
        self.last_used = 0;
        mmio_write::<u32>(d + 0x70, 1 | 2);
        mmio_write::<u32>(d + 0x24, 1);
        mmio_write::<u32>(d + 0x20, 1); // VIRTIO_F_VERSION_1
        mmio_write::<u32>(d + 0x70, 1 | 2 | 8);
        mmio_write::<u32>(d + 0x30, self.queue);
        mmio_write::<u32>(d + 0x38, u32::from(QUEUE_SIZE));
        for (offset, addr) in [
            (0x80, self.rings),
            (0x90, self.rings + 0x1000),
            (0xa0, self.rings + 0x2000),
        ] {
            mmio_write::<u32>(d + offset, addr as u32);
            mmio_write::<u32>(d + offset + 4, (addr as u64 >> 32) as u32);
        }
        mmio_write::<u32>(d + 0x44, 1);
        mmio_write::<u32>(d + 0x70, 1 | 2 | 4 | 8);
        mmio_read::<u32>(d + 0x70) & NEEDS_RESET == 0
    }

    pub fn set_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.rings + 16 * usize::from(index);
        mmio_write::<u64>(at, addr);
        mmio_write::<u32>(at + 8, len);
        mmio_write::<u16>(at + 12, flags);
        mmio_write::<u16>(at + 14, next);
    }

    /// Make `head` available and notify; the used length when the device
    /// answered within 50 ms (it may answer after the notification
    /// returns), `None` when it did not (a chain refused as a whole).
    pub fn offer(&mut self, head: u16) -> Option<u32> {
        let avail = self.rings + 0x1000;
        let used = self.rings + 0x2000;
        let slot = usize::from(self.next_avail % QUEUE_SIZE);
        mmio_write::<u16>(avail + 4 + 2 * slot, head);
        self.next_avail = self.next_avail.wrapping_add(1);
        // SAFETY: barrier only: the ring before the index.
        unsafe { core::arch::asm!("dsb sy", options(nostack)) };
        mmio_write::<u16>(avail + 2, self.next_avail);
        mmio_write::<u32>(self.device + 0x50, self.queue);
        let start = guest_rt::counter();
        let frequency = guest_rt::mrs!("CNTFRQ_EL0");
        while mmio_read::<u16>(used + 2) == self.last_used {
            if mmio_read::<u32>(self.device + 0x70) & NEEDS_RESET != 0
                || guest_rt::counter() - start > frequency / 20
            {
                return None;
            }
        }
        let slot = usize::from(self.last_used % QUEUE_SIZE);
        self.last_used = self.last_used.wrapping_add(1);
        // Acknowledge the interrupt the answer raised.
        let pending = mmio_read::<u32>(self.device + 0x60);
        mmio_write::<u32>(self.device + 0x64, pending);
        Some(mmio_read::<u32>(used + 4 + 8 * slot + 4))
    }

    /// Offer the chain of (addr, len, device-writable) buffers.
    pub fn offer_chain(&mut self, chain: &[(u64, u32, bool)]) -> Option<u32> {
        for (k, &(addr, len, writable)) in chain.iter().enumerate() {
            let mut flags = if writable { F_WRITE } else { 0 };
            if k + 1 < chain.len() {
                flags |= F_NEXT;
            }
            self.set_desc(k as u16, addr, len, flags, k as u16 + 1);
        }
        self.offer(0)
    }

    pub fn check(&mut self, case: &str, ok: bool, detail: u64) {
        if ok {
            println!("{}: {case}: ok", self.name);
        } else {
            self.failures += 1;
            println!("{}: {case}: FAIL ({detail:#x})", self.name);
        }
    }

    /// A chain the device must refuse as a whole sets DEVICE_NEEDS_RESET;
    /// the driver resets and the device works again.
    pub fn expect_needs_reset(&mut self, case: &str, answered: Option<u32>) {
        let status = mmio_read::<u32>(self.device + 0x70);
        self.check(
            case,
            answered.is_none() && status & NEEDS_RESET != 0,
            u64::from(status),
        );
        let restarted = self.start();
        self.check("restart after NEEDS_RESET", restarted, 0);
    }
}
