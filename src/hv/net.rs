//! The virtual switch at run time: frames a VM transmitted go through the
//! core's decision (`hvcore::net_switch`) and are copied into the receive
//! queues of the VMs it names. One switch serves every network; a port is
//! a VM (its index among the VMs), a network a number given per name at
//! boot.

use alloc::vec::Vec;

use hv_arch::read_sysreg;
use hvcore::net_device::Frame;
use hvcore::net_switch::{PortSet, Switch, Verdict, MAX_PORTS};
use spin::Once;

use super::lock::Mutex;
use super::vm::Vm;

/// Learned addresses are forgotten after this many seconds.
const AGE_SECONDS: u64 = 300;
/// Frames a port may flood (broadcast, multicast, unknown unicast) per
/// period; a period in milliseconds.
const FLOOD_PER_PERIOD: u32 = 200;
const PERIOD_MS: u64 = 100;

struct Network {
    switch: Mutex<Switch>,
    /// The VM behind each port.
    ports: Vec<Option<&'static Vm>>,
}

static NETWORK: Once<Network> = Once::new();

/// Plug every VM with a NIC into the switch: port = its index, network =
/// a number per network name.
pub fn init(vms: &[&'static Vm]) {
    let hz = read_sysreg!("CNTFRQ_EL0");
    let mut switch = Switch::new(AGE_SECONDS * hz, FLOOD_PER_PERIOD, PERIOD_MS * hz / 1000);
    let mut names: Vec<&str> = Vec::new();
    let mut ports = alloc::vec![None; MAX_PORTS];
    for (port, &vm) in vms.iter().enumerate().take(MAX_PORTS) {
        let Some((network, mac)) = vm.nic_config() else {
            continue;
        };
        let id = names.iter().position(|n| *n == network).unwrap_or_else(|| {
            names.push(network);
            names.len() - 1
        });
        switch.add_port(port, id as u8, mac);
        ports[port] = Some(vm);
        log::info!(
            "VM '{}': NIC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} on network '{network}' (switch port {port})",
            vm.name,
            mac[0],
            mac[1],
            mac[2],
            mac[3],
            mac[4],
            mac[5]
        );
    }
    NETWORK.call_once(|| Network {
        switch: Mutex::new(switch),
        ports,
    });
}

fn port_of(vm: &Vm) -> Option<usize> {
    let network = NETWORK.get()?;
    network
        .ports
        .iter()
        .position(|p| p.is_some_and(|p| core::ptr::eq(p, vm)))
}

/// Forward the frames `from` transmitted.
pub fn forward(from: &Vm, frames: Vec<Frame>) {
    let (Some(network), Some(port)) = (NETWORK.get(), port_of(from)) else {
        return;
    };
    for frame in frames {
        let verdict = network.switch.lock().forward(
            port,
            &frame.header(),
            frame.len,
            read_sysreg!("CNTPCT_EL0"),
        );
        if let Verdict::Deliver(set) = verdict {
            deliver(network, set, &frame);
        }
    }
}

fn deliver(network: &Network, set: PortSet, frame: &Frame) {
    for (port, vm) in network.ports.iter().enumerate() {
        if set & (1 << port) == 0 {
            continue;
        }
        if let Some(vm) = vm {
            vm.net_receive(frame.data());
        }
    }
}

/// A port's switch counters (for the statistics at power-off).
pub fn port_counters(vm: &Vm) -> Option<hvcore::net_switch::PortCounters> {
    let port = port_of(vm)?;
    NETWORK.get()?.switch.lock().counters(port)
}
