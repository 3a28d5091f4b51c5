//! The vCPU that runs on this physical CPU: its identity, its trapped
//! system-register state, and starting or stopping it.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hv_arch::boot::{enter_guest, guest_regs};
use hv_arch::{cpu, gic, read_sysreg, write_sysreg, MAX_CPUS};
use hvcore::exit_stats::{EventCounters, ExitCause, ExitCounters};
use hvcore::sysreg::{IdRegisters, VcpuSysRegs};
use hvcore::vcpu_context::VcpuContext;
use hvcore::vm_spec::MAX_VMS;
use spin::Once;

use super::percpu::PerCpu;
use super::vm::{Vm, VTIMER_INTID};
use super::{irq, KICK_SGI, MAINTENANCE_INTID};

/// The vCPU state a physical CPU keeps while it runs one.
pub struct Vcpu {
    pub vm: &'static Vm,
    pub index: usize,
    pub sysregs: VcpuSysRegs,
    /// What this CPU's list registers hold (as last written or read back).
    pub lrs: [u64; 16],
    pub num_lrs: usize,
    /// The list registers the last refill left in use (bit = register):
    /// the only ones the guest can change, so the only ones an exit reads.
    pub lrs_in_use: u32,
    /// The value last written to ICH_HCR_EL2.
    pub ich_hcr: u64,
    /// The vGIC may have the virtual timer's line high (it was told the
    /// timer fired and not yet that the line dropped), so exits that sync
    /// must resample CNTV_CTL_EL0.
    pub vtimer_level_maybe_high: bool,
    /// This vCPU's exit counters.
    pub counters: &'static ExitCounters,
    /// This vCPU's guest-event counters.
    pub events: &'static EventCounters,
    /// Its physical CPU time-shares vCPUs (`super::timeshare`): exits that
    /// can block or end a slice go through the scheduler.
    pub shared: bool,
    /// Its slot in the physical CPU's run queue (0 on an owned CPU).
    pub slot: usize,
    /// Its state while switched out (see `super::timeshare`); while it runs,
    /// the hardware holds the state and this is stale.
    pub saved: VcpuContext,
}

impl Vcpu {
    /// Count one exit.
    #[inline(always)]
    pub fn count(&self, cause: ExitCause) {
        self.counters.record(cause);
    }
}

static CURRENT: PerCpu<Option<Vcpu>> = PerCpu::new([const { UnsafeCell::new(None) }; MAX_CPUS]);

/// Exit counters, one set per vCPU of each VM (see [`counter_index`]).
pub static COUNTERS: [ExitCounters; COUNTER_SETS] = [const { ExitCounters::new() }; COUNTER_SETS];
pub const COUNTER_SETS: usize = MAX_VMS * hvcore::psci::MAX_VCPUS;

/// Where vCPU `index` of `vm` counts its exits and events.
pub fn counter_index(vm: &Vm, index: usize) -> usize {
    let vm_index = usize::from(vm.vmid).saturating_sub(1) % MAX_VMS;
    vm_index * hvcore::psci::MAX_VCPUS + index % hvcore::psci::MAX_VCPUS
}

/// Sanitised ID register values, read once from the boot CPU.
pub static ID_REGISTERS: Once<IdRegisters> = Once::new();

/// A request to start a vCPU on a given physical CPU (PSCI CPU_ON).
struct StartRequest {
    pending: AtomicBool,
    entry: AtomicU64,
    context: AtomicU64,
}

static START: [StartRequest; MAX_CPUS] = [const {
    StartRequest {
        pending: AtomicBool::new(false),
        entry: AtomicU64::new(0),
        context: AtomicU64::new(0),
    }
}; MAX_CPUS];
static CPU_STARTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static VM_OF_CPU: [Once<&'static Vm>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];

/// The vCPU running here. Only called from exit handlers, which exist only
/// while a vCPU runs. TPIDR_EL2 holds its address (set by [`run`], cleared
/// by [`stop_current`]), so the exit path finds it with one register read.
#[inline(always)]
pub fn current() -> &'static mut Vcpu {
    let vcpu = read_sysreg!("TPIDR_EL2") as *mut Vcpu;
    if vcpu.is_null() {
        no_vcpu();
    }
    // SAFETY: a non-zero TPIDR_EL2 points at this CPU's `CURRENT` slot, a
    // static holding `Some(Vcpu)` from `run` until `stop_current` clears
    // both; only this CPU uses it, and its handlers never nest.
    unsafe { &mut *vcpu }
}

/// No vCPU runs on this CPU yet (TPIDR_EL2 resets to an UNKNOWN value).
pub fn clear_current() {
    write_sysreg!("TPIDR_EL2", 0);
}

#[cold]
#[inline(never)]
fn no_vcpu() -> ! {
    panic!("VM exit on a CPU without a vCPU")
}

/// Mark the boot CPU as running (it never needs a PSCI CPU_ON).
pub fn mark_boot_cpu_started() {
    CPU_STARTED[cpu::current_index()].store(true, Ordering::Release);
}

/// Ask physical CPU `vm.cpu_of(index)` to start vCPU `index` at `entry` with `context` in x0.
pub fn request_start(vm: &'static Vm, index: usize, entry: u64, context: u64) {
    let pcpu = vm.cpu_of(index);
    if !super::timeshare::post_start(pcpu, vm, index, entry, context) {
        VM_OF_CPU[pcpu].call_once(|| vm);
        let request = &START[pcpu];
        request.entry.store(entry, Ordering::Relaxed);
        request.context.store(context, Ordering::Relaxed);
        request.pending.store(true, Ordering::Release);
    }
    if CPU_STARTED[pcpu].swap(true, Ordering::AcqRel) {
        // Parked in wait_for_start after a CPU_OFF, in WFI: the kick SGI
        // wakes it (send_sgi orders the request before the SGI). The SGI
        // stays pending and is taken as an ordinary kick once the vCPU runs.
        gic::send_sgi(pcpu, KICK_SGI);
    } else {
        let ret = hv_arch::psci::cpu_on(
            pcpu as u64,
            hv_arch::boot::secondary_entry_address(),
            pcpu as u64,
        );
        if ret != 0 {
            log::error!("PSCI CPU_ON for physical cpu{pcpu} failed: {ret}");
        }
    }
}

/// Park this physical CPU until a vCPU start request arrives, then run it.
/// It waits in WFI (QEMU halts the CPU; WFE would only yield and spin): a
/// start request after a CPU_OFF comes with the kick SGI, which is enabled
/// on every CPU that has run a vCPU. A CPU never started waits for PSCI
/// CPU_ON to reach this point with its request already pending.
pub fn wait_for_start() -> ! {
    let pcpu = cpu::current_index();
    if super::timeshare::is_shared(pcpu) {
        super::timeshare::idle();
    }
    let request = &START[pcpu];
    // Also on a CPU that has not run a vCPU yet (the boot CPU when no VM
    // owns it): the kick is what ends its WFI.
    gic::enable_private(KICK_SGI);
    loop {
        if request.pending.swap(false, Ordering::AcqRel) {
            let vm = *VM_OF_CPU[pcpu].get().expect("start request names a VM");
            if vm.stopped.load(Ordering::Acquire) {
                // A CPU_ON that raced with its VM's SYSTEM_OFF.
                if let Some(index) = vm.vcpu_on(pcpu) {
                    vm.power.lock().cpu_off(index);
                }
                super::lifecycle::restart_if_parked(vm);
                continue;
            }
            let Some(index) = vm.vcpu_on(pcpu) else {
                log::error!(
                    "cpu{pcpu}: start request for a CPU {} does not own",
                    vm.name
                );
                continue;
            };
            run(
                vm,
                index,
                request.entry.load(Ordering::Relaxed),
                request.context.load(Ordering::Relaxed),
            );
        }
        cpu::wfi();
    }
}

const HCR_VM: u64 = 1 << 0;
const HCR_SWIO: u64 = 1 << 1;
const HCR_FMO: u64 = 1 << 3;
const HCR_IMO: u64 = 1 << 4;
const HCR_AMO: u64 = 1 << 5;
const HCR_FB: u64 = 1 << 9;
const HCR_BSU_INNER: u64 = 1 << 10;
const HCR_TWI: u64 = 1 << 13;
const HCR_TWE: u64 = 1 << 14;
const HCR_TID1: u64 = 1 << 16;
const HCR_TID3: u64 = 1 << 18;
const HCR_TSC: u64 = 1 << 19;
const HCR_TACR: u64 = 1 << 21;
const HCR_TSW: u64 = 1 << 22;
const HCR_TVM: u64 = 1 << 26;
const HCR_TRVM: u64 = 1 << 30;
const HCR_RW: u64 = 1 << 31;

/// What the guest may do without us, and what traps: stage 2 on, physical
/// interrupts to EL2 (virtual ones to the guest), WFI, SMC, ID registers,
/// ACTLR, set/way cache operations and the virtual-memory control registers
/// trap; WFE does not where a vCPU owns its physical CPU (spinning costs
/// nobody else), but does on a time-shared one ([`GUEST_HCR_SHARED`]).
pub const GUEST_HCR: u64 = HCR_VM
    | HCR_SWIO
    | HCR_FMO
    | HCR_IMO
    | HCR_AMO
    | HCR_FB
    | HCR_BSU_INNER
    | HCR_TWI
    | HCR_TID1
    | HCR_TID3
    | HCR_TSC
    | HCR_TACR
    | HCR_TSW
    | HCR_TVM
    | HCR_TRVM
    | HCR_RW;

/// On a time-shared CPU WFE traps too: a vCPU waiting for an event (a lock
/// another vCPU holds) gives the CPU to the others instead of spinning out
/// its slice.
pub const GUEST_HCR_SHARED: u64 = GUEST_HCR | HCR_TWE;

/// CPTR_EL2 (non-VHE): RES1 bits only; FP/SIMD is not trapped, since the
/// hypervisor itself never touches FP registers (soft-float target).
const CPTR_EL2_RES1: u64 = 0x33ff;
/// CNTHCTL_EL2: the guest may read the physical counter (EL1PCTEN) but the
/// EL1 physical timer traps (EL1PCEN=0): it is emulated (`hvcore::timer`),
/// with the EL2 physical timer standing in for it.
const CNTHCTL_EL1PCTEN: u64 = 1 << 0;
/// MDCR_EL2: trap PMU accesses (the PMU is hidden from the guest's ID registers).
const MDCR_TPMCR: u64 = 1 << 5;
const MDCR_TPM: u64 = 1 << 6;
/// SCTLR_EL1 at reset as the architecture's RES1 bits, MMU and caches off.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// SPSR for entering the guest: EL1h with D, A, I, F masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;

impl Vcpu {
    /// vCPU `index` of `vm`, fresh from reset, to start at `entry` with `x0`.
    pub fn new(
        vm: &'static Vm,
        index: usize,
        shared: bool,
        slot: usize,
        entry: u64,
        x0: u64,
    ) -> Self {
        let ids = *ID_REGISTERS.get().expect("ID registers read at boot");
        let counters = counter_index(vm, index);
        Vcpu {
            vm,
            index,
            sysregs: VcpuSysRegs::new(ids),
            lrs: [0; 16],
            num_lrs: gic::list_register_count().min(16),
            lrs_in_use: 0,
            // Not a value the refill returns: the first one is written.
            ich_hcr: u64::MAX,
            // A previous run of this vCPU may have left the line high.
            vtimer_level_maybe_high: true,
            counters: &COUNTERS[counters],
            events: &super::guest_log::EVENTS[counters],
            shared,
            slot,
            saved: VcpuContext::reset(entry, x0, vm.cntvoff),
        }
    }
}

/// Make `vcpu` the one running on this CPU (TPIDR_EL2 finds it).
pub fn install_current(vcpu: Vcpu) -> &'static mut Vcpu {
    let slot = CURRENT.current();
    *slot = Some(vcpu);
    let vcpu = slot.as_mut().expect("just installed");
    write_sysreg!("TPIDR_EL2", vcpu as *mut Vcpu as u64);
    vcpu
}

/// The per-CPU EL2 configuration every guest runs under (the same for
/// every VM; WFE traps on a time-shared CPU), and the private interrupts
/// the hypervisor takes.
pub fn configure_cpu_for_guests(shared: bool) {
    write_sysreg!("HCR_EL2", if shared { GUEST_HCR_SHARED } else { GUEST_HCR });
    write_sysreg!("VPIDR_EL2", read_sysreg!("MIDR_EL1"));
    write_sysreg!("CPTR_EL2", CPTR_EL2_RES1);
    write_sysreg!("HSTR_EL2", 0);
    let pmu_counters = (read_sysreg!("PMCR_EL0") >> 11) & 0x1f;
    write_sysreg!("MDCR_EL2", pmu_counters | MDCR_TPM | MDCR_TPMCR);
    write_sysreg!("CNTHCTL_EL2", CNTHCTL_EL1PCTEN);
    write_sysreg!("CNTV_CTL_EL0", 0);
    write_sysreg!("CNTHP_CTL_EL2", 0);
    hv_arch::sysreg::isb();
    for lr in 0..gic::list_register_count() {
        gic::write_lr(lr, 0);
    }
    gic::enable_private(KICK_SGI);
    gic::enable_private(MAINTENANCE_INTID);
    gic::enable_private(VTIMER_INTID);
    gic::enable_private(irq::HYP_TIMER_INTID);
}

/// Run vCPU `index` of `vm` on this physical CPU from `entry` with x0 = `x0`.
pub fn run(vm: &'static Vm, index: usize, entry: u64, x0: u64) -> ! {
    let pcpu = cpu::current_index();
    install_current(Vcpu::new(vm, index, false, 0, entry, x0));

    configure_cpu_for_guests(false);
    write_sysreg!("VTCR_EL2", vm.vtcr);
    write_sysreg!("VTTBR_EL2", vm.vttbr);
    write_sysreg!("VMPIDR_EL2", (1 << 31) | index as u64);
    write_sysreg!("CNTVOFF_EL2", vm.cntvoff);
    write_sysreg!("SCTLR_EL1", SCTLR_EL1_RESET);
    write_sysreg!("CPACR_EL1", 0);
    write_sysreg!("VBAR_EL1", 0);
    hv_arch::sysreg::isb();
    // The VM's VMID may have run here before (a restart), with other tables.
    hv_arch::cache::flush_local_guest_tlb();

    vm.power.lock().mark_on(index);
    // Time since reset: under QEMU -icount the hypervisor's start-up cost
    // in instructions (tools/bench reports it for vCPU 0).
    let since_reset_us = read_sysreg!("CNTPCT_EL0") * 1_000_000 / read_sysreg!("CNTFRQ_EL0").max(1);
    log::info!(
        "vm{} vcpu{index} starting on cpu{pcpu} at {entry:#x}, {since_reset_us} us after reset",
        vm.vmid
    );

    // SAFETY: this CPU's save area; no exit can be in progress here.
    let regs = unsafe { &mut *guest_regs(pcpu) };
    regs.x = [0; 31];
    regs.x[0] = x0;
    write_sysreg!("ELR_EL2", entry);
    write_sysreg!("SPSR_EL2", SPSR_EL1H_MASKED);
    irq::flush_list_registers(current());
    enter_guest(pcpu)
}

/// The guest turned this vCPU off (PSCI CPU_OFF): forget it and park.
pub fn stop_current() -> ! {
    let vcpu = current();
    let shared = vcpu.shared;
    vcpu.vm.power.lock().cpu_off(vcpu.index);
    gic::disable_private(VTIMER_INTID);
    write_sysreg!("CNTV_CTL_EL0", 0);
    write_sysreg!("CNTHP_CTL_EL2", 0);
    // A forwarded timer interrupt may still be active; the next vCPU here needs it inactive.
    gic::deactivate(VTIMER_INTID);
    for lr in 0..vcpu.num_lrs {
        gic::write_lr(lr, 0);
    }
    let vm = vcpu.vm;
    if shared {
        super::timeshare::current_turned_off();
    }
    clear_current();
    *CURRENT.current() = None;
    super::lifecycle::restart_if_parked(vm);
    wait_for_start()
}
