//! Attack the VM's virtio-blk disk (slot 1, 0x0a000200) with every kind of
//! bad request and malformed descriptor chain, checking each answer is the
//! one the virtio specification gives, and that a good request still reads
//! the real disk afterwards. Run with a read-only disk holding an ext4 file
//! system (tests/hostile_disk.rs): a write must be refused and change
//! nothing. Prints `disk: <case>: ok` or `disk: <case>: FAIL ...`.

use guest_rt::{mmio_read, mmio_write, println};

use super::virtq::{Driver, F_NEXT};

const DISK: usize = 0x0A00_0200;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

/// Rings (a page each) and request buffers, in the guest's RAM.
#[repr(C, align(4096))]
struct Memory([u8; 0x6000]);

static mut MEM: Memory = Memory([0; 0x6000]);

fn base() -> usize {
    core::ptr::addr_of!(MEM) as usize
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

/// A request of `kind` at `sector` with `len` bytes of data; returns the
/// status byte (0xff: no answer).
fn request(d: &mut Driver, kind: u32, sector: u64, len: u32) -> u8 {
    mmio_write::<u32>(header(), kind);
    mmio_write::<u32>(header() + 4, 0);
    mmio_write::<u64>(header() + 8, sector);
    mmio_write::<u8>(status_at(), 0xff);
    let writable = kind != T_OUT;
    let answered = if len == 0 {
        d.offer_chain(&[(header() as u64, 16, false), (status_at() as u64, 1, true)])
    } else {
        d.offer_chain(&[
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

/// The ext4 superblock's magic (0xef53) at byte 1080 of the disk.
fn superblock_magic() -> u16 {
    mmio_read::<u16>(data() + 1080 - 1024)
}

pub fn run(_dtb: u64) {
    let mut d = Driver::new(DISK, base(), 0, "disk");
    if !d.present(2) {
        println!("disk: FAIL: no virtio-blk device at {DISK:#x}");
        return;
    }
    let started = d.start();
    d.check("start", started, 0);
    let capacity = mmio_read::<u64>(DISK + 0x100);
    println!("disk: capacity {capacity} sectors");

    // A good read: sectors 2-3 hold the ext4 superblock.
    let status = request(&mut d, T_IN, 2, 1024);
    d.check(
        "read the superblock",
        status == S_OK && superblock_magic() == 0xef53,
        u64::from(status),
    );
    // Bad requests: answered, never served.
    for (case, kind, sector, len, expected) in [
        ("read past the end is IOERR", T_IN, capacity, 512, S_IOERR),
        (
            "read crossing the end is IOERR",
            T_IN,
            capacity - 1,
            1024,
            S_IOERR,
        ),
        ("sector overflow is IOERR", T_IN, u64::MAX, 512, S_IOERR),
        ("partial sector is IOERR", T_IN, 0, 100, S_IOERR),
        ("unknown type is UNSUPP", 77, 0, 512, S_UNSUPP),
    ] {
        let status = request(&mut d, kind, sector, len);
        d.check(case, status == expected, u64::from(status));
    }
    // The disk is read-only: a write is refused and changes nothing.
    for i in 0..1024 {
        mmio_write::<u8>(data() + i, 0xa5);
    }
    let status = request(&mut d, T_OUT, 2, 1024);
    d.check(
        "write to a read-only disk is IOERR",
        status == S_IOERR,
        u64::from(status),
    );
    let status = request(&mut d, T_IN, 2, 1024);
    d.check(
        "the disk is unchanged",
        status == S_OK && superblock_magic() == 0xef53,
        u64::from(status),
    );
    // GET_ID answers the disk's ID (the VM's name).
    let status = request(&mut d, T_GET_ID, 0, 20);
    let first = mmio_read::<u8>(data());
    d.check(
        "GET_ID answers",
        status == S_OK && first.is_ascii_alphabetic(),
        u64::from(first),
    );
    // A header cut short, then one split in two (which is fine).
    mmio_write::<u8>(status_at(), 0xff);
    let short = d.offer_chain(&[(header() as u64, 8, false), (status_at() as u64, 1, true)]);
    let status = mmio_read::<u8>(status_at());
    d.check(
        "short header is IOERR",
        short == Some(1) && status == S_IOERR,
        u64::from(status),
    );
    mmio_write::<u32>(header(), T_IN);
    mmio_write::<u64>(header() + 8, 2);
    mmio_write::<u8>(status_at(), 0xff);
    let split = d.offer_chain(&[
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
    let outside = d.offer_chain(&[
        (header() as u64, 16, false),
        (0x0800_0000, 512, true), // the GIC distributor, not RAM
        (status_at() as u64, 1, true),
    ]);
    d.expect_needs_reset("data outside the VM's RAM needs a reset", outside);
    let beyond = d.offer_chain(&[
        (header() as u64, 16, false),
        (0xffff_ffff_ffff_f000, 0x2000, true), // wraps the address space
        (status_at() as u64, 1, true),
    ]);
    d.expect_needs_reset("data wrapping the address space needs a reset", beyond);
    let no_status = d.offer_chain(&[(header() as u64, 16, false)]);
    d.expect_needs_reset("no status byte needs a reset", no_status);
    d.set_desc(0, header() as u64, 16, F_NEXT, 0); // loops on itself
    let looping = d.offer(0);
    d.expect_needs_reset("a looping chain needs a reset", looping);
    let out_of_range = d.offer(200);
    d.expect_needs_reset("a head beyond the queue needs a reset", out_of_range);
    let writable_first =
        d.offer_chain(&[(status_at() as u64, 1, true), (header() as u64, 16, false)]);
    d.expect_needs_reset("readable after writable needs a reset", writable_first);

    // A flood of bad requests: each answered, the log stays bounded.
    let mut answered = 0u32;
    for _ in 0..2000 {
        if request(&mut d, 77, 0, 512) == S_UNSUPP {
            answered += 1;
        }
    }
    d.check(
        "2000 bad requests all answered",
        answered == 2000,
        u64::from(answered),
    );
    // After all that, a good read still reads the disk.
    let status = request(&mut d, T_IN, 2, 1024);
    d.check(
        "a good read still works",
        status == S_OK && superblock_magic() == 0xef53,
        u64::from(status),
    );
    println!("disk: {} failures", d.failures);
}
