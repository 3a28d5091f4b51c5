//! VMs start together and stop one at a time: a VM's PSCI SYSTEM_OFF (or
//! `stop` on the hypervisor console) stops only that VM's vCPUs and leaves
//! the others running; the machine powers off when the last VM has stopped.
//! Console input goes to the VM with the focus.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use hv_arch::{cpu, gic};
use hvcore::exit_stats::{ExitCause, ExitCounters};
use log::info;
use spin::Once;

use super::vcpu::{self, COUNTERS};
use super::vm::Vm;
use super::KICK_SGI;

static VMS: Once<Vec<&'static Vm>> = Once::new();
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// VMs between leaving RUNNING and printing their "stopped" line.
static REPORTING_STOP: AtomicUsize = AtomicUsize::new(0);
/// Index in [`vms`] of the VM console input goes to.
static FOCUS: AtomicUsize = AtomicUsize::new(0);

/// The VMs of this boot, all about to start.
pub fn register(vms: Vec<&'static Vm>) {
    RUNNING.store(vms.len(), Ordering::Release);
    VMS.call_once(|| vms);
}

/// The VMs of this boot.
pub fn vms() -> &'static [&'static Vm] {
    VMS.get().map_or(&[], |v| v.as_slice())
}

/// The VM named `name`.
pub fn find(name: &[u8]) -> Option<&'static Vm> {
    vms().iter().copied().find(|vm| vm.name.as_bytes() == name)
}

/// The VM with the console focus, if it is running.
pub fn focused() -> Option<&'static Vm> {
    let vm = *vms().get(FOCUS.load(Ordering::Acquire))?;
    (!vm.stopped.load(Ordering::Acquire)).then_some(vm)
}

/// Give `vm` the console focus.
pub fn focus(vm: &Vm) {
    if let Some(index) = vms().iter().position(|v| core::ptr::eq(*v, vm)) {
        FOCUS.store(index, Ordering::Release);
    }
}

/// The first VM still running, if any.
fn first_running() -> Option<&'static Vm> {
    vms()
        .iter()
        .copied()
        .find(|vm| !vm.stopped.load(Ordering::Acquire))
}

/// Send the physical UART's receive interrupt to the first CPU of the
/// first running VM (input must reach a CPU that takes interrupts).
pub fn route_console_input() {
    let Some(vm) = first_running() else {
        return;
    };
    if let Some(irq) = vm.host_uart_irq {
        gic::enable_spi(irq, vm.cpu_of(0) as u64);
    }
}

/// Stop `vm`: mark it, kick its vCPUs on other CPUs (each parks at the
/// exit the kick causes; one on this CPU parks when this exit ends), move
/// console input and focus to a running VM, and power off if it was the
/// last. Returns false if it was already stopped.
pub fn request_stop(vm: &'static Vm, why: &str) -> bool {
    if vm.stopped.swap(true, Ordering::AcqRel) {
        return false;
    }
    // A VM stopping to restart still counts as running: the machine must
    // not power off under it when the others stop meanwhile.
    REPORTING_STOP.fetch_add(1, Ordering::AcqRel);
    let left = if vm.restart_requested.load(Ordering::Acquire) {
        RUNNING.load(Ordering::Acquire)
    } else {
        RUNNING.fetch_sub(1, Ordering::AcqRel).saturating_sub(1)
    };
    info!(
        "VM '{}' stopped ({why}) after {} exits; {left} VM(s) still running",
        vm.name,
        vm_exits(vm)
    );
    REPORTING_STOP.fetch_sub(1, Ordering::AcqRel);
    if left == 0 && !vm.restart_requested.load(Ordering::Acquire) {
        // Another VM that stopped at the same moment on another CPU may
        // not have printed its line yet: let it (a line takes microseconds;
        // bounded all the same).
        for _ in 0..1_000_000 {
            if REPORTING_STOP.load(Ordering::Acquire) == 0 {
                break;
            }
            core::hint::spin_loop();
        }
        super::print_exit_counters(vm);
        hv_arch::psci::system_off();
    }
    let here = cpu::current_index();
    for index in 0..vm.num_vcpus {
        // A time-shared CPU here too: its parked vCPUs of this VM are
        // turned off at the exit the kick causes.
        if vm.cpu_of(index) != here || super::timeshare::is_shared(here) {
            gic::send_sgi(vm.cpu_of(index), KICK_SGI);
        }
    }
    route_console_input();
    if focused().is_none() {
        if let Some(next) = first_running() {
            focus(next);
            info!("console input now goes to VM '{}'", next.name);
        }
    }
    true
}

/// Stop `vm` (if it runs) and start it again from its images once every
/// one of its vCPUs has parked.
pub fn request_restart(vm: &'static Vm, why: &str) {
    if vm.restart_requested.swap(true, Ordering::AcqRel) {
        return; // already restarting
    }
    if !request_stop(vm, why) {
        // It had stopped before (and stopped counting as running).
        RUNNING.fetch_add(1, Ordering::AcqRel);
    }
    restart_if_parked(vm);
}

/// Start the stopped `vm` again (the console's `start`). False if it runs.
pub fn start(vm: &'static Vm) -> bool {
    if !vm.stopped.load(Ordering::Acquire) {
        return false;
    }
    if !vm.restart_requested.swap(true, Ordering::AcqRel) {
        RUNNING.fetch_add(1, Ordering::AcqRel);
    }
    restart_if_parked(vm);
    true
}

/// A vCPU of `vm` parked: if a restart waits for that, do it now. The
/// last vCPU to park runs this, so RAM is never reset under a running one.
pub fn restart_if_parked(vm: &'static Vm) {
    if !vm.stopped.load(Ordering::Acquire) || !vm.all_vcpus_off() {
        return;
    }
    if !vm.restart_requested.swap(false, Ordering::AcqRel) {
        return;
    }
    if vm.kernel_in_place() {
        info!(
            "VM '{}' restarts with the machine (its kernel ran in place)",
            vm.name
        );
        hv_arch::psci::system_reset();
    }
    vm.reset();
    vm.stopped.store(false, Ordering::Release);
    info!("VM '{}' restarted from its images", vm.name);
    vcpu::request_start(vm, 0, vm.entry_ipa, vm.dtb_ipa);
}

/// Exits of `vm` so far for `cause`, over its vCPUs.
pub fn vm_exits_by(vm: &Vm, cause: ExitCause) -> u64 {
    let counters: &[ExitCounters] = &COUNTERS;
    (0..vm.num_vcpus)
        .map(|index| counters[vcpu::counter_index(vm, index)].get(cause))
        .sum()
}

/// Whether physical `intid` is the console UART's receive interrupt.
pub fn is_console_irq(intid: u32) -> bool {
    vms()
        .first()
        .is_some_and(|vm| vm.host_uart_irq == Some(intid))
}

/// Exits of `vm` so far, by cause.
pub fn vm_exit_counts(vm: &Vm) -> [u64; ExitCause::ALL.len()] {
    ExitCause::ALL.map(|cause| vm_exits_by(vm, cause))
}

fn vm_exits(vm: &Vm) -> u64 {
    vm_exit_counts(vm).iter().sum()
}
