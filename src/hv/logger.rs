//! `log` backend on the console: each record is one hypervisor line,
//! starting with `[hv cpuN]`, written whole (see `console`).

use log::{LevelFilter, Metadata, Record};

use super::console;

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let cpu = hv_arch::cpu::current_index();
        console::hypervisor_line(format_args!(
            "[hv cpu{cpu}] {:5} {}\n",
            record.level(),
            record.args()
        ));
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

/// Print a hypervisor line without the log prefix (statistics), bypassing
/// the level filter; it must start with `[hv` and end with a line feed.
pub fn print_raw(args: core::fmt::Arguments) {
    console::hypervisor_line(args);
}

/// Print from the panic handler.
pub fn print_panic(args: core::fmt::Arguments) {
    console::print_panic(args);
}
