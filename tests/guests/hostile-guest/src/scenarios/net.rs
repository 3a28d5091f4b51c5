//! Attack the VM's virtio-net card (slot 2, 0x0a000400) and through it the
//! switch: frames with another source address, runts, oversized frames,
//! writable transmit buffers, a header alone, a broadcast flood, a looping
//! chain and data outside RAM. Prints `net: <case>: ok` per check; the
//! switch's verdicts are read from the hypervisor's counters by
//! tests/hostile_net.rs, and a Linux VM on the same network must not notice.

use guest_rt::{mmio_read, mmio_write, println};

const NIC: usize = 0x0A00_0400;
const QUEUE_SIZE: u16 = 8;
const TX: u32 = 1;
const NEEDS_RESET: u32 = 0x40;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// Transmit rings (a page each) and frame buffers, in the guest's RAM.
#[repr(C, align(4096))]
struct Memory {
    desc: [u8; 0x1000],
    avail: [u8; 0x1000],
    used: [u8; 0x1000],
    frame: [u8; 0x1000],
}

static mut MEM: Memory = Memory {
    desc: [0; 0x1000],
    avail: [0; 0x1000],
    used: [0; 0x1000],
    frame: [0; 0x1000],
};

fn base() -> usize {
    core::ptr::addr_of!(MEM) as usize
}
fn frame_at() -> usize {
    base() + 0x3000
}

struct Nic {
    next_avail: u16,
    last_used: u16,
    failures: u32,
}

impl Nic {
    /// Reset and bring the transmit queue up (the receive queue stays off:
    /// frames for this VM are dropped, which is allowed).
    fn start(&mut self) -> bool {
        mmio_write::<u32>(NIC + 0x70, 0);
        for i in 0..0x3000 {
            mmio_write::<u8>(base() + i, 0);
        }
        self.next_avail = 0;
        self.last_used = 0;
        mmio_write::<u32>(NIC + 0x70, 1 | 2);
        mmio_write::<u32>(NIC + 0x24, 1);
        mmio_write::<u32>(NIC + 0x20, 1); // VIRTIO_F_VERSION_1
        mmio_write::<u32>(NIC + 0x70, 1 | 2 | 8);
        mmio_write::<u32>(NIC + 0x30, TX);
        mmio_write::<u32>(NIC + 0x38, u32::from(QUEUE_SIZE));
        for (offset, addr) in [
            (0x80, base()),
            (0x90, base() + 0x1000),
            (0xa0, base() + 0x2000),
        ] {
            mmio_write::<u32>(NIC + offset, addr as u32);
            mmio_write::<u32>(NIC + offset + 4, (addr as u64 >> 32) as u32);
        }
        mmio_write::<u32>(NIC + 0x44, 1);
        mmio_write::<u32>(NIC + 0x70, 1 | 2 | 4 | 8);
        mmio_read::<u32>(NIC + 0x70) & NEEDS_RESET == 0
    }

    fn set_desc(index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = base() + 16 * usize::from(index);
        mmio_write::<u64>(at, addr);
        mmio_write::<u32>(at + 8, len);
        mmio_write::<u16>(at + 12, flags);
        mmio_write::<u16>(at + 14, next);
    }

    /// Offer the chain from descriptor 0 and notify; whether the device
    /// returned it (it answers transmit chains at once).
    fn send_raw(&mut self) -> bool {
        let slot = usize::from(self.next_avail % QUEUE_SIZE);
        mmio_write::<u16>(base() + 0x1000 + 4 + 2 * slot, 0);
        self.next_avail = self.next_avail.wrapping_add(1);
        // SAFETY: barrier only: the ring before the index.
        unsafe { core::arch::asm!("dsb sy", options(nostack)) };
        mmio_write::<u16>(base() + 0x1000 + 2, self.next_avail);
        mmio_write::<u32>(NIC + 0x50, TX);
        let used = mmio_read::<u16>(base() + 0x2000 + 2);
        let answered = used != self.last_used;
        self.last_used = used;
        answered
    }

    fn send(&mut self, chain: &[(u64, u32, bool)]) -> bool {
        for (k, &(addr, len, writable)) in chain.iter().enumerate() {
            let mut flags = if writable { F_WRITE } else { 0 };
            if k + 1 < chain.len() {
                flags |= F_NEXT;
            }
            Self::set_desc(k as u16, addr, len, flags, k as u16 + 1);
        }
        self.send_raw()
    }

    /// A frame of `len` bytes (after the 12-byte header) from `src` to
    /// broadcast.
    fn frame(&mut self, src: [u8; 6], len: u32) -> bool {
        for i in 0..12 {
            mmio_write::<u8>(frame_at() + i, 0);
        }
        for (i, byte) in src.iter().enumerate() {
            mmio_write::<u8>(frame_at() + 12 + i, 0xff);
            mmio_write::<u8>(frame_at() + 18 + i, *byte);
        }
        mmio_write::<u16>(frame_at() + 24, 0x0008); // IPv4, big-endian
        self.send(&[(frame_at() as u64, 12 + len, false)])
    }

    fn check(&mut self, case: &str, ok: bool) {
        if ok {
            println!("net: {case}: ok");
        } else {
            self.failures += 1;
            println!("net: {case}: FAIL");
        }
    }

    fn expect_needs_reset(&mut self, case: &str, answered: bool) {
        let status = mmio_read::<u32>(NIC + 0x70);
        self.check(case, !answered && status & NEEDS_RESET != 0);
        let restarted = self.start();
        self.check("restart after NEEDS_RESET", restarted);
    }
}

pub fn run(_dtb: u64) {
    let mut nic = Nic {
        next_avail: 0,
        last_used: 0,
        failures: 0,
    };
    if mmio_read::<u32>(NIC) != 0x7472_6976 || mmio_read::<u32>(NIC + 8) != 1 {
        println!("net: FAIL: no virtio-net card at {NIC:#x}");
        return;
    }
    let started = nic.start();
    nic.check("start", started);
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = mmio_read::<u8>(NIC + 0x100 + i);
    }
    println!(
        "net: my address {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );

    let sent = nic.frame(mac, 60);
    nic.check("a good broadcast is taken", sent);
    // Another source address, and a group source: dropped by the switch.
    let spoofed = nic.frame([0x52, 0x54, 0, 0xde, 0xad, 0x02], 60);
    nic.check(
        "a spoofed frame is taken (and dropped by the switch)",
        spoofed,
    );
    let group = nic.frame([0xff; 6], 60);
    nic.check("a group source is taken (and dropped by the switch)", group);
    // Bad frames: returned, counted, never forwarded.
    let runt = nic.frame(mac, 10);
    nic.check("a runt is returned", runt);
    let oversized = nic.send(&[(frame_at() as u64, 12 + 2000, false)]);
    nic.check("an oversized frame is returned", oversized);
    let header_only = nic.send(&[(frame_at() as u64, 12, false)]);
    nic.check("a header alone is returned", header_only);
    let writable = nic.send(&[
        (frame_at() as u64, 12, false),
        (frame_at() as u64 + 12, 60, true),
    ]);
    nic.check("a writable transmit buffer is returned", writable);
    // A broadcast flood: the switch lets a budget through and drops the rest.
    let mut taken = 0;
    for _ in 0..1000 {
        if nic.frame(mac, 60) {
            taken += 1;
        }
    }
    nic.check("1000 broadcasts all taken", taken == 1000);
    // Chains the card cannot use at all.
    let outside = nic.send(&[(0x0800_0000, 72, false)]);
    nic.expect_needs_reset("data outside the VM's RAM needs a reset", outside);
    Nic::set_desc(0, frame_at() as u64, 72, F_NEXT, 0);
    let looping = nic.send_raw();
    nic.expect_needs_reset("a looping chain needs a reset", looping);
    let sent = nic.frame(mac, 60);
    nic.check("a good frame still goes", sent);
    println!("net: {} failures", nic.failures);
}
