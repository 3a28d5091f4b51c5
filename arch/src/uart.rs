//! The physical PL011, which the hypervisor keeps for itself (guests get an
//! emulated one): register access for the console's transmit path (whose
//! bounded waits are the core's `uart_tx`) and the receive path that feeds
//! the guests' emulated UARTs.

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

    /// The transmit FIFO is full.
    #[inline]
    pub fn tx_full(&self) -> bool {
        self.read(FR) & FR_TXFF != 0
    }

    /// Put a byte in the transmit FIFO (the caller saw room).
    #[inline]
    pub fn write_data(&self, byte: u8) {
        self.write(DR, u32::from(byte));
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
