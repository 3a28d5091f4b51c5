//! The physical console: the hypervisor's PL011, shared by its log and the
//! guests' emulated UARTs through the core's [`ConsoleMux`] (whole lines,
//! no forged hypervisor lines), with bounded transmit waits.

use core::fmt::Write;

use super::lock::Mutex;
use hv_arch::read_sysreg;
use hv_arch::uart::Pl011 as PhysicalUart;
use hvcore::console::{ConsoleMux, Sink};
use hvcore::uart_tx::{BoundedTx, TxDevice};

use super::vm::Vm;

pub const PL011_BASE: usize = 0x0900_0000;
/// Guest VM ids the console has line buffers for (VM ids are 1..).
const VM_SLOTS: usize = 4;

/// The physical UART with bounded transmit waits.
struct Uart {
    device: PhysicalUart,
    tx: BoundedTx,
}

/// The registers and the clock the core's bounded transmitter needs.
struct TxRegisters<'a>(&'a PhysicalUart);

impl TxDevice for TxRegisters<'_> {
    fn tx_full(&mut self) -> bool {
        self.0.tx_full()
    }
    fn tx_write(&mut self, byte: u8) {
        self.0.write_data(byte);
    }
    fn now(&mut self) -> u64 {
        read_sysreg!("CNTPCT_EL0")
    }
}

impl Uart {
    const fn new() -> Self {
        Uart {
            // SAFETY: QEMU virt's PL011, identity-mapped as device memory.
            device: unsafe { PhysicalUart::new(PL011_BASE) },
            tx: BoundedTx::new(TX_WAIT_TICKS_QEMU),
        }
    }
}

impl Sink for Uart {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.tx.put(&mut TxRegisters(&self.device), b);
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                Sink::write(self, b"\r");
            }
            Sink::write(self, &[b]);
        }
        Ok(())
    }
}

/// Longest wait for room in the transmit FIFO, per byte: 1 ms, about ten
/// character times at 115200 baud, so a working UART never drops a byte.
const TX_WAIT_MICROSECONDS: u64 = 1000;
/// The same at QEMU virt's 62.5 MHz counter, until `take_uart` reads the frequency.
const TX_WAIT_TICKS_QEMU: u64 = 62_500;

struct Console {
    uart: Uart,
    mux: ConsoleMux<VM_SLOTS>,
    /// The physical receive interrupt is masked because a guest's receive
    /// FIFO was full; unmasked when that guest reads.
    rx_held: bool,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: Uart::new(),
    mux: ConsoleMux::new(),
    rx_held: false,
});

/// Write one hypervisor line (`args` ends with a line feed): it starts at
/// column 0, after any buffered guest output.
pub fn hypervisor_line(args: core::fmt::Arguments) {
    let mut console = CONSOLE.lock();
    let Console { uart, mux, .. } = &mut *console;
    mux.begin_hypervisor_line(uart);
    let _ = uart.write_fmt(args);
}

/// Take the physical UART (transmitter, receiver, receive interrupts).
pub fn take_uart() {
    let mut console = CONSOLE.lock();
    console.uart.device.init();
    let ticks_per_microsecond = (read_sysreg!("CNTFRQ_EL0") / 1_000_000).max(1);
    console.uart.tx = BoundedTx::new(ticks_per_microsecond * TX_WAIT_MICROSECONDS);
}

/// Guest `vmid` transmitted `byte` on its emulated UART.
#[inline]
pub fn guest_byte(vmid: u16, byte: u8) {
    let mut console = CONSOLE.lock();
    let Console { uart, mux, .. } = &mut *console;
    mux.guest_byte(usize::from(vmid), byte, uart);
}

/// Guest `vmid` went idle: write its unfinished line.
pub fn flush_guest(vmid: u16) {
    let mut console = CONSOLE.lock();
    let Console { uart, mux, .. } = &mut *console;
    mux.flush_guest(usize::from(vmid), uart);
}

/// The physical UART interrupted: move received bytes into `vm`'s emulated
/// UART while it has room. Returns the emulated interrupt's new level if it
/// changed.
pub fn receive_into(vm: &Vm) -> Option<bool> {
    let Some(emulated) = &vm.uart else {
        return None;
    };
    let mut console = CONSOLE.lock();
    let mut change = None;
    let mut emulated = emulated.lock();
    while emulated.can_receive() {
        let Some(byte) = console.uart.device.read_byte() else {
            break;
        };
        if let Some(level) = emulated.receive(byte) {
            change = Some(level);
        }
    }
    if !emulated.can_receive() && !console.rx_held {
        // Leave the rest in the hardware FIFO until the guest reads.
        console.rx_held = true;
        console.uart.device.set_rx_interrupts(false);
    }
    change
}

/// A guest read from its receive FIFO: let more input in if it was held.
#[inline]
pub fn guest_read_input() {
    let mut console = CONSOLE.lock();
    if console.rx_held {
        console.rx_held = false;
        console.uart.device.set_rx_interrupts(true);
    }
}

/// Bytes the physical UART dropped, and guest lines escaped.
pub fn statistics() -> (u64, u64) {
    let console = CONSOLE.lock();
    (console.uart.tx.dropped, console.mux.escaped)
}

/// Print from the panic handler: never waits for the lock, which the
/// panicking CPU may itself hold.
pub fn print_panic(args: core::fmt::Arguments) {
    // The same PL011 as above, bypassing the lock: a panic may interleave.
    let mut uart = Uart::new();
    let _ = uart.write_fmt(args);
}
