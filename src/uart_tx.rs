//! How long the hypervisor waits for a UART's transmit FIFO: never without
//! bound.
//!
//! The hypervisor writes its console with interrupts masked, holding the
//! console lock, so a transmitter that stops draining (disabled, held by
//! flow control, broken) must not stop it. A byte waits at most `limit`
//! ticks for room; once one has timed out the UART counts as stalled and
//! later bytes are dropped at once, without waiting, until the FIFO has
//! room again. Every dropped byte is counted. The glue (`hv-arch`'s PL011)
//! supplies the registers and the clock.

/// The transmit side of a UART, and a clock.
pub trait TxDevice {
    /// The transmit FIFO has no room.
    fn tx_full(&mut self) -> bool;
    /// Put a byte in the transmit FIFO (only called when it has room).
    fn tx_write(&mut self, byte: u8);
    /// A free-running tick counter.
    fn now(&mut self) -> u64;
}

/// Bounded-wait transmitter state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundedTx {
    limit: u64,
    stalled: bool,
    /// Bytes dropped because the FIFO did not drain in time.
    pub dropped: u64,
}

impl BoundedTx {
    /// Wait at most `limit` ticks per byte.
    pub const fn new(limit: u64) -> Self {
        BoundedTx {
            limit,
            stalled: false,
            dropped: 0,
        }
    }

    /// Send `byte`, or drop it (returning `false`) if the FIFO stays full.
    pub fn put(&mut self, device: &mut impl TxDevice, byte: u8) -> bool {
        if device.tx_full() && (self.stalled || !self.wait_for_room(device)) {
            self.stalled = true;
            self.dropped += 1;
            return false;
        }
        self.stalled = false;
        device.tx_write(byte);
        true
    }

    fn wait_for_room(&self, device: &mut impl TxDevice) -> bool {
        let start = device.now();
        while device.tx_full() {
            if device.now().wrapping_sub(start) > self.limit {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UART whose FIFO drains one byte every `drain_every` ticks (never
    /// if 0); each register read takes one tick.
    struct FakeUart {
        clock: u64,
        fifo: u32,
        depth: u32,
        drain_every: u64,
        sent: Vec<u8>,
        reads: u64,
    }

    impl FakeUart {
        fn new(depth: u32, drain_every: u64) -> Self {
            FakeUart {
                clock: 0,
                fifo: 0,
                depth,
                drain_every,
                sent: Vec::new(),
                reads: 0,
            }
        }
        fn tick(&mut self) {
            self.clock += 1;
            if self.drain_every != 0 && self.clock.is_multiple_of(self.drain_every) {
                self.fifo = self.fifo.saturating_sub(1);
            }
        }
    }

    impl TxDevice for FakeUart {
        fn tx_full(&mut self) -> bool {
            self.tick();
            self.reads += 1;
            self.fifo >= self.depth
        }
        fn tx_write(&mut self, byte: u8) {
            self.fifo += 1;
            self.sent.push(byte);
        }
        fn now(&mut self) -> u64 {
            self.clock
        }
    }

    #[test]
    fn a_draining_uart_gets_every_byte() {
        let (mut tx, mut uart) = (BoundedTx::new(100), FakeUart::new(4, 10));
        for b in 0..200u8 {
            assert!(tx.put(&mut uart, b));
        }
        assert_eq!(uart.sent.len(), 200);
        assert_eq!(tx.dropped, 0);
    }

    #[test]
    fn a_uart_that_never_drains_costs_one_wait_then_nothing() {
        let (mut tx, mut uart) = (BoundedTx::new(100), FakeUart::new(4, 0));
        for b in 0..1000u32 {
            tx.put(&mut uart, b as u8);
        }
        assert_eq!(uart.sent.len(), 4, "the FIFO took what it could hold");
        assert_eq!(tx.dropped, 996);
        // One bounded wait (about `limit` reads), then one read per byte.
        assert!(uart.reads < 1000 + 110, "{} register reads", uart.reads);
    }

    #[test]
    fn a_stalled_uart_that_drains_again_is_used_again() {
        let (mut tx, mut uart) = (BoundedTx::new(10), FakeUart::new(1, 0));
        assert!(tx.put(&mut uart, b'a'));
        assert!(!tx.put(&mut uart, b'b'));
        uart.fifo = 0; // drained at last
        assert!(tx.put(&mut uart, b'c'));
        assert_eq!(uart.sent, b"ac");
        assert_eq!(tx.dropped, 1);
    }
}
