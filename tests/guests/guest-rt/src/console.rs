//! Output on the PL011 the hypervisor assigns to the guest.

use core::fmt::Write;

const PL011_DR: usize = 0x0900_0000;
const PL011_FR: usize = 0x0900_0018;
const TXFF: u32 = 1 << 5;

/// The guest console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

fn put(b: u8) {
    while crate::mmio_read::<u32>(PL011_FR) & TXFF != 0 {}
    crate::mmio_write::<u32>(PL011_DR, u32::from(b));
}

#[doc(hidden)]
pub fn print_args(args: core::fmt::Arguments) {
    let _ = Console.write_fmt(args);
}

/// Print to the guest console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_args(format_args!($($arg)*)) };
}

/// Print a line to the guest console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print_args(format_args!("{}\n", format_args!($($arg)*))) };
}
