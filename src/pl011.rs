//! An emulated Arm PL011 UART (r1p4, as QEMU virt's), enough for Linux's
//! amba-pl011 driver and simple polling guests.
//!
//! The hypervisor keeps the physical PL011 for itself, so a guest can
//! neither disable the transmitter under the hypervisor's log nor write
//! text that passes for the hypervisor's (see [`crate::console`]). The
//! guest gets this model at the same address: transmitted bytes go to the
//! console multiplexer at once (the transmit FIFO is always empty, never
//! busy), received bytes come from the physical UART's receive interrupt,
//! and the interrupt output is a level the glue drives on the VM's SPI.
//!
//! Registers: DR, RSR/ECR, FR, ILPR, IBRD, FBRD, LCR_H, CR, IFLS, IMSC,
//! RIS, MIS, ICR, DMACR, and the PrimeCell identification registers at
//! 0xFE0-0xFFC (the AMBA bus reads them to find the driver). Accesses of
//! 1, 2 or 4 bytes are accepted; 8-byte accesses are refused. Other offsets
//! in the page read as zero and ignore writes, like reserved registers.

use crate::mmio::MmioOutcome;

/// Size of the register page.
pub const PL011_SIZE: u64 = 0x1000;
/// Receive FIFO depth. Deeper than the hardware's 16 bytes, so a burst of
/// typed input fits; drivers read until the flag register says empty.
pub const RX_FIFO: usize = 64;

const DR: u64 = 0x000;
const FR: u64 = 0x018;
const ILPR: u64 = 0x020;
const IBRD: u64 = 0x024;
const FBRD: u64 = 0x028;
const LCR_H: u64 = 0x02c;
const CR: u64 = 0x030;
const IFLS: u64 = 0x034;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;
const DMACR: u64 = 0x048;
const ID_BASE: u64 = 0xfe0;
/// PeriphID0-3 then CellID0-3: part 0x011, designer Arm, revision 1; PrimeCell.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

pub const FR_RXFE: u32 = 1 << 4;
pub const FR_TXFF: u32 = 1 << 5;
pub const FR_RXFF: u32 = 1 << 6;
pub const FR_TXFE: u32 = 1 << 7;
pub const INT_RX: u32 = 1 << 4;
pub const INT_TX: u32 = 1 << 5;
pub const INT_RT: u32 = 1 << 6;
const INT_MASK: u32 = 0x7ff;

/// What an access asks the glue to do besides answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pl011Effects {
    /// A byte the guest transmitted.
    pub tx: Option<u8>,
    /// The interrupt line's new level, when it changed.
    pub irq: Option<bool>,
}

/// One emulated PL011.
#[derive(Debug, Clone)]
pub struct Pl011 {
    rx: [u8; RX_FIFO],
    rx_head: usize,
    rx_len: usize,
    /// Raw interrupt status of the sources this model latches (TX; the
    /// receive sources follow the FIFO).
    tx_ris: bool,
    imsc: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    dmacr: u32,
    line: bool,
    /// Received bytes dropped because the FIFO was full.
    pub rx_overruns: u64,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// The UART in its reset state.
    pub const fn new() -> Self {
        Pl011 {
            rx: [0; RX_FIFO],
            rx_head: 0,
            rx_len: 0,
            tx_ris: false,
            imsc: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: 0x300,
            ifls: 0x12,
            dmacr: 0,
            line: false,
            rx_overruns: 0,
        }
    }

    /// Raw interrupt status: receive and receive-timeout while the FIFO
    /// holds data (so the driver is called until it has read everything),
    /// transmit latched on each write until cleared.
    pub fn ris(&self) -> u32 {
        let rx = if self.rx_len > 0 { INT_RX | INT_RT } else { 0 };
        rx | if self.tx_ris { INT_TX } else { 0 }
    }

    /// The interrupt line: any unmasked raw status.
    pub fn line(&self) -> bool {
        self.ris() & self.imsc != 0
    }

    fn flag_register(&self) -> u32 {
        let mut fr = FR_TXFE;
        if self.rx_len == 0 {
            fr |= FR_RXFE;
        }
        if self.rx_len == RX_FIFO {
            fr |= FR_RXFF;
        }
        fr
    }

    /// A byte arrived on the physical UART for this guest. Returns the new
    /// interrupt level if it changed.
    pub fn receive(&mut self, byte: u8) -> Option<bool> {
        if self.rx_len == RX_FIFO {
            self.rx_overruns += 1;
        } else {
            self.rx[(self.rx_head + self.rx_len) % RX_FIFO] = byte;
            self.rx_len += 1;
        }
        self.line_change()
    }

    /// Whether the receive FIFO has room (the glue stops reading the
    /// physical UART when it has none, leaving bytes in the hardware FIFO).
    pub fn can_receive(&self) -> bool {
        self.rx_len < RX_FIFO
    }

    fn line_change(&mut self) -> Option<bool> {
        let now = self.line();
        (now != self.line).then(|| {
            self.line = now;
            now
        })
    }

    fn read_register(&mut self, reg: u64) -> u32 {
        match reg {
            DR => {
                if self.rx_len == 0 {
                    return 0;
                }
                let byte = self.rx[self.rx_head];
                self.rx_head = (self.rx_head + 1) % RX_FIFO;
                self.rx_len -= 1;
                u32::from(byte)
            }
            FR => self.flag_register(),
            ILPR => self.ilpr,
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.ris(),
            MIS => self.ris() & self.imsc,
            DMACR => self.dmacr,
            ID_BASE..=0xffc => u32::from(ID_BYTES[((reg - ID_BASE) / 4) as usize]),
            // RSR (no receive errors are ever recorded), ICR (write-only), reserved.
            _ => 0,
        }
    }

    fn write_register(&mut self, reg: u64, value: u32, effects: &mut Pl011Effects) {
        match reg {
            DR => {
                effects.tx = Some(value as u8);
                // Sent at once: the FIFO is at once below any trigger level.
                self.tx_ris = true;
            }
            ILPR => self.ilpr = value & 0xff,
            IBRD => self.ibrd = value & 0xffff,
            FBRD => self.fbrd = value & 0x3f,
            LCR_H => self.lcr_h = value & 0xff,
            CR => self.cr = value & 0xff87,
            IFLS => self.ifls = value & 0x3f,
            IMSC => self.imsc = value & INT_MASK,
            // Receive sources follow the FIFO; clearing them has no effect
            // while it holds data (the driver reads it empty).
            ICR if value & INT_TX != 0 => self.tx_ris = false,
            DMACR => self.dmacr = value & 0x7,
            // RSR/ECR (clears errors: there are none), read-only and reserved registers.
            _ => {}
        }
    }

    /// One guest access at `offset` in the register page.
    pub fn access(
        &mut self,
        offset: u64,
        size: u8,
        write: bool,
        value: u64,
    ) -> (MmioOutcome, Pl011Effects) {
        let mut effects = Pl011Effects::default();
        if !matches!(size, 1 | 2 | 4)
            || !offset.is_multiple_of(u64::from(size))
            || offset >= PL011_SIZE
        {
            return (MmioOutcome::Abort, effects);
        }
        let reg = offset & !3;
        let shift = (offset & 3) * 8;
        let outcome = if write {
            // Registers are at most 16 bits wide: a write to their upper
            // half (or upper bytes) changes nothing.
            if shift == 0 {
                self.write_register(reg, value as u32, &mut effects);
            }
            MmioOutcome::Written
        } else if shift == 0 {
            let mask = if size == 4 {
                u32::MAX
            } else {
                (1u32 << (u32::from(size) * 8)) - 1
            };
            MmioOutcome::Read(u64::from(self.read_register(reg) & mask))
        } else {
            // The upper bytes of a register, without the side effects of DR.
            let full = if reg == DR {
                0
            } else {
                self.read_register(reg)
            };
            MmioOutcome::Read(u64::from(full >> shift) & ((1u64 << (size * 8)) - 1))
        };
        effects.irq = self.line_change();
        (outcome, effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(u: &mut Pl011, offset: u64) -> u32 {
        match u.access(offset, 4, false, 0).0 {
            MmioOutcome::Read(v) => v as u32,
            other => panic!("{other:?}"),
        }
    }

    fn write(u: &mut Pl011, offset: u64, value: u32) -> Pl011Effects {
        let (outcome, effects) = u.access(offset, 4, true, u64::from(value));
        assert_eq!(outcome, MmioOutcome::Written);
        effects
    }

    #[test]
    fn primecell_id_is_what_linux_probes() {
        let mut u = Pl011::new();
        let id: Vec<u32> = (0..8).map(|i| read(&mut u, 0xfe0 + 4 * i)).collect();
        assert_eq!(id, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        // AMBA: periphid = bytes 0..3 little-endian, cellid = 0xb105f00d.
        let cell = id[4] | id[5] << 8 | id[6] << 16 | id[7] << 24;
        assert_eq!(cell, 0xb105_f00d);
    }

    #[test]
    fn transmit_goes_out_and_the_fifo_is_never_full() {
        let mut u = Pl011::new();
        assert_eq!(read(&mut u, FR) & (FR_TXFF | FR_TXFE), FR_TXFE);
        assert_eq!(write(&mut u, DR, 0x141).tx, Some(0x41));
        assert_eq!(read(&mut u, FR) & FR_TXFF, 0);
        // 16-bit accesses, as Linux's driver makes by default.
        let (_, e) = u.access(DR, 2, true, 0x42);
        assert_eq!(e.tx, Some(0x42));
    }

    #[test]
    fn receive_fifo_and_interrupt_level() {
        let mut u = Pl011::new();
        assert_eq!(read(&mut u, FR) & FR_RXFE, FR_RXFE);
        // Masked: status raw only, line low.
        assert_eq!(u.receive(b'a'), None);
        assert_eq!(read(&mut u, RIS) & (INT_RX | INT_RT), INT_RX | INT_RT);
        assert_eq!(read(&mut u, MIS), 0);
        // Unmasking raises the line.
        assert_eq!(write(&mut u, IMSC, INT_RX | INT_RT).irq, Some(true));
        assert_eq!(u.receive(b'b'), None);
        assert_eq!(read(&mut u, DR), u32::from(b'a'));
        let (outcome, effects) = u.access(DR, 4, false, 0);
        assert_eq!(outcome, MmioOutcome::Read(u64::from(b'b')));
        assert_eq!(effects.irq, Some(false), "empty FIFO lowers the line");
        assert_eq!(read(&mut u, FR) & FR_RXFE, FR_RXFE);
    }

    #[test]
    fn receive_overrun_is_counted_not_stored() {
        let mut u = Pl011::new();
        for i in 0..RX_FIFO + 3 {
            u.receive(i as u8);
        }
        assert!(!u.can_receive());
        assert_eq!(read(&mut u, FR) & FR_RXFF, FR_RXFF);
        assert_eq!(u.rx_overruns, 3);
        for i in 0..RX_FIFO {
            assert_eq!(read(&mut u, DR), i as u32);
        }
        assert_eq!(read(&mut u, DR), 0);
    }

    #[test]
    fn transmit_interrupt_latches_until_cleared() {
        let mut u = Pl011::new();
        write(&mut u, IMSC, INT_TX);
        assert_eq!(write(&mut u, DR, b'x'.into()).irq, Some(true));
        assert_eq!(read(&mut u, MIS), INT_TX);
        assert_eq!(write(&mut u, ICR, INT_TX).irq, Some(false));
        assert_eq!(read(&mut u, RIS), 0);
    }

    #[test]
    fn configuration_registers_keep_their_width() {
        let mut u = Pl011::new();
        assert_eq!(read(&mut u, CR), 0x300);
        assert_eq!(read(&mut u, IFLS), 0x12);
        for (reg, mask) in [
            (IBRD, 0xffff),
            (FBRD, 0x3f),
            (LCR_H, 0xff),
            (CR, 0xff87),
            (IFLS, 0x3f),
            (IMSC, 0x7ff),
            (DMACR, 0x7),
            (ILPR, 0xff),
        ] {
            write(&mut u, reg, u32::MAX);
            assert_eq!(read(&mut u, reg), mask, "register {reg:#x}");
        }
        // Read-only registers ignore writes.
        write(&mut u, FR, 0);
        assert_eq!(read(&mut u, FR) & FR_TXFE, FR_TXFE);
    }

    #[test]
    fn bad_widths_and_offsets_abort() {
        let mut u = Pl011::new();
        assert_eq!(u.access(DR, 8, false, 0).0, MmioOutcome::Abort);
        assert_eq!(u.access(0x2, 4, false, 0).0, MmioOutcome::Abort);
        assert_eq!(u.access(PL011_SIZE, 1, false, 0).0, MmioOutcome::Abort);
        // Bytes of a register read alone.
        assert_eq!(u.access(CR + 1, 1, false, 0).0, MmioOutcome::Read(0x3));
        assert_eq!(u.access(0x800, 4, false, 0).0, MmioOutcome::Read(0));
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// No access sequence panics the model; reads fit their width; the
        /// FIFO never holds more than its depth; the line is exactly
        /// "some unmasked status", and every change of it is reported.
        #[unwind(5)]
        fn accesses_are_total_and_the_line_is_reported(src) {
            let mut u = Pl011::new();
            let mut reported = false;
            for _ in 0..4 {
                if src.any::<bool>() {
                    if let Some(level) = u.receive(src.any()) {
                        reported = level;
                    }
                } else {
                    let offset = if src.any::<bool>() { src.below(0x50) } else { 0xfe0 + src.below(0x20) };
                    let size = [1u8, 2, 4, 8][src.below(4) as usize];
                    let write: bool = src.any();
                    let (outcome, effects) = u.access(offset, size, write, src.any());
                    if let MmioOutcome::Read(v) = outcome {
                        assert!(size < 8 && v < 1u64 << (size * 8));
                    }
                    cover!(effects.tx.is_some(), "a byte is transmitted");
                    if let Some(level) = effects.irq {
                        reported = level;
                    }
                }
                assert!(u.rx_len <= RX_FIFO);
                assert_eq!(u.line(), u.ris() & u.imsc != 0);
                assert_eq!(reported, u.line());
                cover!(u.line(), "the interrupt line is high");
            }
        }
    }
}
