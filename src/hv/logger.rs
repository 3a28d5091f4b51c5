//! `log` backend on the PL011, one line at a time under a lock so lines from
//! different CPUs never interleave.

use core::fmt::Write;

use hv_arch::uart::Pl011;
use log::{LevelFilter, Metadata, Record};
use spin::Mutex;

const PL011_BASE: usize = 0x0900_0000;

static UART: Mutex<Pl011> = Mutex::new(
    // SAFETY: QEMU virt's PL011, identity-mapped as device memory.
    unsafe { Pl011::new(PL011_BASE) },
);

struct UartLogger;

static LOGGER: UartLogger = UartLogger;

impl log::Log for UartLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let cpu = hv_arch::cpu::current_index();
        let mut uart = UART.lock();
        let _ = writeln!(uart, "[hv cpu{cpu}] {:5} {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

/// Install the logger at `level`.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Change the log level (from the command line, once it has been parsed).
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// Print without the log prefix (panics, counters), bypassing the level filter.
pub fn print_raw(args: core::fmt::Arguments) {
    let mut uart = UART.lock();
    let _ = uart.write_fmt(args);
}

/// Print from the panic handler: never waits for the lock, which the
/// panicking CPU may itself hold.
pub fn print_panic(args: core::fmt::Arguments) {
    // SAFETY: same PL011 as above; a panic is allowed to interleave.
    let mut uart = unsafe { Pl011::new(PL011_BASE) };
    let _ = uart.write_fmt(args);
}
