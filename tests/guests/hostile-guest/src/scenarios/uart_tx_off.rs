//! The guest turns its UART's transmitter off, then writes a lot: long
//! lines, a line far longer than any buffer, and output without a line end
//! while it makes the hypervisor log. The hypervisor must keep running and
//! its lines must come out whole, at the start of a line.

use guest_rt::exceptions::expect_exception;
use guest_rt::{mmio_read, mmio_write, print, println};

const UART: usize = 0x0900_0000;
const CR: usize = UART + 0x30;
const LCR_H: usize = UART + 0x2c;
const IMSC: usize = UART + 0x38;
const UNMAPPED_IPA: usize = 0x2000_0000;

pub fn run(_dtb: u64) {
    // Transmitter, receiver and UART off; FIFOs off; every interrupt masked.
    mmio_write::<u32>(CR, 0);
    mmio_write::<u32>(LCR_H, 0);
    mmio_write::<u32>(IMSC, 0);
    println!("uart-tx-off: CR now {:#x}", mmio_read::<u32>(CR));
    for i in 0..200 {
        println!("uart-tx-off: line {i:03} {}", "abcdefghij".repeat_str(8));
    }
    for _ in 0..2000 {
        print!("x");
    }
    println!();
    // A line in progress while the hypervisor logs: its line must not land in the middle.
    for i in 0..3 {
        print!("uart-tx-off: partial {i} ... ");
        expect_exception();
        let _ = mmio_read::<u32>(UNMAPPED_IPA);
        println!("continued");
    }
}

trait RepeatStr {
    fn repeat_str(&self, n: usize) -> Repeat<'_>;
}

impl RepeatStr for str {
    fn repeat_str(&self, n: usize) -> Repeat<'_> {
        Repeat(self, n)
    }
}

/// `s` n times, without an allocator.
struct Repeat<'a>(&'a str, usize);

impl core::fmt::Display for Repeat<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for _ in 0..self.1 {
            f.write_str(self.0)?;
        }
        Ok(())
    }
}
