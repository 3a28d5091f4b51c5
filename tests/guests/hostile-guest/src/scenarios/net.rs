//! Attack the VM's virtio-net card (slot 2, 0x0a000400) and through it the
//! switch: frames with another source address, runts, oversized frames,
//! writable transmit buffers, a header alone, a broadcast flood, a looping
//! chain and data outside RAM. Prints `net: <case>: ok` per check; the
//! switch's verdicts are read from the hypervisor's counters by
//! tests/hostile_net.rs, and a Linux VM on the same network must not notice.

use guest_rt::{mmio_read, mmio_write, println};

use super::virtq::{Driver, F_NEXT};

const NIC: usize = 0x0A00_0400;
/// The transmit queue (the receive queue stays off: frames for this VM are
/// dropped, which is allowed).
const TX: u32 = 1;

/// Transmit rings (a page each) and a frame buffer, in the guest's RAM.
#[repr(C, align(4096))]
struct Memory([u8; 0x4000]);

static mut MEM: Memory = Memory([0; 0x4000]);

fn base() -> usize {
    core::ptr::addr_of!(MEM) as usize
}
fn frame_at() -> usize {
    base() + 0x3000
}

/// Send a frame of `len` bytes (after the 12-byte header) from `src` to
/// broadcast; whether the card returned it.
fn frame(d: &mut Driver, src: [u8; 6], len: u32) -> bool {
    for i in 0..12 {
        mmio_write::<u8>(frame_at() + i, 0);
    }
    for (i, byte) in src.iter().enumerate() {
        mmio_write::<u8>(frame_at() + 12 + i, 0xff);
        mmio_write::<u8>(frame_at() + 18 + i, *byte);
    }
    mmio_write::<u16>(frame_at() + 24, 0x0008); // IPv4, big-endian
    d.offer_chain(&[(frame_at() as u64, 12 + len, false)])
        .is_some()
}

pub fn run(_dtb: u64) {
    let mut d = Driver::new(NIC, base(), TX, "net");
    if !d.present(1) {
        println!("net: FAIL: no virtio-net card at {NIC:#x}");
        return;
    }
    let started = d.start();
    d.check("start", started, 0);
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = mmio_read::<u8>(NIC + 0x100 + i);
    }
    println!(
        "net: my address {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );

    let sent = frame(&mut d, mac, 60);
    d.check("a good broadcast is taken", sent, 0);
    // Another source address, and a group source: dropped by the switch.
    let spoofed = frame(&mut d, [0x52, 0x54, 0, 0xde, 0xad, 0x02], 60);
    d.check(
        "a spoofed frame is taken (and dropped by the switch)",
        spoofed,
        0,
    );
    let group = frame(&mut d, [0xff; 6], 60);
    d.check(
        "a group source is taken (and dropped by the switch)",
        group,
        0,
    );
    // Bad frames: returned, counted, never forwarded.
    let runt = frame(&mut d, mac, 10);
    d.check("a runt is returned", runt, 0);
    let oversized = d
        .offer_chain(&[(frame_at() as u64, 12 + 2000, false)])
        .is_some();
    d.check("an oversized frame is returned", oversized, 0);
    let header_only = d.offer_chain(&[(frame_at() as u64, 12, false)]).is_some();
    d.check("a header alone is returned", header_only, 0);
    let writable = d
        .offer_chain(&[
            (frame_at() as u64, 12, false),
            (frame_at() as u64 + 12, 60, true),
        ])
        .is_some();
    d.check("a writable transmit buffer is returned", writable, 0);
    // A broadcast flood: the switch lets a budget through and drops the rest.
    let taken = (0..1000).filter(|_| frame(&mut d, mac, 60)).count();
    d.check("1000 broadcasts all taken", taken == 1000, taken as u64);
    // Chains the card cannot use at all.
    let outside = d.offer_chain(&[(0x0800_0000, 72, false)]);
    d.expect_needs_reset("data outside the VM's RAM needs a reset", outside);
    d.set_desc(0, frame_at() as u64, 72, F_NEXT, 0);
    let looping = d.offer(0);
    d.expect_needs_reset("a looping chain needs a reset", looping);
    let sent = frame(&mut d, mac, 60);
    d.check("a good frame still goes", sent, 0);
    println!("net: {} failures", d.failures);
}
