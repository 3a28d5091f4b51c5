use super::*;
use crate::virtio_blk::{SECTOR_SIZE, S_UNSUPP, T_FLUSH, T_GET_ID, T_IN, T_OUT};
use crate::virtio_mmio::{status, VirtioMmio};
use crate::virtqueue::{FlatMemory, QueueConfig, FLAT_DMA_OFFSET};
use alloc::vec::Vec;

const BASE: u64 = 0x4000_0000;
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x1000;
const USED: u64 = BASE + 0x2000;
const HEADERS: u64 = BASE + 0x3000;
const DATA: u64 = BASE + 0x10000;
const QSIZE: u16 = 16;

/// A disk that records what it was asked and answers everything at
/// `finish` (in reverse order, as a real disk may).
struct FakeDisk {
    sectors: u64,
    read_only: bool,
    fail: bool,
    /// Requests `start` accepts before it says the disk is full.
    room: usize,
    calls: Vec<(BlkOp, Vec<Piece>)>,
    started: Vec<usize>,
    finishes: usize,
    /// Interrupt mode: `reap` reports what `device_done` lists.
    interrupting: bool,
    device_done: Vec<usize>,
    kicks: usize,
}

impl FakeDisk {
    fn new(sectors: u64) -> Self {
        FakeDisk {
            sectors,
            read_only: false,
            fail: false,
            room: MAX_IN_FLIGHT,
            calls: Vec::new(),
            started: Vec::new(),
            finishes: 0,
            interrupting: false,
            device_done: Vec::new(),
            kicks: 0,
        }
    }
}

impl Disk for FakeDisk {
    fn capacity(&self) -> u64 {
        self.sectors
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn start(&mut self, tag: usize, op: BlkOp, pieces: &[Piece]) -> bool {
        assert!(!self.started.contains(&tag), "tag {tag} is in flight");
        if self.started.len() >= self.room {
            return false;
        }
        self.calls.push((op, pieces.to_vec()));
        self.started.push(tag);
        true
    }
    fn finish(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize {
        self.finishes += 1;
        let status = if self.fail { S_IOERR } else { S_OK };
        let count = self.started.len();
        for (slot, tag) in self.started.drain(..).rev().enumerate() {
            done[slot] = (tag, status);
        }
        self.device_done.clear();
        count
    }
    fn interrupts(&self) -> bool {
        self.interrupting
    }
    fn kick(&mut self) {
        self.kicks += 1;
    }
    fn reap(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize {
        let mut count = 0;
        for tag in core::mem::take(&mut self.device_done) {
            self.started.retain(|t| *t != tag);
            done[count] = (tag, S_OK);
            count += 1;
        }
        count
    }
}

fn memory() -> FlatMemory {
    FlatMemory {
        base: BASE,
        bytes: alloc::vec![0; 0x40000],
    }
}

/// The test queue's rings.
const CONFIG: QueueConfig = QueueConfig {
    size: QSIZE,
    desc_table: DESC,
    avail_ring: AVAIL,
    used_ring: USED,
};

fn queue(mem: &FlatMemory) -> SplitQueue {
    SplitQueue::new(CONFIG, mem).unwrap()
}

/// Make a chain of (addr, len, device-writable) buffers available at `slot`.
fn offer(mem: &mut FlatMemory, slot: u16, first_desc: u16, buffers: &[(u64, u32, bool)]) {
    mem.offer_chain(CONFIG, slot, first_desc, buffers);
}

fn header(mem: &mut FlatMemory, at: u64, kind: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&kind.to_le_bytes());
    h[8..].copy_from_slice(&sector.to_le_bytes());
    assert!(mem.write(at, &h));
}

fn byte(mem: &FlatMemory, at: u64) -> u8 {
    let mut b = [0u8];
    assert!(mem.read(at, &mut b));
    b[0]
}

fn used_elem(mem: &FlatMemory, slot: u64) -> (u32, u32) {
    let mut e = [0u8; 8];
    assert!(mem.read(USED + 4 + 8 * slot, &mut e));
    (
        u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
        u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
    )
}

#[test]
fn a_read_reaches_the_disk_as_the_guests_own_pages() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut dev = BlkDevice::new(FakeDisk::new(1024), "vm1");
    header(&mut mem, HEADERS, T_IN, 8);
    let status = HEADERS + 0x100;
    offer(
        &mut mem,
        0,
        0,
        &[(HEADERS, 16, false), (DATA, 4096, true), (status, 1, true)],
    );
    assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
    assert_eq!(
        dev.disk.calls,
        [(
            BlkOp::Read { sector: 8 },
            alloc::vec![Piece {
                addr: DATA + FLAT_DMA_OFFSET,
                len: 4096,
                device_writes: true
            }]
        )]
    );
    assert_eq!(byte(&mem, status), S_OK);
    assert_eq!(used_elem(&mem, 0), (0, 4097));
    assert_eq!(dev.counters.reads, 1);
    assert_eq!(dev.counters.bytes_read, 4096);
}

#[test]
fn a_write_split_across_buffers_and_pages_keeps_its_order() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut dev = BlkDevice::new(FakeDisk::new(1024), "vm1");
    // Header split in two, data starting mid-page and crossing into the next.
    header(&mut mem, HEADERS, T_OUT, 2);
    let status = HEADERS + 0x100;
    offer(
        &mut mem,
        0,
        0,
        &[
            (HEADERS, 10, false),
            (HEADERS + 10, 6, false),
            (DATA + 0xE00, 1024, false),
            (DATA + 0x3000, 512, false),
            (status, 1, true),
        ],
    );
    assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
    let (op, pieces) = &dev.disk.calls[0];
    assert_eq!(*op, BlkOp::Write { sector: 2 });
    // Host-contiguous pages are merged; the separate buffer stays separate.
    assert_eq!(
        pieces.as_slice(),
        [
            Piece {
                addr: DATA + 0xE00 + FLAT_DMA_OFFSET,
                len: 1024,
                device_writes: false
            },
            Piece {
                addr: DATA + 0x3000 + FLAT_DMA_OFFSET,
                len: 512,
                device_writes: false
            },
        ]
    );
    assert_eq!(byte(&mem, status), S_OK);
    assert_eq!(used_elem(&mem, 0), (0, 1));
}

/// Guest memory whose pages are scattered in host memory (page n of the
/// guest is host page 100 - n), as after ballooning or page sharing.
struct ScatteredMemory(FlatMemory);

impl GuestMemory for ScatteredMemory {
    fn contains(&self, addr: u64, len: u64) -> bool {
        self.0.contains(addr, len)
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        self.0.read(addr, buf)
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        self.0.write(addr, data)
    }
    fn dma_address(&mut self, addr: u64) -> Option<u64> {
        if !self.0.contains(addr, 1) {
            return None;
        }
        let page = (addr - BASE) / PAGE_SIZE;
        Some((100 - page) * PAGE_SIZE + addr % PAGE_SIZE)
    }
}

#[test]
fn guest_pages_are_translated_one_by_one() {
    let mut mem = ScatteredMemory(memory());
    let data = [Buffer {
        addr: BASE + 0x10_800,
        len: 0x1000,
        writable: true,
    }];
    let mut out = [Piece::default(); 4];
    assert_eq!(guest_pieces(&data, &mut mem, &mut out), Some(2));
    assert_eq!(
        out[..2],
        [
            Piece {
                addr: (100 - 0x10) * PAGE_SIZE + 0x800,
                len: 0x800,
                device_writes: true
            },
            Piece {
                addr: (100 - 0x11) * PAGE_SIZE,
                len: 0x800,
                device_writes: true
            },
        ]
    );
    // Too many pieces for the room given: refused, not truncated.
    let mut small = [Piece::default(); 1];
    assert_eq!(guest_pieces(&data, &mut mem, &mut small), None);
    // A page outside the VM's RAM.
    let outside = [Buffer {
        addr: BASE + 0x40000 - 0x800,
        len: 0x1000,
        writable: false,
    }];
    assert_eq!(guest_pieces(&outside, &mut mem, &mut out), None);
}

#[test]
fn bad_requests_are_answered_without_touching_the_disk() {
    let cases: [(u32, u64, u32, bool, u8); 5] = [
        // type, sector, data length, read-only disk, expected status
        (T_IN, 1023, 1024, false, S_IOERR), // ends past the disk
        (T_IN, 0, 100, false, S_IOERR),     // not whole sectors
        (T_OUT, 0, 512, true, S_IOERR),     // write to a read-only disk
        (77, 0, 512, false, S_UNSUPP),      // unknown type
        (T_IN, u64::MAX, 512, false, S_IOERR), // sector arithmetic overflows
    ];
    for (kind, sector, len, read_only, expected) in cases {
        let mut mem = memory();
        let mut q = queue(&mem);
        let mut disk = FakeDisk::new(1024);
        disk.read_only = read_only;
        let mut dev = BlkDevice::new(disk, "vm1");
        header(&mut mem, HEADERS, kind, sector);
        let status = HEADERS + 0x100;
        let writable = kind != T_OUT;
        offer(
            &mut mem,
            0,
            0,
            &[
                (HEADERS, 16, false),
                (DATA, len, writable),
                (status, 1, true),
            ],
        );
        assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
        assert_eq!(byte(&mem, status), expected, "type {kind} sector {sector}");
        assert!(dev.disk.calls.is_empty());
        assert_eq!(dev.counters.refused, 1);
        assert!(dev.last_failure.is_some());
    }
}

#[test]
fn a_disk_error_fails_only_that_request() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut dev = BlkDevice::new(FakeDisk::new(1024), "vm1");
    dev.disk.fail = true;
    header(&mut mem, HEADERS, T_IN, 0);
    header(&mut mem, HEADERS + 0x20, T_FLUSH, 0);
    offer(
        &mut mem,
        0,
        0,
        &[
            (HEADERS, 16, false),
            (DATA, 512, true),
            (HEADERS + 0x100, 1, true),
        ],
    );
    assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
    assert_eq!(byte(&mem, HEADERS + 0x100), S_IOERR);
    assert_eq!(used_elem(&mem, 0), (0, 1));
    dev.disk.fail = false;
    offer(
        &mut mem,
        1,
        4,
        &[(HEADERS + 0x20, 16, false), (HEADERS + 0x101, 1, true)],
    );
    assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
    assert_eq!(byte(&mem, HEADERS + 0x101), S_OK);
    assert_eq!(dev.disk.calls[1].0, BlkOp::Flush);
    assert_eq!(dev.counters.disk_errors, 1);
    assert_eq!(dev.take_failures(), Some((Failure::Disk, 1)));
    assert_eq!(dev.take_failures(), None);
    assert_eq!(dev.counters.flushes, 1);
}

#[test]
fn get_id_answers_the_configured_id_without_the_disk() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut dev = BlkDevice::new(FakeDisk::new(8), "disk-of-vm1");
    header(&mut mem, HEADERS, T_GET_ID, 0);
    offer(
        &mut mem,
        0,
        0,
        &[
            (HEADERS, 16, false),
            (DATA, 40, true),
            (HEADERS + 0x100, 1, true),
        ],
    );
    assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
    let mut id = [0xffu8; 20];
    assert!(mem.read(DATA, &mut id));
    assert_eq!(&id[..11], b"disk-of-vm1");
    assert!(id[11..].iter().all(|b| *b == 0));
    assert!(dev.disk.calls.is_empty());
    assert_eq!(used_elem(&mem, 0), (0, 21));
}

#[test]
fn a_chain_without_a_status_byte_needs_a_reset() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut dev = BlkDevice::new(FakeDisk::new(8), "vm1");
    header(&mut mem, HEADERS, T_IN, 0);
    offer(&mut mem, 0, 0, &[(HEADERS, 16, false)]);
    assert_eq!(
        dev.notify(0, &mut q, &mut mem),
        Err(QueueError::Unanswerable)
    );
    assert!(dev.disk.calls.is_empty());
}

#[test]
fn the_guest_driver_sees_capacity_limits_and_features_through_the_transport() {
    let mut mem = memory();
    let mut disk = FakeDisk::new(0x1_2345_6789);
    disk.read_only = true;
    let mut transport = VirtioMmio::new(BlkDevice::new(disk, "vm1"));
    let mut read =
        |offset: u64, size: u8| match transport.access(offset, size, false, 0, &mut mem).0 {
            crate::mmio::MmioOutcome::Read(v) => v,
            other => panic!("{other:?}"),
        };
    assert_eq!(read(0x008, 4), u64::from(DEVICE_ID));
    assert_eq!(read(0x010, 4), F_SIZE_MAX | F_SEG_MAX | F_RO | F_FLUSH);
    assert_eq!(read(0x100, 8), 0x1_2345_6789);
    assert_eq!(read(0x100, 4), 0x2345_6789);
    assert_eq!(read(0x104, 4), 1);
    assert_eq!(read(0x103, 1), 0x23);
    assert_eq!(read(0x108, 4), PAGE_SIZE);
    assert_eq!(read(0x10c, 4), u64::from(SEG_MAX));
    assert_eq!(read(0x200 - 8, 8), 0);
    // Misaligned or odd-sized configuration reads abort.
    assert_eq!(
        transport.access(0x101, 4, false, 0, &mut mem).0,
        crate::mmio::MmioOutcome::Abort
    );
    assert_eq!(
        transport.access(0x100, 3, false, 0, &mut mem).0,
        crate::mmio::MmioOutcome::Abort
    );
    let _ = status::DRIVER_OK;
}

#[test]
fn sectors_are_512_bytes() {
    assert_eq!(SECTOR_SIZE, 512);
}

/// Offer `count` one-sector reads, each its own chain of 3 descriptors.
fn offer_reads(mem: &mut FlatMemory, count: u16) {
    for k in 0..count {
        let h = HEADERS + 0x20 * u64::from(k);
        header(mem, h, T_IN, u64::from(k));
        offer(
            mem,
            k,
            3 * k,
            &[
                (h, 16, false),
                (DATA + 512 * u64::from(k), 512, true),
                (HEADERS + 0x800 + u64::from(k), 1, true),
            ],
        );
    }
}

#[test]
fn requests_of_one_notification_are_in_flight_together() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut dev = BlkDevice::new(FakeDisk::new(64), "vm1");
    offer_reads(&mut mem, 4);
    assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
    // All four started before one wait.
    assert_eq!(dev.disk.calls.len(), 4);
    assert_eq!(dev.disk.finishes, 1);
    for k in 0..4u64 {
        assert_eq!(byte(&mem, HEADERS + 0x800 + k), S_OK);
    }
    // Answered in the disk's order (reverse), each with its own head.
    let heads: Vec<u32> = (0..4).map(|slot| used_elem(&mem, slot).0).collect();
    assert_eq!(heads, [9, 6, 3, 0]);
    assert!((0..4).all(|slot| used_elem(&mem, slot).1 == 513));
    assert_eq!(dev.counters.reads, 4);
}

#[test]
fn a_full_disk_is_waited_for_then_given_the_rest() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut disk = FakeDisk::new(64);
    disk.room = 2;
    let mut dev = BlkDevice::new(disk, "vm1");
    offer_reads(&mut mem, 5);
    assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
    assert_eq!(dev.disk.calls.len(), 5);
    assert_eq!(dev.disk.finishes, 3);
    assert_eq!(dev.counters.reads, 5);
    for k in 0..5u64 {
        assert_eq!(byte(&mem, HEADERS + 0x800 + k), S_OK);
    }
}

#[test]
fn a_flush_waits_for_the_writes_before_it() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut dev = BlkDevice::new(FakeDisk::new(64), "vm1");
    header(&mut mem, HEADERS, T_OUT, 0);
    offer(
        &mut mem,
        0,
        0,
        &[
            (HEADERS, 16, false),
            (DATA, 512, false),
            (HEADERS + 0x800, 1, true),
        ],
    );
    header(&mut mem, HEADERS + 0x20, T_FLUSH, 0);
    offer(
        &mut mem,
        1,
        3,
        &[(HEADERS + 0x20, 16, false), (HEADERS + 0x801, 1, true)],
    );
    assert_eq!(dev.notify(0, &mut q, &mut mem), Ok(true));
    assert_eq!(dev.disk.calls[1].0, BlkOp::Flush);
    // The write was finished alone, then the flush.
    assert_eq!(dev.disk.finishes, 2);
    assert_eq!(used_elem(&mem, 0).0, 0);
    assert_eq!(used_elem(&mem, 1).0, 3);
}

#[test]
fn a_bad_chain_after_good_ones_still_answers_them_first() {
    let mut mem = memory();
    let mut q = queue(&mem);
    let mut dev = BlkDevice::new(FakeDisk::new(64), "vm1");
    offer_reads(&mut mem, 2);
    // A third chain with a head beyond the queue.
    assert!(mem.write(AVAIL + 4 + 2 * 2, &100u16.to_le_bytes()));
    assert!(mem.write(AVAIL + 2, &3u16.to_le_bytes()));
    assert_eq!(
        dev.notify(0, &mut q, &mut mem),
        Err(QueueError::DescriptorIndexOutOfRange)
    );
    assert_eq!(byte(&mem, HEADERS + 0x800), S_OK);
    assert_eq!(byte(&mem, HEADERS + 0x801), S_OK);
    assert_eq!(dev.counters.reads, 2);
}

/// A transport with the disk's queue 0 live on the test rings.
fn live_transport(disk: FakeDisk, mem: &mut FlatMemory) -> VirtioMmio<BlkDevice<FakeDisk>> {
    let mut t = VirtioMmio::new(BlkDevice::new(disk, "vm1"));
    let mut w = |offset: u64, value: u64| {
        assert_eq!(
            t.access(offset, 4, true, value, mem).0,
            crate::mmio::MmioOutcome::Written
        );
    };
    w(
        0x70,
        u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK),
    );
    w(0x38, u64::from(QSIZE));
    w(0x80, DESC);
    w(0x90, AVAIL);
    w(0xa0, USED);
    w(0x44, 1);
    w(
        0x70,
        u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK),
    );
    t
}

#[test]
fn an_interrupting_disk_answers_after_the_notification_returns() {
    let mut mem = memory();
    let mut disk = FakeDisk::new(64);
    disk.interrupting = true;
    let mut t = live_transport(disk, &mut mem);
    offer_reads(&mut mem, 3);
    let (_, effects) = t.access(0x50, 4, true, 0, &mut mem);
    // Started and kicked, not waited for: no answer yet, no interrupt.
    assert_eq!(effects.interrupt, None);
    assert_eq!(t.backend.disk.calls.len(), 3);
    assert_eq!(t.backend.disk.kicks, 1);
    assert_eq!(t.backend.disk.finishes, 0);
    assert_eq!(byte(&mem, HEADERS + 0x800), 0);
    // The disk's interrupt: two are done.
    t.backend.disk.device_done = alloc::vec![2, 0];
    assert_eq!(t.poll_backend(&mut mem).interrupt, Some(true));
    assert_eq!(byte(&mem, HEADERS + 0x800), S_OK);
    assert_eq!(byte(&mem, HEADERS + 0x802), S_OK);
    assert_eq!(byte(&mem, HEADERS + 0x801), 0);
    // Nothing new: no interrupt.
    assert_eq!(t.poll_backend(&mut mem).interrupt, None);
    t.backend.disk.device_done = alloc::vec![1];
    assert_eq!(t.poll_backend(&mut mem).interrupt, Some(true));
    assert_eq!(byte(&mem, HEADERS + 0x801), S_OK);
    assert_eq!(t.backend.counters.reads, 3);
}

#[test]
fn a_reset_waits_for_the_disk_and_answers_nothing() {
    let mut mem = memory();
    let mut disk = FakeDisk::new(64);
    disk.interrupting = true;
    let mut t = live_transport(disk, &mut mem);
    offer_reads(&mut mem, 2);
    t.access(0x50, 4, true, 0, &mut mem);
    assert_eq!(t.backend.disk.started.len(), 2);
    // The driver resets the device: the disk finishes with the guest's
    // pages before the reset completes; the used ring is not touched.
    t.access(0x70, 4, true, 0, &mut mem);
    assert_eq!(t.backend.disk.finishes, 1);
    assert!(t.backend.disk.started.is_empty());
    assert_eq!(used_elem(&mem, 0), (0, 0));
    assert_eq!(t.poll_backend(&mut mem).interrupt, None);
}
