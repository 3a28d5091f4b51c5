//! The host GICv3: distributor, this CPU's redistributor, the EL2 CPU
//! interface and the virtual-interface list registers.
//!
//! The hypervisor runs with EOImode=1 (split priority drop and deactivation):
//! an interrupt forwarded to a guest with the list register HW bit keeps its
//! physical active state until the guest deactivates the virtual one, which
//! the hardware then deactivates for us. That is how the virtual timer and
//! assigned-device interrupts reach a guest without a second exit.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::MAX_CPUS;

const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_ISACTIVER: usize = 0x0300;
const GICD_ICACTIVER: usize = 0x0380;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_IROUTER: usize = 0x6000;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_ENABLE_G1: u32 = 1 << 1;

const GICR_FRAME_STRIDE: usize = 0x20000;
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
const GICR_TYPER_LAST: u64 = 1 << 4;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const SGI_BASE: usize = 0x10000;
const GICR_IGROUPR0: usize = SGI_BASE + 0x0080;
const GICR_ISENABLER0: usize = SGI_BASE + 0x0100;
const GICR_ICENABLER0: usize = SGI_BASE + 0x0180;
const GICR_ISACTIVER0: usize = SGI_BASE + 0x0300;
const GICR_ICACTIVER0: usize = SGI_BASE + 0x0380;
const GICR_IPRIORITYR: usize = SGI_BASE + 0x0400;

/// Priority the hypervisor gives every physical interrupt it enables.
const DEFAULT_PRIORITY: u8 = 0xa0;
/// INTID returned by an acknowledge when nothing is pending.
pub const SPURIOUS: u32 = 1023;

static DIST_BASE: AtomicUsize = AtomicUsize::new(0);
static REDIST_BASE: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

fn rd32(addr: usize) -> u32 {
    // SAFETY: callers pass identity-mapped GIC register addresses.
    unsafe { read_volatile(addr as *const u32) }
}
fn wr32(addr: usize, value: u32) {
    // SAFETY: as rd32.
    unsafe { write_volatile(addr as *mut u32, value) }
}
fn rd64(addr: usize) -> u64 {
    // SAFETY: as rd32.
    unsafe { read_volatile(addr as *const u64) }
}
fn wr64(addr: usize, value: u64) {
    // SAFETY: as rd32.
    unsafe { write_volatile(addr as *mut u64, value) }
}
fn wr8(addr: usize, value: u8) {
    // SAFETY: as rd32 (IPRIORITYR is byte-accessible).
    unsafe { write_volatile(addr as *mut u8, value) }
}

fn dist() -> usize {
    DIST_BASE.load(Ordering::Relaxed)
}

fn redist() -> usize {
    REDIST_BASE[crate::cpu::current_index()].load(Ordering::Relaxed)
}

fn wait_dist_rwp() {
    while rd32(dist() + GICD_CTLR) & GICD_CTLR_RWP != 0 {}
}

/// Set up the distributor once (boot CPU): affinity routing, Group 1, every
/// SPI disabled in Group 1 at the default priority.
pub fn init_distributor(dist_base: usize) {
    DIST_BASE.store(dist_base, Ordering::Relaxed);
    let lines = ((rd32(dist_base + GICD_TYPER) & 0x1f) as usize + 1) * 32;
    wr32(dist_base + GICD_CTLR, 0);
    wait_dist_rwp();
    for word in 1..lines / 32 {
        wr32(dist_base + GICD_ICENABLER + word * 4, u32::MAX);
        wr32(dist_base + GICD_IGROUPR + word * 4, u32::MAX);
    }
    for intid in 32..lines {
        wr8(dist_base + GICD_IPRIORITYR + intid, DEFAULT_PRIORITY);
    }
    wait_dist_rwp();
    wr32(dist_base + GICD_CTLR, GICD_CTLR_ARE);
    wait_dist_rwp();
    wr32(dist_base + GICD_CTLR, GICD_CTLR_ARE | GICD_CTLR_ENABLE_G1);
    wait_dist_rwp();
}

/// Find and wake this CPU's redistributor, and turn on the EL2 CPU interface
/// (system registers, EOImode=1, all priorities unmasked) and the virtual
/// CPU interface (ICH_HCR_EL2.En).
pub fn init_cpu(redist_region: usize, redist_region_size: usize) -> bool {
    let mpidr = crate::cpu::current_mpidr();
    let affinity = (mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff00_0000);
    let mut frame = redist_region;
    let mut found = None;
    while frame + GICR_FRAME_STRIDE <= redist_region + redist_region_size {
        let typer = rd64(frame + GICR_TYPER);
        if typer >> 32 == affinity {
            found = Some(frame);
            break;
        }
        if typer & GICR_TYPER_LAST != 0 {
            break;
        }
        frame += GICR_FRAME_STRIDE;
    }
    let Some(frame) = found else { return false };
    REDIST_BASE[crate::cpu::current_index()].store(frame, Ordering::Relaxed);

    let waker = rd32(frame + GICR_WAKER);
    wr32(frame + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
    while rd32(frame + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {}
    wr32(frame + GICR_ICENABLER0, u32::MAX);
    wr32(frame + GICR_IGROUPR0, u32::MAX);
    for intid in 0..32 {
        wr8(frame + GICR_IPRIORITYR + intid, DEFAULT_PRIORITY);
    }

    // SRE (system registers) and Enable (lower ELs may use ICC_SRE_EL1).
    write_sysreg!("ICC_SRE_EL2", 0b1001);
    crate::sysreg::isb();
    write_sysreg!("ICC_PMR_EL1", 0xff);
    write_sysreg!("ICC_BPR1_EL1", 0);
    write_sysreg!("ICC_CTLR_EL1", 1 << 1); // EOImode=1
    write_sysreg!("ICC_IGRPEN1_EL1", 1);
    write_sysreg!("ICH_VMCR_EL2", 0);
    write_sysreg!("ICH_HCR_EL2", 1);
    crate::sysreg::isb();
    true
}

/// Enable an SGI or PPI on this CPU's redistributor.
pub fn enable_private(intid: u32) {
    wr32(redist() + GICR_ISENABLER0, 1 << (intid % 32));
}

/// Disable an SGI or PPI on this CPU's redistributor.
pub fn disable_private(intid: u32) {
    wr32(redist() + GICR_ICENABLER0, 1 << (intid % 32));
}

/// Route an SPI to the CPU with affinity `mpidr` and enable it.
pub fn enable_spi(intid: u32, mpidr: u64) {
    let d = dist();
    wr64(
        d + GICD_IROUTER + intid as usize * 8,
        mpidr & 0xff_00ff_ffff,
    );
    wr32(
        d + GICD_ISENABLER + (intid as usize / 32) * 4,
        1 << (intid % 32),
    );
}

/// Disable an SPI.
pub fn disable_spi(intid: u32) {
    wr32(
        dist() + GICD_ICENABLER + (intid as usize / 32) * 4,
        1 << (intid % 32),
    );
}

/// Set or clear the active state of `intid`: an SGI/PPI on the
/// redistributor of physical CPU `cpu`, or an SPI. Used for interrupts
/// forwarded to a guest, whose active state follows the virtual one (with
/// EOImode=1 the hypervisor already dropped their priority).
pub fn set_active(intid: u32, cpu: usize, active: bool) {
    let bit = 1 << (intid % 32);
    if intid < 32 {
        let Some(frame) = REDIST_BASE.get(cpu).map(|b| b.load(Ordering::Relaxed)) else {
            return;
        };
        if frame == 0 {
            return;
        }
        let reg = if active {
            GICR_ISACTIVER0
        } else {
            GICR_ICACTIVER0
        };
        wr32(frame + reg, bit);
    } else {
        let reg = if active {
            GICD_ISACTIVER
        } else {
            GICD_ICACTIVER
        };
        wr32(dist() + reg + (intid as usize / 32) * 4, bit);
    }
}

/// Whether SGI/PPI `intid` is active on this CPU's redistributor.
pub fn private_active(intid: u32) -> bool {
    let frame = redist();
    frame != 0 && rd32(frame + GICR_ISACTIVER0) & (1 << (intid % 32)) != 0
}

/// The virtual CPU interface state that belongs to one vCPU and is not in
/// the list registers: ICH_VMCR_EL2 and the active-priority registers
/// (QEMU's 5 priority bits implement only ICH_AP0R0/ICH_AP1R0).
pub fn read_vcpu_interface() -> (u64, u32, u32) {
    (
        read_sysreg!("ICH_VMCR_EL2"),
        read_sysreg!("ICH_AP0R0_EL2") as u32,
        read_sysreg!("ICH_AP1R0_EL2") as u32,
    )
}

/// Load what [`read_vcpu_interface`] saved.
pub fn write_vcpu_interface(vmcr: u64, ap0r0: u32, ap1r0: u32) {
    write_sysreg!("ICH_VMCR_EL2", vmcr);
    write_sysreg!("ICH_AP0R0_EL2", u64::from(ap0r0));
    write_sysreg!("ICH_AP1R0_EL2", u64::from(ap1r0));
}

/// Acknowledge the highest-priority pending Group 1 interrupt.
#[inline]
pub fn acknowledge() -> u32 {
    (read_sysreg!("ICC_IAR1_EL1") & 0xff_ffff) as u32
}

/// Priority drop only (EOImode=1): the interrupt stays active.
#[inline]
pub fn priority_drop(intid: u32) {
    write_sysreg!("ICC_EOIR1_EL1", u64::from(intid));
}

/// Deactivate an interrupt the hypervisor handled itself.
#[inline]
pub fn deactivate(intid: u32) {
    write_sysreg!("ICC_DIR_EL1", u64::from(intid));
}

/// Send SGI `intid` to the physical CPU with index `cpu` (Aff0, cluster 0).
pub fn send_sgi(cpu: usize, intid: u32) {
    let value = (u64::from(intid & 0xf) << 24) | (1u64 << (cpu & 0xf));
    crate::sysreg::dsb_ish();
    write_sysreg!("ICC_SGI1R_EL1", value);
    crate::sysreg::isb();
}

/// Number of implemented list registers (ICH_VTR_EL2.ListRegs + 1).
pub fn list_register_count() -> usize {
    ((read_sysreg!("ICH_VTR_EL2") & 0x1f) + 1) as usize
}

/// Read list register `n` (0..16; others read 0).
pub fn read_lr(n: usize) -> u64 {
    match n {
        0 => read_sysreg!("ICH_LR0_EL2"),
        1 => read_sysreg!("ICH_LR1_EL2"),
        2 => read_sysreg!("ICH_LR2_EL2"),
        3 => read_sysreg!("ICH_LR3_EL2"),
        4 => read_sysreg!("ICH_LR4_EL2"),
        5 => read_sysreg!("ICH_LR5_EL2"),
        6 => read_sysreg!("ICH_LR6_EL2"),
        7 => read_sysreg!("ICH_LR7_EL2"),
        8 => read_sysreg!("ICH_LR8_EL2"),
        9 => read_sysreg!("ICH_LR9_EL2"),
        10 => read_sysreg!("ICH_LR10_EL2"),
        11 => read_sysreg!("ICH_LR11_EL2"),
        12 => read_sysreg!("ICH_LR12_EL2"),
        13 => read_sysreg!("ICH_LR13_EL2"),
        14 => read_sysreg!("ICH_LR14_EL2"),
        15 => read_sysreg!("ICH_LR15_EL2"),
        _ => 0,
    }
}

/// Write list register `n` (0..16; others ignored).
pub fn write_lr(n: usize, value: u64) {
    match n {
        0 => write_sysreg!("ICH_LR0_EL2", value),
        1 => write_sysreg!("ICH_LR1_EL2", value),
        2 => write_sysreg!("ICH_LR2_EL2", value),
        3 => write_sysreg!("ICH_LR3_EL2", value),
        4 => write_sysreg!("ICH_LR4_EL2", value),
        5 => write_sysreg!("ICH_LR5_EL2", value),
        6 => write_sysreg!("ICH_LR6_EL2", value),
        7 => write_sysreg!("ICH_LR7_EL2", value),
        8 => write_sysreg!("ICH_LR8_EL2", value),
        9 => write_sysreg!("ICH_LR9_EL2", value),
        10 => write_sysreg!("ICH_LR10_EL2", value),
        11 => write_sysreg!("ICH_LR11_EL2", value),
        12 => write_sysreg!("ICH_LR12_EL2", value),
        13 => write_sysreg!("ICH_LR13_EL2", value),
        14 => write_sysreg!("ICH_LR14_EL2", value),
        15 => write_sysreg!("ICH_LR15_EL2", value),
        _ => {}
    }
}

/// Program ICH_HCR_EL2 (virtual CPU interface control, maintenance requests).
#[inline]
pub fn write_ich_hcr(value: u64) {
    write_sysreg!("ICH_HCR_EL2", value);
}
