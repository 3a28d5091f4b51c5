//! The guest's emulated PL011, at the physical UART's address and with its
//! interrupt. Its state is the VM's (`Vm::uart`): console input reaches it
//! from the physical UART's interrupt as well as from the guest's accesses.

use hvcore::mmio::MmioOutcome;

use super::{VmDevice, Width};
use crate::hv::console;
use crate::hv::vcpu::Vcpu;

pub static EMULATED_PL011: EmulatedPl011 = EmulatedPl011;

pub struct EmulatedPl011;

impl VmDevice for EmulatedPl011 {
    /// Transmitted bytes go to the console, received ones may let more
    /// input in, and the interrupt line follows.
    fn access(
        &self,
        vcpu: &mut Vcpu,
        offset: u64,
        width: Width,
        write: bool,
        value: u64,
    ) -> MmioOutcome {
        let size = width.bytes();
        let vm = vcpu.vm;
        let Some(uart) = &vm.uart else {
            return MmioOutcome::Abort;
        };
        let (outcome, effects) = uart.lock().access(offset, size, write, value);
        if let Some(byte) = effects.tx {
            console::guest_byte(vm.vmid, byte);
        } else if !write && offset < 4 {
            console::guest_read_input();
        }
        if let Some(level) = effects.irq {
            vm.set_uart_level(vcpu.index, level);
        }
        outcome
    }
}
