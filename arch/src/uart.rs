//! The physical PL011, which the hypervisor keeps for itself (guests get an
//! emulated one): the transmit path of the console, and the receive path
//! that feeds the guests' emulated UARTs.
//!
//! Transmission never waits without bound: the hypervisor writes with
//! interrupts masked, often holding the console lock, so a UART that stops
//! draining (transmitter disabled, flow control, broken device) must not
//! stop it. A byte waits at most [`TX_WAIT_US`] for room in the FIFO; once
//! one has timed out the UART counts as stalled and later bytes are dropped
//! at once until the FIFO has room again. Dropped bytes are counted.

use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x00;
const FR: usize = 0x18;
const LCR_H: usize = 0x2c;
const CR: usize = 0x30;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const LCR_H_FEN_8BIT: u32 = (1 << 4) | (3 << 5);
const CR_UARTEN_TXE_RXE: u32 = 1 | (1 << 8) | (1 << 9);
const INT_RX_RT: u32 = (1 << 4) | (1 << 6);

/// Longest wait for room in the transmit FIFO: about ten character times
/// at 115200 baud, so a working UART never drops a byte.
pub const TX_WAIT_US: u64 = 1000;

/// A PL011 at a fixed (identity-mapped) address.
pub struct Pl011 {
    base: usize,
    stalled: bool,
    /// Bytes dropped because the transmit FIFO did not drain in time.
    pub dropped: u64,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the identity-mapped address of a PL011.
    pub const unsafe fn new(base: usize) -> Self {
        Pl011 {
            base,
            stalled: false,
            dropped: 0,
        }
    }

    fn read(&self, reg: usize) -> u32 {
        // SAFETY: base is a PL011 (constructor contract); reg is one of its registers.
        unsafe { read_volatile((self.base + reg) as *const u32) }
    }

    fn write(&self, reg: usize, value: u32) {
        // SAFETY: as read.
        unsafe { write_volatile((self.base + reg) as *mut u32, value) }
    }

    /// Take the UART: transmitter and receiver on, FIFOs on, 8 data bits,
    /// receive interrupts (data and timeout) unmasked.
    pub fn init(&self) {
        self.write(LCR_H, LCR_H_FEN_8BIT);
        self.write(CR, CR_UARTEN_TXE_RXE);
        self.write(ICR, 0x7ff);
        self.write(IMSC, INT_RX_RT);
    }

    /// Send one byte; `false` if it was dropped (the FIFO stayed full).
    pub fn put_byte(&mut self, byte: u8) -> bool {
        if self.read(FR) & FR_TXFF != 0 && (self.stalled || !self.wait_for_room()) {
            self.stalled = true;
            self.dropped += 1;
            return false;
        }
        self.stalled = false;
        self.write(DR, u32::from(byte));
        true
    }

    /// Wait up to TX_WAIT_US for room in the transmit FIFO.
    fn wait_for_room(&self) -> bool {
        let frequency = read_sysreg!("CNTFRQ_EL0").max(1_000_000);
        let start = read_sysreg!("CNTPCT_EL0");
        let limit = frequency / 1_000_000 * TX_WAIT_US;
        while self.read(FR) & FR_TXFF != 0 {
            if read_sysreg!("CNTPCT_EL0").wrapping_sub(start) > limit {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    /// Send bytes as they are (no line-ending translation).
    pub fn put_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.put_byte(b);
        }
    }

    /// Unmask (or mask) the receive interrupts.
    pub fn set_rx_interrupts(&self, on: bool) {
        self.write(IMSC, if on { INT_RX_RT } else { 0 });
    }

    /// One received byte, if the receive FIFO holds any.
    pub fn read_byte(&self) -> Option<u8> {
        (self.read(FR) & FR_RXFE == 0).then(|| self.read(DR) as u8)
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
