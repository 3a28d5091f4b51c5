use super::*;
use crate::mmio::MmioOutcome;
use crate::virtio_mmio::{status, VirtioMmio};
use crate::virtqueue::{FlatMemory, QueueConfig};

const BASE: u64 = 0x4000_0000;
const QSIZE: u64 = 8;
/// Rings of queue q at BASE + q * 0x3000: descriptors, available, used.
fn desc(q: u64) -> u64 {
    BASE + q * 0x3000
}
fn avail(q: u64) -> u64 {
    desc(q) + 0x1000
}
fn used(q: u64) -> u64 {
    desc(q) + 0x2000
}
const BUFFERS: u64 = BASE + 0x8000;
const MAC: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn memory() -> FlatMemory {
    FlatMemory {
        base: BASE,
        bytes: alloc::vec![0; 0x20000],
    }
}

fn nic(mem: &mut FlatMemory) -> VirtioMmio<NetDevice> {
    let mut t = VirtioMmio::new(NetDevice::new(MAC));
    let mut w = |offset: u64, value: u64| {
        assert_eq!(
            t.access(offset, 4, true, value, mem).0,
            MmioOutcome::Written
        );
    };
    w(
        0x70,
        u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK),
    );
    for q in 0..2 {
        w(0x30, q);
        w(0x38, QSIZE);
        w(0x80, desc(q));
        w(0x90, avail(q));
        w(0xa0, used(q));
        w(0x44, 1);
    }
    w(
        0x70,
        u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK),
    );
    t
}

/// Make the chain of (addr, len, writable) available on queue `q`.
fn offer(mem: &mut FlatMemory, q: u64, slot: u16, first: u16, chain: &[(u64, u32, bool)]) {
    let config = QueueConfig {
        size: QSIZE as u16,
        desc_table: desc(q),
        avail_ring: avail(q),
        used_ring: used(q),
    };
    mem.offer_chain(config, slot, first, chain);
}

fn used_len(mem: &FlatMemory, q: u64, slot: u64) -> u32 {
    let mut e = [0u8; 4];
    assert!(mem.read(used(q) + 4 + 8 * slot + 4, &mut e));
    u32::from_le_bytes(e)
}

fn frame(len: usize) -> alloc::vec::Vec<u8> {
    let mut f = alloc::vec![0u8; len];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&MAC);
    for (i, b) in f.iter_mut().enumerate().skip(12) {
        *b = i as u8;
    }
    f
}

#[test]
fn the_mac_is_in_the_configuration_space() {
    let mut mem = memory();
    let mut t = nic(&mut mem);
    assert_eq!(
        t.access(0x008, 4, false, 0, &mut mem).0,
        MmioOutcome::Read(1)
    );
    assert_eq!(
        t.access(0x010, 4, false, 0, &mut mem).0,
        MmioOutcome::Read(F_MAC)
    );
    assert_eq!(
        t.access(0x100, 4, false, 0, &mut mem).0,
        MmioOutcome::Read(0x1200_5452)
    );
    assert_eq!(
        t.access(0x104, 2, false, 0, &mut mem).0,
        MmioOutcome::Read(0x5634)
    );
    assert_eq!(
        t.access(0x105, 1, false, 0, &mut mem).0,
        MmioOutcome::Read(0x56)
    );
}

#[test]
fn a_transmitted_frame_is_copied_out_whatever_its_framing() {
    let mut mem = memory();
    let mut t = nic(&mut mem);
    let f = frame(100);
    // Header split across two buffers, the frame across two more.
    assert!(mem.write(BUFFERS + 0x100, &f[..40]));
    assert!(mem.write(BUFFERS + 0x200, &f[40..]));
    offer(
        &mut mem,
        1,
        0,
        0,
        &[
            (BUFFERS, 5, false),
            (BUFFERS + 0x10, 7, false),
            (BUFFERS + 0x100, 40, false),
            (BUFFERS + 0x200, 60, false),
        ],
    );
    let (_, effects) = t.access(0x050, 4, true, 1, &mut mem);
    assert_eq!(effects.interrupt, Some(true));
    let out = t.backend.take_outbox();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data(), &f[..]);
    // The sender rewriting its buffer afterwards changes nothing.
    assert!(mem.write(BUFFERS + 0x100, &[0u8; 40]));
    assert_eq!(out[0].data(), &f[..]);
    assert_eq!(t.backend.counters.tx_frames, 1);
}

#[test]
fn bad_transmit_chains_are_returned_not_forwarded() {
    let mut mem = memory();
    let mut t = nic(&mut mem);
    // Only a header; a runt frame; a frame longer than any Ethernet frame;
    // a writable buffer.
    offer(&mut mem, 1, 0, 0, &[(BUFFERS, 12, false)]);
    offer(&mut mem, 1, 1, 1, &[(BUFFERS, 12 + 13, false)]);
    offer(
        &mut mem,
        1,
        2,
        2,
        &[(BUFFERS, 12 + MAX_FRAME as u32 + 1, false)],
    );
    offer(
        &mut mem,
        1,
        3,
        3,
        &[(BUFFERS, 12, false), (BUFFERS + 0x100, 60, true)],
    );
    t.access(0x050, 4, true, 1, &mut mem);
    assert!(t.backend.take_outbox().is_empty());
    assert_eq!(t.backend.counters.tx_bad, 4);
    assert_eq!(used_len(&mem, 1, 3), 0);
}

#[test]
fn a_burst_leaves_the_rest_for_the_next_round() {
    let mut mem = memory();
    let mut t = VirtioMmio::new(NetDevice::new(MAC));
    // A bigger transmit queue than a burst.
    let w = |t: &mut VirtioMmio<NetDevice>, mem: &mut FlatMemory, offset: u64, value: u64| {
        t.access(offset, 4, true, value, mem);
    };
    w(&mut t, &mut mem, 0x70, 11);
    w(&mut t, &mut mem, 0x30, 1);
    w(&mut t, &mut mem, 0x38, 32);
    w(&mut t, &mut mem, 0x80, desc(1));
    w(&mut t, &mut mem, 0x90, avail(1));
    w(&mut t, &mut mem, 0xa0, used(1));
    w(&mut t, &mut mem, 0x44, 1);
    w(&mut t, &mut mem, 0x70, 15);
    assert!(mem.write(BUFFERS + 12, &frame(60)));
    for k in 0..20u16 {
        let d = desc(1) + 16 * u64::from(k);
        let mut e = [0u8; 16];
        e[..8].copy_from_slice(&BUFFERS.to_le_bytes());
        e[8..12].copy_from_slice(&72u32.to_le_bytes());
        assert!(mem.write(d, &e));
        assert!(mem.write(avail(1) + 4 + 2 * u64::from(k), &k.to_le_bytes()));
    }
    assert!(mem.write(avail(1) + 2, &20u16.to_le_bytes()));
    t.access(0x050, 4, true, 1, &mut mem);
    assert_eq!(t.backend.take_outbox().len(), TX_BURST);
    assert!(t.backend.tx_pending);
    let effects = t.with_queue(TX_QUEUE, &mut mem, |nic, queue, mem| {
        nic.notify(TX_QUEUE, queue, mem)
    });
    assert_eq!(effects.interrupt, Some(true));
    assert_eq!(t.backend.take_outbox().len(), 20 - TX_BURST);
    assert!(!t.backend.tx_pending);
}

#[test]
fn a_received_frame_lands_in_the_next_buffer_with_its_header() {
    let mut mem = memory();
    let mut t = nic(&mut mem);
    // No buffer: dropped and counted, no interrupt.
    let f = frame(80);
    let effects = t.with_queue(RX_QUEUE, &mut mem, |nic, queue, mem| {
        nic.receive(&f, queue, mem)
    });
    assert_eq!(effects.interrupt, None);
    assert_eq!(t.backend.counters.rx_dropped, 1);
    // A buffer split in two.
    offer(
        &mut mem,
        0,
        0,
        0,
        &[(BUFFERS, 20, true), (BUFFERS + 0x100, 1514, true)],
    );
    let effects = t.with_queue(RX_QUEUE, &mut mem, |nic, queue, mem| {
        nic.receive(&f, queue, mem)
    });
    assert_eq!(effects.interrupt, Some(true));
    let mut got = [0u8; 92];
    assert!(mem.read(BUFFERS, &mut got[..20]));
    assert!(mem.read(BUFFERS + 0x100, &mut got[20..]));
    assert_eq!(got[..12], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(&got[12..], &f[..]);
    assert_eq!(used_len(&mem, 0, 0), 92);
    // A buffer too small: returned empty, frame dropped.
    offer(&mut mem, 0, 1, 2, &[(BUFFERS, 50, true)]);
    t.with_queue(RX_QUEUE, &mut mem, |nic, queue, mem| {
        nic.receive(&f, queue, mem)
    });
    assert_eq!(used_len(&mem, 0, 1), 0);
    assert_eq!(t.backend.counters.rx_dropped, 2);
    assert_eq!(t.backend.counters.rx_frames, 1);
}
