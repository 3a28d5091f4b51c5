//! VMs start together and stop one at a time: a VM's PSCI SYSTEM_OFF stops
//! only that VM's vCPUs and leaves the others running; the machine powers
//! off when the last VM has stopped.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use hv_arch::gic;
use hvcore::exit_stats::{ExitCause, ExitCounters};
use log::info;
use spin::Once;

use super::vcpu::{self, Vcpu, COUNTERS};
use super::vm::Vm;
use super::KICK_SGI;

static VMS: Once<Vec<&'static Vm>> = Once::new();
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The VMs of this boot, all about to start.
pub fn register(vms: Vec<&'static Vm>) {
    RUNNING.store(vms.len(), Ordering::Release);
    VMS.call_once(|| vms);
}

/// The VMs of this boot.
pub fn vms() -> &'static [&'static Vm] {
    VMS.get().map_or(&[], |v| v.as_slice())
}

/// The VM of `vcpu` powered itself off: stop its other vCPUs (each parks
/// at its next exit, which the kick forces), park this one, and power the
/// machine off if no VM is left running.
pub fn stop_vm(vcpu: &mut Vcpu, why: &str) -> ! {
    let vm = vcpu.vm;
    if !vm.stopped.swap(true, Ordering::AcqRel) {
        let left = RUNNING.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        if left == 0 {
            super::print_exit_counters(vm);
            hv_arch::psci::system_off();
        }
        info!(
            "VM '{}' stopped ({why}) after {} exits; {left} VM(s) still running",
            vm.name,
            vm_exits(vm)
        );
        for index in (0..vm.num_vcpus).filter(|i| *i != vcpu.index) {
            gic::send_sgi(vm.cpu_of(index), KICK_SGI);
        }
    }
    vcpu::stop_current()
}

/// Park this vCPU if its VM was stopped by another of its vCPUs.
#[inline]
pub fn park_if_stopped(vcpu: &mut Vcpu) {
    if vcpu.vm.stopped.load(Ordering::Acquire) {
        vcpu::stop_current();
    }
}

fn vm_exits(vm: &Vm) -> u64 {
    let counters: &[ExitCounters] = &COUNTERS;
    (0..vm.num_vcpus)
        .map(|i| {
            ExitCause::ALL
                .iter()
                .map(|c| counters[vm.cpu_of(i)].get(*c))
                .sum::<u64>()
        })
        .sum()
}
