//! The physical console: the hypervisor's PL011, shared by its log and the
//! guests' emulated UARTs through the core's [`ConsoleMux`] (whole lines,
//! no forged hypervisor lines), with bounded transmit waits.

use core::fmt::Write;

use super::lock::Mutex;
use hv_arch::read_sysreg;
use hv_arch::uart::Pl011 as PhysicalUart;
use hvcore::console::{ConsoleMux, Sink};
use hvcore::hv_console::{ConsoleInput, InputAction};
use hvcore::uart_tx::{BoundedTx, TxDevice};

pub const PL011_BASE: usize = 0x0900_0000;
/// Guest VM ids the console has line buffers for (VM ids are 1..).
const VM_SLOTS: usize = hvcore::vm_spec::MAX_VMS + 1;

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
    /// Where typed bytes go: the focused VM, or the hypervisor console.
    input: ConsoleInput,
    /// The physical receive interrupt is masked because a guest's receive
    /// FIFO was full; unmasked when that guest reads.
    rx_held: bool,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: Uart::new(),
    mux: ConsoleMux::new(),
    input: ConsoleInput::new(),
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

/// Start every console line of VM `vmid` with `(name) ` (several VMs).
pub fn set_tag(vmid: u16, name: &str) {
    CONSOLE
        .lock()
        .mux
        .set_tag(usize::from(vmid), name.as_bytes());
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

/// The physical UART interrupted: hand each received byte to the focused
/// VM's emulated UART while it has room, or to the hypervisor console
/// (Ctrl-] switches, see `hvcore::hv_console`), and run what is typed there.
#[cold]
#[inline(never)]
pub fn receive_input() {
    loop {
        let focused = super::lifecycle::focused();
        let action = {
            let mut console = CONSOLE.lock();
            if !console.input.is_open() {
                if let Some(emulated) = focused.and_then(|vm| vm.uart.as_ref()) {
                    if !emulated.lock().can_receive() {
                        // Leave the rest in the hardware FIFO until the guest reads.
                        if !console.rx_held {
                            console.rx_held = true;
                            console.uart.device.set_rx_interrupts(false);
                        }
                        return;
                    }
                }
            }
            let Some(byte) = console.uart.device.read_byte() else {
                return;
            };
            let action = console.input.feed(byte);
            match action {
                InputAction::Echo(b) => console.uart.write(&[b]),
                InputAction::Erase => console.uart.write(b"\x08 \x08"),
                InputAction::Entered | InputAction::Opened => console.uart.write(b"\r\n"),
                _ => {}
            }
            let command = (action == InputAction::Entered).then(|| console.input.entered_command());
            (action, command)
        };
        let (action, command) = action;
        match action {
            InputAction::ToGuest(byte) => {
                // A VM without a console, or none running: the byte is dropped.
                let Some(vm) = focused else { continue };
                let Some(emulated) = &vm.uart else { continue };
                let level = emulated.lock().receive(byte);
                if let Some(level) = level {
                    vm.set_uart_level(0, level);
                }
            }
            InputAction::Opened => super::management::opened(),
            InputAction::Closed => super::management::closed(),
            InputAction::Entered => {
                if let Some(command) = command {
                    super::management::run(command);
                }
            }
            InputAction::Echo(_) | InputAction::Erase | InputAction::Ignore => {}
        }
    }
}

/// Leave the hypervisor console: input goes to the focused VM again.
pub fn close_input() {
    CONSOLE.lock().input.close();
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
