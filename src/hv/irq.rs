//! Physical interrupts taken while a guest runs, and the list registers that
//! deliver virtual ones.

use hv_arch::gic;
use log::warn;

use super::vcpu::Vcpu;
use super::vm::{Vm, VTIMER_INTID};
use super::{KICK_SGI, MAINTENANCE_INTID};

/// Bring the vGIC model up to date with what the guest did to its list
/// registers (acknowledged, completed) since it was entered.
pub fn sync_list_registers(vcpu: &mut Vcpu) {
    let n = vcpu.num_lrs;
    for (i, lr) in vcpu.lrs[..n].iter_mut().enumerate() {
        *lr = gic::read_lr(i);
    }
    vcpu.vm.vgic.lock().sync_lrs(vcpu.index, &vcpu.lrs[..n]);
}

/// Load the highest-priority deliverable interrupts into the list registers
/// just before the guest resumes.
pub fn flush_list_registers(vcpu: &mut Vcpu) {
    let n = vcpu.num_lrs;
    let hcr = vcpu
        .vm
        .vgic
        .lock()
        .flush_lrs(vcpu.index, &mut vcpu.lrs[..n]);
    for (i, lr) in vcpu.lrs[..n].iter().enumerate() {
        gic::write_lr(i, *lr);
    }
    gic::write_ich_hcr(hcr);
}

/// Make vCPU `target` of `vm` notice new pending interrupts: if it runs on
/// another physical CPU, interrupt that CPU so it exits and refills its list
/// registers.
pub fn kick(vm: &Vm, current_index: usize, target: usize) {
    if target != current_index && target < vm.num_vcpus {
        gic::send_sgi(vm.cpu_of(target), KICK_SGI);
    }
}

/// Handle every pending physical interrupt on this CPU.
pub fn handle_physical(vcpu: &mut Vcpu) {
    loop {
        let intid = gic::acknowledge();
        if intid >= gic::SPURIOUS {
            return;
        }
        // EOImode=1: this only drops the running priority.
        gic::priority_drop(intid);
        if intid == VTIMER_INTID || vcpu.vm.assigned_spis.contains(&intid) {
            // Forwarded with the HW bit: stays physically active until the
            // guest deactivates its virtual twin.
            let target = vcpu.vm.vgic.lock().set_pending(intid, vcpu.index);
            if let Some(target) = target {
                kick(vcpu.vm, vcpu.index, target);
            }
        } else if Some(intid) == vcpu.vm.host_uart_irq {
            // Input for the guest's emulated UART.
            if let Some(level) = super::console::receive_into(vcpu.vm) {
                vcpu.vm.set_uart_level(vcpu.index, level);
            }
            gic::deactivate(intid);
        } else if intid == MAINTENANCE_INTID {
            // A level: asserted while a list register asks for it (an
            // end-of-interrupt on a level-sensitive entry). Rewrite the list
            // registers first, or it is taken again at once, forever.
            flush_list_registers(vcpu);
            gic::deactivate(intid);
        } else if intid == KICK_SGI {
            // Only here to make us exit; list registers are refreshed on the way out.
            gic::deactivate(intid);
        } else {
            warn!("unexpected physical interrupt {intid}");
            gic::deactivate(intid);
        }
    }
}
