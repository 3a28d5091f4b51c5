//! Accesses just outside each emulated device's range, in the holes
//! between neighbouring devices on the VM's MMIO bus: each must be a data
//! abort at that address, and never reach a neighbour (the scratch
//! register keeps the value written before, the devices still answer
//! inside their ranges).

use guest_rt::exceptions::{ec, expect_exception, taken};
use guest_rt::{mmio_read, mmio_write, println};

const GICD: u64 = 0x0800_0000;
const GICD_SIZE: u64 = 0x1_0000;
const GICR: u64 = 0x080A_0000;
/// One vCPU: one 128 KiB redistributor frame.
const GICR_SIZE: u64 = 0x2_0000;
const UART: u64 = 0x0900_0000;
const VIRTIO: u64 = 0x0A00_0000;
const VIRTIO_SIZE: u64 = 0x200;
const SCRATCH: u64 = 0x0B00_0000;
const SCRATCH_SIZE: u64 = 0x1000;
const SCRATCH_VALUE: u64 = 0x0123_4567_89ab_cdef;
/// Written into the holes: must land nowhere.
const PROBE: u32 = 0x5afe_c0de;
/// Exception class of a data abort taken at the same EL (EL1).
const EC_DATA_ABORT_SAME_EL: u64 = 0x25;

/// The holes: the last word before a device and the first after it.
const HOLES: [u64; 10] = [
    GICD - 4,
    GICD + GICD_SIZE,
    GICR - 4,
    GICR + GICR_SIZE,
    UART - 4,
    UART + 0x1000,
    VIRTIO - 4,
    VIRTIO + VIRTIO_SIZE,
    SCRATCH - 4,
    SCRATCH + SCRATCH_SIZE,
];

/// Whether an access aborted with a data abort reporting `addr`.
fn aborted_at(addr: u64) -> bool {
    let t = taken();
    t.count == 1 && ec(t.esr) == EC_DATA_ABORT_SAME_EL && t.far == addr
}

pub fn run(_dtb: u64) {
    mmio_write::<u64>(SCRATCH as usize + 8, SCRATCH_VALUE);
    let (mut reads_aborted, mut writes_aborted) = (0, 0);
    for addr in HOLES {
        expect_exception();
        let _ = mmio_read::<u32>(addr as usize);
        if aborted_at(addr) {
            reads_aborted += 1;
        } else {
            println!("bus-holes: FAIL read at {addr:#x} did not abort there");
        }
        expect_exception();
        mmio_write::<u32>(addr as usize, PROBE);
        if aborted_at(addr) {
            writes_aborted += 1;
        } else {
            println!("bus-holes: FAIL write at {addr:#x} did not abort there");
        }
    }
    println!(
        "bus-holes: {} holes, reads aborted={reads_aborted} writes aborted={writes_aborted}",
        HOLES.len()
    );
    // The neighbours: still there, unchanged by the writes next to them.
    let scratch = mmio_read::<u64>(SCRATCH as usize + 8);
    let scratch_id = mmio_read::<u32>(SCRATCH as usize);
    let virtio_magic = mmio_read::<u32>(VIRTIO as usize);
    let gicd_iidr = mmio_read::<u32>(GICD as usize + 8);
    let gicr_typer = mmio_read::<u64>(GICR as usize + 8);
    println!(
        "bus-holes: scratch={scratch:#x} scratch-id={scratch_id:#x} virtio-magic={virtio_magic:#x} gicd-iidr={gicd_iidr:#x} gicr-last={}",
        (gicr_typer >> 4) & 1
    );
    if scratch == SCRATCH_VALUE && scratch_id == 0x5443_4831 && virtio_magic == 0x7472_6976 {
        println!("bus-holes: PASS");
    } else {
        println!("bus-holes: FAIL a neighbour changed or stopped answering");
    }
}
