//! The hypervisor console's commands (parsed in `hvcore::hv_console`),
//! carried out on the VMs of this boot. Output lines start with `[hv]`, so
//! no guest can forge them.

use core::sync::atomic::Ordering;

use hvcore::exit_stats::ExitCause;
use hvcore::hv_console::{Command, CommandError, Name};

use super::lifecycle::{self, vms};
use super::logger::print_raw;
use super::vm::Vm;

/// Ctrl-] opened the console.
pub fn opened() {
    let focus = lifecycle::focused().map_or("none", |vm| vm.name.as_str());
    print_raw(format_args!(
        "[hv] console: type help; Ctrl-] or resume returns to VM '{focus}'\n"
    ));
}

/// Ctrl-] closed the console.
pub fn closed() {
    let focus = lifecycle::focused().map_or("none", |vm| vm.name.as_str());
    print_raw(format_args!("[hv] console: input goes to VM '{focus}'\n"));
}

/// Carry out one command line.
pub fn run(command: Result<Command, CommandError>) {
    let command = match command {
        Ok(command) => command,
        Err(CommandError::Empty) => return,
        Err(e) => {
            print_raw(format_args!("[hv] console: {e:?} (type help)\n"));
            return;
        }
    };
    match command {
        Command::Help => print_raw(format_args!(
            "[hv] commands: help, list, focus NAME, stats NAME, stop NAME, start NAME, reboot NAME, resume (or Ctrl-])\n"
        )),
        Command::List => list(),
        Command::Resume => {
            super::console::close_input();
            closed();
        }
        Command::Focus(name) => {
            if let Some(vm) = named(&name) {
                lifecycle::focus(vm);
                print_raw(format_args!(
                    "[hv] console: input will go to VM '{}' (Ctrl-] to return)\n",
                    vm.name
                ));
            }
        }
        Command::Stats(name) => {
            if let Some(vm) = named(&name) {
                stats(vm);
            }
        }
        Command::Stop(name) => {
            let stopped = named(&name).map(|vm| (vm, lifecycle::request_stop(vm, "stop command")));
            if let Some((vm, false)) = stopped {
                print_raw(format_args!("[hv] console: VM '{}' is not running\n", vm.name));
            }
        }
        Command::Start(name) => {
            if let Some(vm) = named(&name) {
                if !lifecycle::start(vm) {
                    print_raw(format_args!("[hv] console: VM '{}' is running\n", vm.name));
                }
            }
        }
        Command::Reboot(name) => {
            if let Some(vm) = named(&name) {
                lifecycle::request_restart(vm, "reboot command");
            }
        }
    }
}

/// The VM a command names, or a line saying there is none.
fn named(name: &Name) -> Option<&'static Vm> {
    let vm = lifecycle::find(name.as_bytes());
    if vm.is_none() {
        let name = core::str::from_utf8(name.as_bytes()).unwrap_or("?");
        print_raw(format_args!(
            "[hv] console: no VM named '{name}' (see list)\n"
        ));
    }
    vm
}

fn list() {
    for vm in vms() {
        let state = if vm.stopped.load(Ordering::Acquire) {
            "stopped"
        } else {
            "running"
        };
        let exits: u64 = lifecycle::vm_exit_counts(vm).iter().sum();
        print_raw(format_args!(
            "[hv] vm{} {} {state} vcpus={} cpus={:#x} memory={}M exits={exits}\n",
            vm.vmid,
            vm.name,
            vm.num_vcpus,
            vm.cpus,
            vm.ram.size >> 20
        ));
    }
}

fn stats(vm: &Vm) {
    let counts = lifecycle::vm_exit_counts(vm);
    let mut line = alloc::string::String::new();
    for (cause, n) in ExitCause::ALL.iter().zip(counts) {
        line.push_str(&alloc::format!(" {}={n}", cause.name()));
    }
    print_raw(format_args!(
        "[hv] vm{} {} exits:{line} total={}\n",
        vm.vmid,
        vm.name,
        counts.iter().sum::<u64>()
    ));
    super::print_device_counters(vm);
}
