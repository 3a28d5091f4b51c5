//! Attack the VM's virtio-blk disk (slot 1, 0x0a000200) with every kind of
//! bad request and malformed descriptor chain, checking each answer is the
//! one the virtio specification gives, and that a good request still reads
//! the real disk afterwards. Run with a read-only disk holding an ext4 file
//! system (tests/hostile_disk.rs): a write must be refused and change
//! nothing. Prints `disk: <case>: ok` or `disk: <case>: FAIL ...`.

use guest_rt::{mmio_read, mmio_write, println};

const DISK: usize = 0x0A00_0200;
const QUEUE_SIZE: u16 = 8;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
const NEEDS_RESET: u32 = 0x40;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// Rings (a page each) and request buffers, in the guest's RAM.
#[repr(C, align(4096))]
struct Memory {
    desc: [u8; 0x1000],
    avail: [u8; 0x1000],
    used: [u8; 0x1000],
    header: [u8; 0x1000],
    data: [u8; 0x2000],
}

static mut MEM: Memory = Memory {
    desc: [0; 0x1000],
    avail: [0; 0x1000],
    used: [0; 0x1000],
    header: [0; 0x1000],
    data: [0; 0x2000],
};

fn base() -> usize {
    core::ptr::addr_of!(MEM) as usize
}
fn desc() -> usize {
    base()
}
fn avail() -> usize {
    base() + 0x1000
}
fn used() -> usize {
    base() + 0x2000
}
fn header() -> usize {
    base() + 0x3000
}
fn status_at() -> usize {
    base() + 0x3800
}
fn data() -> usize {
    base() + 0x4000
}

/// The driver's side of one queue.
struct Driver {
    next_avail: u16,
    last_used: u16,
    failures: u32,
}

impl Driver {
    /// Reset the device and bring queue 0 up (virtio 3.1.1).
    fn start(&mut self) -> bool {
        mmio_write::<u32>(DISK + 0x70, 0);
        for i in 0..0x3000 {
            mmio_write::<u8>(base() + i, 0);
        }
        self.next_avail = 0;
        self.last_used = 0;
        mmio_write::<u32>(DISK + 0x70, 1 | 2);
        mmio_write::<u32>(DISK + 0x24, 1);
        mmio_write::<u32>(DISK + 0x20, 1); // VIRTIO_F_VERSION_1
        mmio_write::<u32>(DISK + 0x70, 1 | 2 | 8);
        mmio_write::<u32>(DISK + 0x30, 0);
        mmio_write::<u32>(DISK + 0x38, u32::from(QUEUE_SIZE));
        for (offset, addr) in [(0x80, desc()), (0x90, avail()), (0xa0, used())] {
            mmio_write::<u32>(DISK + offset, addr as u32);
            mmio_write::<u32>(DISK + offset + 4, (addr as u64 >> 32) as u32);
        }
        mmio_write::<u32>(DISK + 0x44, 1);
        mmio_write::<u32>(DISK + 0x70, 1 | 2 | 4 | 8);
        mmio_read::<u32>(DISK + 0x70) & NEEDS_RESET == 0
    }

    fn set_desc(index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = desc() + 16 * usize::from(index);
        mmio_write::<u64>(at, addr);
        mmio_write::<u32>(at + 8, len);
        mmio_write::<u16>(at + 12, flags);
        mmio_write::<u16>(at + 14, next);
    }

    /// Offer the chain `(addr, len, device-writable)` from descriptor 0 with
    /// head `head` and notify. Returns the used length if the device
    /// answered, `None` if it did not (the chain was refused as a whole).
    fn submit_raw(&mut self, head: u16) -> Option<u32> {
        let slot = usize::from(self.next_avail % QUEUE_SIZE);
        mmio_write::<u16>(avail() + 4 + 2 * slot, head);
        self.next_avail = self.next_avail.wrapping_add(1);
        // SAFETY: barrier only: the ring before the index.
        unsafe { core::arch::asm!("dsb sy", options(nostack)) };
        mmio_write::<u16>(avail() + 2, self.next_avail);
        mmio_write::<u32>(DISK + 0x50, 0);
        // The answer may come after the notification returns (the disk
        // completes on its interrupt): wait for it, up to 50 ms. A chain
        // the device refuses as a whole is never answered.
        let start = guest_rt::counter();
        let frequency = guest_rt::mrs!("CNTFRQ_EL0");
        let used_idx = loop {
            let used_idx = mmio_read::<u16>(used() + 2);
            if used_idx != self.last_used {
                break used_idx;
            }
            if mmio_read::<u32>(DISK + 0x70) & NEEDS_RESET != 0
                || guest_rt::counter() - start > frequency / 20
            {
                return None;
            }
        };
        let _ = used_idx;
        let slot = usize::from(self.last_used % QUEUE_SIZE);
        self.last_used = self.last_used.wrapping_add(1);
        // Acknowledge the interrupt the answer raised.
        let pending = mmio_read::<u32>(DISK + 0x60);
        mmio_write::<u32>(DISK + 0x64, pending);
        Some(mmio_read::<u32>(used() + 4 + 8 * slot + 4))
    }

    fn submit(&mut self, chain: &[(u64, u32, bool)]) -> Option<u32> {
        for (k, &(addr, len, writable)) in chain.iter().enumerate() {
            let mut flags = if writable { F_WRITE } else { 0 };
            if k + 1 < chain.len() {
                flags |= F_NEXT;
            }
            Self::set_desc(k as u16, addr, len, flags, k as u16 + 1);
        }
        self.submit_raw(0)
    }

    /// A request of `kind` at `sector` with `len` bytes of data; returns
    /// the status byte (0xff: no answer).
    fn request(&mut self, kind: u32, sector: u64, len: u32) -> u8 {
        mmio_write::<u32>(header(), kind);
        mmio_write::<u32>(header() + 4, 0);
        mmio_write::<u64>(header() + 8, sector);
        mmio_write::<u8>(status_at(), 0xff);
        let writable = kind != T_OUT;
        let answered = if len == 0 {
            self.submit(&[(header() as u64, 16, false), (status_at() as u64, 1, true)])
        } else {
            self.submit(&[
                (header() as u64, 16, false),
                (data() as u64, len, writable),
                (status_at() as u64, 1, true),
            ])
        };
        match answered {
            Some(_) => mmio_read::<u8>(status_at()),
            None => 0xff,
        }
    }

    fn check(&mut self, case: &str, ok: bool, detail: u64) {
        if ok {
            println!("disk: {case}: ok");
        } else {
            self.failures += 1;
            println!("disk: {case}: FAIL ({detail:#x})");
        }
    }

    /// A chain the device must refuse as a whole sets DEVICE_NEEDS_RESET;
    /// the driver resets and the device works again.
    fn expect_needs_reset(&mut self, case: &str, answered: Option<u32>) {
        let status = mmio_read::<u32>(DISK + 0x70);
        self.check(
            case,
            answered.is_none() && status & NEEDS_RESET != 0,
            u64::from(status),
        );
        let restarted = self.start();
        self.check("restart after NEEDS_RESET", restarted, 0);
    }
}

/// The ext4 superblock's magic (0xef53) at byte 1080 of the disk.
fn superblock_magic() -> u16 {
    mmio_read::<u16>(data() + 1080 - 1024)
}

pub fn run(_dtb: u64) {
    let mut d = Driver {
        next_avail: 0,
        last_used: 0,
        failures: 0,
    };
    if mmio_read::<u32>(DISK) != 0x7472_6976 || mmio_read::<u32>(DISK + 8) != 2 {
        println!("disk: FAIL: no virtio-blk device at {DISK:#x}");
        return;
    }
    let started = d.start();
    d.check("start", started, 0);
    let capacity = mmio_read::<u64>(DISK + 0x100);
    println!("disk: capacity {capacity} sectors");

    // A good read: sectors 2-3 hold the ext4 superblock.
    let status = d.request(T_IN, 2, 1024);
    d.check(
        "read the superblock",
        status == S_OK && superblock_magic() == 0xef53,
        u64::from(status),
    );
    // Bad requests: answered, never served.
    let status = d.request(T_IN, capacity, 512);
    d.check(
        "read past the end is IOERR",
        status == S_IOERR,
        u64::from(status),
    );
    let status = d.request(T_IN, capacity - 1, 1024);
    d.check(
        "read crossing the end is IOERR",
        status == S_IOERR,
        u64::from(status),
    );
    let status = d.request(T_IN, u64::MAX, 512);
    d.check(
        "sector overflow is IOERR",
        status == S_IOERR,
        u64::from(status),
    );
    let status = d.request(T_IN, 0, 100);
    d.check(
        "partial sector is IOERR",
        status == S_IOERR,
        u64::from(status),
    );
    let status = d.request(77, 0, 512);
    d.check(
        "unknown type is UNSUPP",
        status == S_UNSUPP,
        u64::from(status),
    );
    // The disk is read-only: a write is refused and changes nothing.
    for i in 0..1024 {
        mmio_write::<u8>(data() + i, 0xa5);
    }
    let status = d.request(T_OUT, 2, 1024);
    d.check(
        "write to a read-only disk is IOERR",
        status == S_IOERR,
        u64::from(status),
    );
    let status = d.request(T_IN, 2, 1024);
    d.check(
        "the disk is unchanged",
        status == S_OK && superblock_magic() == 0xef53,
        u64::from(status),
    );
    // GET_ID answers the disk's ID (the VM's name).
    let status = d.request(T_GET_ID, 0, 20);
    let first = mmio_read::<u8>(data());
    d.check(
        "GET_ID answers",
        status == S_OK && first.is_ascii_alphabetic(),
        u64::from(first),
    );
    // A header cut short, then one split in two (which is fine).
    mmio_write::<u8>(status_at(), 0xff);
    let short = d.submit(&[(header() as u64, 8, false), (status_at() as u64, 1, true)]);
    let status = mmio_read::<u8>(status_at());
    d.check(
        "short header is IOERR",
        short == Some(1) && status == S_IOERR,
        u64::from(status),
    );
    mmio_write::<u32>(header(), T_IN);
    mmio_write::<u64>(header() + 8, 2);
    mmio_write::<u8>(status_at(), 0xff);
    let split = d.submit(&[
        (header() as u64, 8, false),
        (header() as u64 + 8, 8, false),
        (data() as u64, 512, true),
        (data() as u64 + 512, 512, true),
        (status_at() as u64, 1, true),
    ]);
    d.check(
        "split header and data",
        split == Some(1025) && mmio_read::<u8>(status_at()) == S_OK && superblock_magic() == 0xef53,
        u64::from(split.unwrap_or(0)),
    );

    // Chains the device cannot answer at all: DEVICE_NEEDS_RESET.
    mmio_write::<u32>(header(), T_IN);
    let outside = d.submit(&[
        (header() as u64, 16, false),
        (0x0800_0000, 512, true), // the GIC distributor, not RAM
        (status_at() as u64, 1, true),
    ]);
    d.expect_needs_reset("data outside the VM's RAM needs a reset", outside);
    let beyond = d.submit(&[
        (header() as u64, 16, false),
        (0xffff_ffff_ffff_f000, 0x2000, true), // wraps the address space
        (status_at() as u64, 1, true),
    ]);
    d.expect_needs_reset("data wrapping the address space needs a reset", beyond);
    let no_status = d.submit(&[(header() as u64, 16, false)]);
    d.expect_needs_reset("no status byte needs a reset", no_status);
    Driver::set_desc(0, header() as u64, 16, F_NEXT, 0); // loops on itself
    let looping = d.submit_raw(0);
    d.expect_needs_reset("a looping chain needs a reset", looping);
    let out_of_range = d.submit_raw(200);
    d.expect_needs_reset("a head beyond the queue needs a reset", out_of_range);
    let writable_first = d.submit(&[(status_at() as u64, 1, true), (header() as u64, 16, false)]);
    d.expect_needs_reset("readable after writable needs a reset", writable_first);

    // A flood of bad requests: each answered, the log stays bounded.
    let mut answered = 0u32;
    for _ in 0..2000 {
        if d.request(77, 0, 512) == S_UNSUPP {
            answered += 1;
        }
    }
    d.check(
        "2000 bad requests all answered",
        answered == 2000,
        u64::from(answered),
    );
    // After all that, a good read still reads the disk.
    let status = d.request(T_IN, 2, 1024);
    d.check(
        "a good read still works",
        status == S_OK && superblock_magic() == 0xef53,
        u64::from(status),
    );
    println!("disk: {} failures", d.failures);
}
