//! PL011 transmit path, enough for the hypervisor's log.
//!
//! The UART may be assigned to a guest at the same time; the hypervisor only
//! ever writes whole lines to the data register, which the guest's driver
//! tolerates (it owns configuration and the receive side).

use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// A PL011 at a fixed (identity-mapped) address.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the identity-mapped address of a PL011.
    pub const unsafe fn new(base: usize) -> Self {
        Pl011 { base }
    }

    /// Send one byte, waiting while the FIFO is full.
    pub fn put_byte(&self, byte: u8) {
        // SAFETY: base is a PL011 (constructor contract).
        unsafe {
            while read_volatile((self.base + FR) as *const u32) & FR_TXFF != 0 {}
            write_volatile((self.base + DR) as *mut u32, u32::from(byte));
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put_byte(b'\r');
            }
            self.put_byte(b);
        }
        Ok(())
    }
}
