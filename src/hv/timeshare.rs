//! Physical CPUs time-shared between vCPUs.
//!
//! A physical CPU that more than one vCPU is placed on (time-shared VMs,
//! `hvrust,time-shared`) runs them in turn. Each vCPU placed here has a
//! [`Vcpu`] in one of this CPU's slots, where it stays; TPIDR_EL2 points at
//! the running one (so exits find it as on an owned CPU), whose state is in
//! the hardware; every other one keeps its state saved in its
//! [`VcpuContext`](hvcore::vcpu_context::VcpuContext). Which
//! one runs is the core's decision ([`RunQueue`]: least runtime first, a
//! slice at least while others wait); this module takes the decision at
//! the scheduling points and carries it out:
//! - the end of every physical-interrupt exit (the slice tick from the EL2
//!   physical timer, kicks from other CPUs, start requests);
//! - WFI with nothing pending: the vCPU blocks and another runs, or the CPU
//!   waits for an interrupt with the blocked vCPU still loaded;
//! - CPU_OFF or a stopped VM: the slot is turned off and the CPU idles until
//!   something here can run.
//!
//! The EL2 physical timer also stands in for the guests' EL1 physical
//! timer, so it is armed for the earliest of: the running vCPU's emulated
//! timer, the end of its slice (only while another vCPU waits), and the
//! deadlines that would wake a parked vCPU (its virtual or physical timer).
//!
//! An owned CPU (one vCPU placed) never enters this module: its exits cost
//! what they did before time-sharing existed.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hv_arch::boot::{enter_guest, guest_regs, GuestRegs};
use hv_arch::fpsimd;
use hv_arch::{cpu, gic, read_sysreg, write_sysreg, MAX_CPUS};
use hvcore::sched::{RunQueue, SlotState, MAX_SLOTS};
use hvcore::vcpu_context::{El1Reg, PowerWord, PtimerState, VtimerState};
use spin::Once;

use super::percpu::PerCpu;
use super::vcpu::{self, Vcpu};
use super::vm::{Vm, VTIMER_INTID};
use super::{irq, KICK_SGI};

/// How long a vCPU keeps its CPU while others wait, in milliseconds.
const SLICE_MS: u64 = 2;

/// The vCPUs placed on each physical CPU, in slot order (set at boot).
static PLACED: [Once<Vec<(&'static Vm, usize)>>; MAX_CPUS] = [const { Once::new() }; MAX_CPUS];

/// A PSCI CPU_ON (or a VM start) for one slot, posted by any CPU.
struct StartRequest {
    pending: AtomicBool,
    entry: AtomicU64,
    x0: AtomicU64,
}

static START: [[StartRequest; MAX_SLOTS]; MAX_CPUS] = [const {
    [const {
        StartRequest {
            pending: AtomicBool::new(false),
            entry: AtomicU64::new(0),
            x0: AtomicU64::new(0),
        }
    }; MAX_SLOTS]
}; MAX_CPUS];

/// vCPU switches on all CPUs, and the counter ticks they took (save and
/// restore of the whole state, refill included): `tools/bench` reports the
/// cost of one, exact under -icount.
static SWITCHES: AtomicU64 = AtomicU64::new(0);
static SWITCH_TICKS: AtomicU64 = AtomicU64::new(0);

/// `(switches, counter ticks they took)` so far.
pub fn switch_statistics() -> (u64, u64) {
    (
        SWITCHES.load(Ordering::Relaxed),
        SWITCH_TICKS.load(Ordering::Relaxed),
    )
}

/// The vCPUs of each CPU's slots. A slot is reached only from its own CPU:
/// the running vCPU through TPIDR_EL2 ([`vcpu::current`]), the others
/// through [`parked`]; no two references to one slot are ever live.
struct Slots([[UnsafeCell<Option<Vcpu>>; MAX_SLOTS]; MAX_CPUS]);

// SAFETY: each CPU touches only its own row (see the type's contract).
unsafe impl Sync for Slots {}

static SLOTS: Slots = Slots([const { [const { UnsafeCell::new(None) }; MAX_SLOTS] }; MAX_CPUS]);

/// The vCPU in `slot` of this CPU, which must not be the running one (that
/// one is [`vcpu::current`]'s).
#[allow(clippy::mut_from_ref)]
fn parked(slot: usize) -> &'static mut Option<Vcpu> {
    let cell = &SLOTS.0[cpu::current_index() % MAX_CPUS][slot % MAX_SLOTS];
    // SAFETY: this CPU's row, used only on this CPU with interrupts masked
    // (handlers never nest); callers take a slot other than the running one
    // and drop the reference before taking another to the same slot.
    unsafe { &mut *cell.get() }
}

/// Make the vCPU in `slot` the running one: TPIDR_EL2 points at it.
fn make_current(slot: usize) -> Option<&'static mut Vcpu> {
    let vcpu = parked(slot).as_mut()?;
    write_sysreg!("TPIDR_EL2", vcpu as *mut Vcpu as u64);
    Some(vcpu)
}

/// One CPU's scheduler: the decision, and its clocks.
struct Queue {
    runq: RunQueue,
    /// Slots exist for the placed vCPUs (done at the CPU's first use).
    ready: bool,
    /// When the running slot was last charged.
    since: u64,
    /// When the running slot's current slice began.
    slice_start: u64,
}

static QUEUES: PerCpu<Queue> = PerCpu::new(
    [const {
        UnsafeCell::new(Queue {
            runq: RunQueue::new(),
            ready: false,
            since: 0,
            slice_start: 0,
        })
    }; MAX_CPUS],
);

/// Place every vCPU of `vms` on its physical CPU (before any starts).
pub fn place(vms: &[&'static Vm]) -> Result<(), alloc::string::String> {
    for (pcpu, placed) in PLACED.iter().enumerate() {
        let here: Vec<(&'static Vm, usize)> = vms
            .iter()
            .flat_map(|&vm| (0..vm.num_vcpus).map(move |i| (vm, i)))
            .filter(|&(vm, i)| vm.cpu_of(i) == pcpu)
            .collect();
        if here.len() > MAX_SLOTS {
            return Err(alloc::format!(
                "CPU {pcpu}: {} vCPUs placed, at most {MAX_SLOTS} can share a CPU",
                here.len()
            ));
        }
        if here.len() > 1 {
            let names: Vec<alloc::string::String> = here
                .iter()
                .map(|(vm, i)| alloc::format!("{}/{i}", vm.name))
                .collect();
            log::info!("cpu{pcpu} time-shares vCPUs {}", names.join(", "));
        }
        placed.call_once(|| here);
    }
    Ok(())
}

/// Whether physical CPU `pcpu` time-shares vCPUs.
pub fn is_shared(pcpu: usize) -> bool {
    PLACED
        .get(pcpu)
        .and_then(|p| p.get())
        .is_some_and(|p| p.len() > 1)
}

fn slot_of(pcpu: usize, vm: &Vm, index: usize) -> Option<usize> {
    PLACED
        .get(pcpu)?
        .get()?
        .iter()
        .position(|&(v, i)| core::ptr::eq(v, vm) && i == index)
}

/// Post a start for vCPU `index` of `vm` if its CPU is time-shared (the
/// caller then wakes that CPU). False: the CPU is owned, use its own path.
pub fn post_start(pcpu: usize, vm: &Vm, index: usize, entry: u64, x0: u64) -> bool {
    if !is_shared(pcpu) {
        return false;
    }
    let Some(slot) = slot_of(pcpu, vm, index) else {
        return false;
    };
    let request = &START[pcpu][slot];
    request.entry.store(entry, Ordering::Relaxed);
    request.x0.store(x0, Ordering::Relaxed);
    request.pending.store(true, Ordering::Release);
    true
}

fn now() -> u64 {
    read_sysreg!("CNTPCT_EL0")
}

fn slice_ticks() -> u64 {
    read_sysreg!("CNTFRQ_EL0") / 1000 * SLICE_MS
}

impl Queue {
    fn prepare(&mut self, pcpu: usize) {
        if self.ready {
            return;
        }
        let placed = PLACED[pcpu].get().map_or(0, |p| p.len());
        for _ in 0..placed {
            self.runq.add();
        }
        self.ready = true;
    }

    /// Bring the queue up to `now` before a decision: start requests taken,
    /// parked vCPUs woken or turned off, the running one charged.
    fn catch_up(&mut self, pcpu: usize, now: u64) {
        self.prepare(pcpu);
        self.take_start_requests(pcpu);
        self.sweep(now);
        self.runq.charge(now.wrapping_sub(self.since));
        self.since = now;
    }

    /// Start requests become runnable vCPUs in their slots.
    fn take_start_requests(&mut self, pcpu: usize) {
        let Some(placed) = PLACED[pcpu].get() else {
            return;
        };
        for (slot, &(vm, index)) in placed.iter().enumerate() {
            let request = &START[pcpu][slot];
            if self.runq.running() == Some(slot) || !request.pending.swap(false, Ordering::AcqRel) {
                // (A running vCPU is never started: PSCI answers ALREADY_ON.)
                continue;
            }
            if vm.stopped.load(Ordering::Acquire) {
                // A CPU_ON that raced with its VM's SYSTEM_OFF.
                vm.power.lock().cpu_off(index);
                super::lifecycle::restart_if_parked(vm);
                continue;
            }
            let entry = request.entry.load(Ordering::Relaxed);
            let x0 = request.x0.load(Ordering::Relaxed);
            let fresh = Vcpu::new(vm, index, true, slot, entry, x0);
            vm.power.lock().mark_on(index);
            log::info!(
                "vm{} vcpu{index} starting on cpu{pcpu} (time-shared, slot {slot}) at {entry:#x}",
                vm.vmid
            );
            *parked(slot) = Some(fresh);
            self.runq.make_runnable(slot);
        }
    }

    /// Parked vCPUs of stopped VMs are turned off; blocked ones with
    /// something to do become runnable.
    fn sweep(&mut self, now: u64) {
        for slot in 0..MAX_SLOTS {
            if self.runq.running() == Some(slot) {
                continue;
            }
            let Some(vcpu) = parked(slot).as_ref() else {
                continue;
            };
            let vm = vcpu.vm;
            if vm.stopped.load(Ordering::Acquire) {
                vm.power.lock().cpu_off(vcpu.index);
                *parked(slot) = None;
                self.runq.turn_off(slot);
                super::lifecycle::restart_if_parked(vm);
                continue;
            }
            if self.runq.state(slot) == SlotState::Blocked && wants_to_run(vcpu, now) {
                self.runq.make_runnable(slot);
            }
        }
    }

    /// The earliest count at which a blocked parked vCPU would wake.
    fn earliest_wake(&self, now: u64) -> Option<u64> {
        (0..MAX_SLOTS)
            .filter(|&slot| {
                self.runq.running() != Some(slot) && self.runq.state(slot) == SlotState::Blocked
            })
            .filter_map(|slot| parked(slot).as_ref())
            .flat_map(|v| {
                let ptimer = v.sysregs.ptimer.next_deadline(now);
                [v.saved.vtimer_deadline(), ptimer]
            })
            .flatten()
            .min()
    }
}

/// A parked, blocked vCPU has an interrupt to take or a timer that fired.
fn wants_to_run(vcpu: &Vcpu, now: u64) -> bool {
    vcpu.saved.vtimer_deadline().is_some_and(|d| d <= now)
        || vcpu.sysregs.ptimer.output(now)
        || vcpu.vm.vgic.lock().has_pending(vcpu.index)
}

/// Arm the EL2 physical timer for the earliest event this CPU must act on.
pub fn rearm(vcpu: &Vcpu) {
    let now = now();
    let q = QUEUES.current();
    let slice_end = q
        .runq
        .contended()
        .then(|| q.slice_start.wrapping_add(slice_ticks()));
    let deadline = [
        vcpu.sysregs.ptimer.next_deadline(now),
        slice_end,
        q.earliest_wake(now),
    ]
    .into_iter()
    .flatten()
    .min();
    irq::arm_hyp_timer(deadline);
}

/// The end of a physical-interrupt exit on a time-shared CPU: charge the
/// running vCPU, take start requests and wake-ups, and switch if the
/// scheduler says so. The list registers are refilled either way.
// Out of line: an owned CPU's interrupt exit must not pay for its frame.
#[inline(never)]
pub fn schedule(vcpu: &mut Vcpu, regs: &mut GuestRegs) {
    let now = now();
    let pcpu = cpu::current_index();
    let next = {
        let q = QUEUES.current();
        q.catch_up(pcpu, now);
        let slice_over = now.wrapping_sub(q.slice_start) >= slice_ticks();
        let next = q.runq.pick(slice_over);
        if slice_over || next != Some(vcpu.slot) {
            q.slice_start = now;
        }
        next
    };
    match next.filter(|&next| next != vcpu.slot) {
        Some(next) if parked(next).is_some() => rearm(switch(vcpu, regs, next)),
        _ => {
            irq::flush_list_registers(vcpu);
            rearm(vcpu);
        }
    }
}

/// A WFI on a time-shared CPU (the exit's handler stepped over it, so
/// whoever runs this vCPU next resumes it after the WFI). With an
/// interrupt pending the vCPU goes on; otherwise it blocks, and another
/// vCPU runs or the CPU waits (in WFI, the blocked vCPU still loaded so its
/// own timer can fire) until something here can run. True if, while it
/// waited, its VM was stopped: the caller parks it.
pub fn block(vcpu: &mut Vcpu, regs: &mut GuestRegs) -> bool {
    let pcpu = cpu::current_index();
    irq::sync_list_registers(vcpu);
    super::console::flush_guest(vcpu.vm.vmid);
    let slot = vcpu.slot;
    if !vcpu.vm.vgic.lock().has_pending(vcpu.index) {
        {
            let q = QUEUES.current();
            q.prepare(pcpu);
            let now = now();
            q.runq.charge(now.wrapping_sub(q.since));
            q.since = now;
            q.runq.block(slot);
        }
        loop {
            let next = {
                let q = QUEUES.current();
                q.take_start_requests(pcpu);
                q.sweep(now());
                q.runq.pick(true)
            };
            match next {
                Some(next) if next == slot => break,
                Some(next) if parked(next).is_some() => {
                    let q = QUEUES.current();
                    q.since = now();
                    q.slice_start = q.since;
                    rearm(switch(vcpu, regs, next));
                    return false;
                }
                Some(_) => {}
                None => {}
            }
            rearm(vcpu);
            cpu::wfi();
            // The loaded vCPU's own interrupts, kicks, timers, console input.
            if irq::handle_physical(vcpu).vm_stopped() {
                return true;
            }
            let q = QUEUES.current();
            // Time spent waiting is nobody's.
            q.since = now();
            if vcpu.vm.vgic.lock().has_pending(vcpu.index) {
                q.runq.make_runnable(slot);
            }
        }
    }
    irq::flush_list_registers(vcpu);
    rearm(vcpu);
    false
}

/// A WFE on a time-shared CPU: the vCPU waits for another to do something
/// (release a lock, SEV), so the runnable vCPU here that has run least gets
/// the CPU now; the waiter stays runnable. With nobody else to run, WFE
/// completes at once (as WFE may).
pub fn yield_to_others(vcpu: &mut Vcpu, regs: &mut GuestRegs) {
    let pcpu = cpu::current_index();
    let now = now();
    let next = {
        let q = QUEUES.current();
        q.catch_up(pcpu, now);
        q.runq.pick_other()
    };
    if let Some(next) = next.filter(|&next| parked(next).is_some()) {
        QUEUES.current().slice_start = now;
        rearm(switch(vcpu, regs, next));
    }
}

/// The running vCPU is turned off (CPU_OFF or its VM stopped): its slot
/// goes off and its `Vcpu` is dropped, so the caller must not use it
/// again; it then clears TPIDR_EL2 and idles.
pub fn current_turned_off() {
    let slot = vcpu::current().slot;
    let q = QUEUES.current();
    q.runq.turn_off(slot);
    vcpu::clear_current();
    *parked(slot) = None;
}

/// A time-shared CPU with no vCPU loaded: wait until one here can run.
pub fn idle() -> ! {
    let pcpu = cpu::current_index();
    vcpu::configure_cpu_for_guests(true);
    gic::enable_private(KICK_SGI);
    loop {
        let now = now();
        let next = {
            let q = QUEUES.current();
            q.prepare(pcpu);
            q.take_start_requests(pcpu);
            q.sweep(now);
            q.runq.pick(true)
        };
        if let Some(next) = next {
            run_parked(pcpu, next);
        }
        irq::arm_hyp_timer(QUEUES.current().earliest_wake(now));
        cpu::wfi();
        take_interrupts_while_idle();
    }
}

/// Physical interrupts with no vCPU loaded: console input is taken, the
/// rest (kicks, the timer) only had to end the WFI.
fn take_interrupts_while_idle() {
    loop {
        let intid = gic::acknowledge();
        if intid >= gic::SPURIOUS {
            return;
        }
        gic::priority_drop(intid);
        if intid == irq::HYP_TIMER_INTID {
            // Level-sensitive: off until the loop re-arms it.
            write_sysreg!("CNTHP_CTL_EL2", 0);
        } else if super::lifecycle::is_console_irq(intid) {
            super::console::receive_input();
        }
        gic::deactivate(intid);
    }
}

/// Load the parked vCPU in `slot` onto this idle CPU and enter it.
fn run_parked(pcpu: usize, slot: usize) -> ! {
    let now = now();
    {
        let q = QUEUES.current();
        q.runq.set_running(Some(slot));
        q.since = now;
        q.slice_start = now;
    }
    let Some(vcpu) = make_current(slot) else {
        panic!("cpu{pcpu}: slot {slot} runnable with no vCPU");
    };
    // SAFETY: this CPU's save area; no exit is in progress on an idle CPU.
    let regs = unsafe { &mut *guest_regs(pcpu) };
    load(vcpu, regs);
    rearm(vcpu);
    enter_guest(pcpu)
}

/// Switch from the running `vcpu` to the one in slot `next` (which holds a
/// vCPU); returns it. `vcpu` stays in its slot, parked, and must not be
/// used by the caller.
fn switch(vcpu: &mut Vcpu, regs: &mut GuestRegs, next: usize) -> &'static mut Vcpu {
    let start = now();
    save(vcpu, regs);
    QUEUES.current().runq.set_running(Some(next));
    let Some(incoming) = make_current(next) else {
        unreachable!("the caller checked slot {next} holds a vCPU");
    };
    load(incoming, regs);
    SWITCHES.fetch_add(1, Ordering::Relaxed);
    SWITCH_TICKS.fetch_add(now().wrapping_sub(start), Ordering::Relaxed);
    incoming
}

fn read_el1(reg: El1Reg) -> u64 {
    match reg {
        El1Reg::Sctlr => read_sysreg!("SCTLR_EL1"),
        El1Reg::Ttbr0 => read_sysreg!("TTBR0_EL1"),
        El1Reg::Ttbr1 => read_sysreg!("TTBR1_EL1"),
        El1Reg::Tcr => read_sysreg!("TCR_EL1"),
        El1Reg::Mair => read_sysreg!("MAIR_EL1"),
        El1Reg::Amair => read_sysreg!("AMAIR_EL1"),
        El1Reg::Vbar => read_sysreg!("VBAR_EL1"),
        El1Reg::Contextidr => read_sysreg!("CONTEXTIDR_EL1"),
        El1Reg::Cpacr => read_sysreg!("CPACR_EL1"),
        El1Reg::Esr => read_sysreg!("ESR_EL1"),
        El1Reg::Far => read_sysreg!("FAR_EL1"),
        El1Reg::Afsr0 => read_sysreg!("AFSR0_EL1"),
        El1Reg::Afsr1 => read_sysreg!("AFSR1_EL1"),
        El1Reg::Par => read_sysreg!("PAR_EL1"),
        El1Reg::SpEl0 => read_sysreg!("SP_EL0"),
        El1Reg::SpEl1 => read_sysreg!("SP_EL1"),
        El1Reg::ElrEl1 => read_sysreg!("ELR_EL1"),
        El1Reg::SpsrEl1 => read_sysreg!("SPSR_EL1"),
        El1Reg::TpidrEl0 => read_sysreg!("TPIDR_EL0"),
        El1Reg::TpidrroEl0 => read_sysreg!("TPIDRRO_EL0"),
        El1Reg::TpidrEl1 => read_sysreg!("TPIDR_EL1"),
        El1Reg::Cntkctl => read_sysreg!("CNTKCTL_EL1"),
        El1Reg::Csselr => read_sysreg!("CSSELR_EL1"),
        El1Reg::Mdscr => read_sysreg!("MDSCR_EL1"),
    }
}

fn write_el1(reg: El1Reg, value: u64) {
    match reg {
        El1Reg::Sctlr => write_sysreg!("SCTLR_EL1", value),
        El1Reg::Ttbr0 => write_sysreg!("TTBR0_EL1", value),
        El1Reg::Ttbr1 => write_sysreg!("TTBR1_EL1", value),
        El1Reg::Tcr => write_sysreg!("TCR_EL1", value),
        El1Reg::Mair => write_sysreg!("MAIR_EL1", value),
        El1Reg::Amair => write_sysreg!("AMAIR_EL1", value),
        El1Reg::Vbar => write_sysreg!("VBAR_EL1", value),
        El1Reg::Contextidr => write_sysreg!("CONTEXTIDR_EL1", value),
        El1Reg::Cpacr => write_sysreg!("CPACR_EL1", value),
        El1Reg::Esr => write_sysreg!("ESR_EL1", value),
        El1Reg::Far => write_sysreg!("FAR_EL1", value),
        El1Reg::Afsr0 => write_sysreg!("AFSR0_EL1", value),
        El1Reg::Afsr1 => write_sysreg!("AFSR1_EL1", value),
        El1Reg::Par => write_sysreg!("PAR_EL1", value),
        El1Reg::SpEl0 => write_sysreg!("SP_EL0", value),
        El1Reg::SpEl1 => write_sysreg!("SP_EL1", value),
        El1Reg::ElrEl1 => write_sysreg!("ELR_EL1", value),
        El1Reg::SpsrEl1 => write_sysreg!("SPSR_EL1", value),
        El1Reg::TpidrEl0 => write_sysreg!("TPIDR_EL0", value),
        El1Reg::TpidrroEl0 => write_sysreg!("TPIDRRO_EL0", value),
        El1Reg::TpidrEl1 => write_sysreg!("TPIDR_EL1", value),
        El1Reg::Cntkctl => write_sysreg!("CNTKCTL_EL1", value),
        El1Reg::Csselr => write_sysreg!("CSSELR_EL1", value),
        El1Reg::Mdscr => write_sysreg!("MDSCR_EL1", value),
    }
}

/// Save the running vCPU's whole state into its context: the vGIC model is
/// synced first, so the list registers saved are what the model expects
/// back; the forwarded timer interrupt's physical active state is saved and
/// cleared, so the next vCPU's timer can fire.
fn save(vcpu: &mut Vcpu, regs: &GuestRegs) {
    irq::sync_list_registers(vcpu);
    let c = &mut vcpu.saved;
    c.gprs = regs.x;
    c.pc = read_sysreg!("ELR_EL2");
    c.pstate = read_sysreg!("SPSR_EL2");
    for reg in El1Reg::ALL {
        c.el1[reg as usize] = read_el1(reg);
    }
    fpsimd::save(&mut c.fp.v, &mut c.fp.fpcr, &mut c.fp.fpsr);
    c.vtimer = VtimerState {
        ctl: read_sysreg!("CNTV_CTL_EL0"),
        cval: read_sysreg!("CNTV_CVAL_EL0"),
        cntvoff: vcpu.vm.cntvoff,
        phys_active: gic::private_active(VTIMER_INTID),
    };
    write_sysreg!("CNTV_CTL_EL0", 0);
    if c.vtimer.phys_active {
        gic::deactivate(VTIMER_INTID);
    }
    let (vmcr, ap0r0, ap1r0) = gic::read_vcpu_interface();
    c.gic.vmcr = vmcr;
    c.gic.ap0r[0] = ap0r0;
    c.gic.ap1r[0] = ap1r0;
    c.gic.lrs = vcpu.lrs;
    c.gic.hcr = vcpu.ich_hcr;
    c.ptimer = PtimerState {
        ctl: vcpu.sysregs.ptimer.written_ctl(),
        cval: vcpu.sysregs.ptimer.cval(),
    };
    c.power = PowerWord::On;
}

/// Load `vcpu`'s saved state into the hardware and `regs`, then refill its
/// list registers from the model (interrupts may have arrived meanwhile).
fn load(vcpu: &mut Vcpu, regs: &mut GuestRegs) {
    let vm = vcpu.vm;
    let c = &vcpu.saved;
    write_sysreg!("VTCR_EL2", vm.vtcr);
    write_sysreg!("VTTBR_EL2", vm.vttbr);
    write_sysreg!("VMPIDR_EL2", (1 << 31) | vcpu.index as u64);
    write_sysreg!("CNTVOFF_EL2", c.vtimer.cntvoff);
    for reg in El1Reg::ALL {
        write_el1(reg, c.el1[reg as usize]);
    }
    fpsimd::restore(&c.fp.v, &c.fp.fpcr, &c.fp.fpsr);
    write_sysreg!("CNTV_CVAL_EL0", c.vtimer.cval);
    write_sysreg!("CNTV_CTL_EL0", c.vtimer.ctl);
    if c.vtimer.phys_active {
        gic::set_active(VTIMER_INTID, cpu::current_index(), true);
    }
    gic::write_vcpu_interface(c.gic.vmcr, c.gic.ap0r[0], c.gic.ap1r[0]);
    for lr in 0..vcpu.num_lrs {
        gic::write_lr(lr, vcpu.lrs[lr]);
    }
    if vcpu.ich_hcr == u64::MAX {
        // Never run: no list-register state yet.
        vcpu.ich_hcr = 0;
    }
    gic::write_ich_hcr(vcpu.ich_hcr);
    regs.x = c.gprs;
    write_sysreg!("ELR_EL2", c.pc);
    write_sysreg!("SPSR_EL2", c.pstate);
    hv_arch::sysreg::isb();
    if c.el1[El1Reg::Sctlr as usize] & 1 == 0 {
        // Stage 1 off: a vCPU fresh from reset, perhaps of a restarted VM
        // whose VMID ran here with other tables: drop what its VMID cached.
        hv_arch::cache::flush_local_guest_tlb();
    }
    irq::flush_list_registers(vcpu);
}
