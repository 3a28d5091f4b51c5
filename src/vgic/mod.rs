//! The virtual GICv3 of one VM.
//!
//! The guest's CPU interface (ICC_* registers) is virtualised by hardware;
//! this model emulates the distributor and redistributors (guest accesses
//! trap as stage-2 MMIO, see [`regs`]) and decides which interrupts sit in
//! each vCPU's list registers (ICH_LR<n>_EL2).
//!
//! Bookkeeping rules, checked by the proofs below:
//! - an interrupt is in at most one list register of at most one vCPU;
//! - between an exit ([`Vgic::sync_lrs`]) and the next entry
//!   ([`Vgic::flush_lrs`]) the model is the truth; on entry every occupied
//!   list register is rewritten from it;
//! - a pending, enabled interrupt that does not fit stays pending in the
//!   model, and the underflow maintenance interrupt is requested so it is
//!   delivered when list registers free up.

mod regs;

pub use regs::MmioResult;

/// Most vCPUs a VM may have.
pub const MAX_VCPUS: usize = 8;
/// INTIDs 0..NUM_INTIDS exist: 16 SGIs and 16 PPIs per vCPU, then SPIs.
pub const NUM_INTIDS: u32 = 128;
/// List registers the model drives at most.
pub const MAX_LRS: usize = 16;

const NUM_PRIVATE: usize = 32;
const NUM_SPIS: usize = NUM_INTIDS as usize - NUM_PRIVATE;

const LR_STATE_SHIFT: u32 = 62;
const LR_PENDING: u64 = 1 << 62;
const LR_ACTIVE: u64 = 1 << 63;
const LR_HW: u64 = 1 << 61;
const LR_GROUP1: u64 = 1 << 60;
const LR_EOI_MAINTENANCE: u64 = 1 << 41;
const LR_PRIORITY_SHIFT: u32 = 48;
const LR_PINTID_SHIFT: u32 = 32;

const ICH_HCR_EN: u64 = 1 << 0;
const ICH_HCR_UIE: u64 = 1 << 1;

/// The state of one interrupt as the guest configured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Irq {
    enabled: bool,
    /// Edge pending latch (or a write to ISPENDR).
    latch: bool,
    /// Input line level (level-sensitive interrupts).
    level: bool,
    active: bool,
    priority: u8,
    group1: bool,
    edge: bool,
    /// vCPU an SPI is routed to (GICD_IROUTER Aff0).
    target: u8,
    /// Raw GICD_IROUTER value, as the guest wrote it.
    router: u64,
    /// Physical INTID deactivated along with this one (LR HW bit).
    hw: Option<u16>,
    /// (vCPU, list register) holding this interrupt, if any.
    lr: Option<(u8, u8)>,
}

impl Irq {
    fn pending(&self) -> bool {
        self.latch || (self.level && !self.edge)
    }
}

/// One VM's virtual distributor and redistributors.
#[derive(Debug, Clone)]
pub struct Vgic {
    num_vcpus: usize,
    ctlr: u32,
    private: [[Irq; NUM_PRIVATE]; MAX_VCPUS],
    spis: [Irq; NUM_SPIS],
    /// Per vCPU, which INTID each list register holds.
    lr_owner: [[Option<u32>; MAX_LRS]; MAX_VCPUS],
    /// Per vCPU, GICR_WAKER.ProcessorSleep.
    asleep: [bool; MAX_VCPUS],
    /// HW-backed interrupts whose enable the guest changed: (physical INTID, enabled).
    hw_enable_events: [Option<(u32, bool)>; 8],
    /// Per vCPU, INTIDs that may have become deliverable since the last
    /// flush loaded everything it could (a pending edge or level, a list
    /// register freed). Lets a flush look at a few interrupts, not all 128.
    hint: [u128; MAX_VCPUS],
    /// Per vCPU: a register write may have made anything deliverable, so the
    /// next flush looks at every interrupt.
    full_scan: [bool; MAX_VCPUS],
}

impl Vgic {
    /// A VM with `num_vcpus` vCPUs (clamped to 1..=MAX_VCPUS), all interrupts at reset state.
    pub fn new(num_vcpus: usize) -> Self {
        let mut private = [[Irq::default(); NUM_PRIVATE]; MAX_VCPUS];
        for cpu in private.iter_mut() {
            for sgi in cpu.iter_mut().take(16) {
                sgi.edge = true; // SGIs are always edge-triggered
            }
        }
        Vgic {
            num_vcpus: num_vcpus.clamp(1, MAX_VCPUS),
            ctlr: 0,
            private,
            spis: [Irq::default(); NUM_SPIS],
            lr_owner: [[None; MAX_LRS]; MAX_VCPUS],
            asleep: [true; MAX_VCPUS],
            hw_enable_events: [None; 8],
            hint: [0; MAX_VCPUS],
            full_scan: [true; MAX_VCPUS],
        }
    }

    /// Note that `intid` may have become deliverable to `vcpu`.
    fn hint_irq(&mut self, vcpu: usize, intid: u32) {
        if let Some(bits) = self.hint.get_mut(vcpu) {
            *bits |= 1u128 << (intid % NUM_INTIDS);
        }
    }

    /// Note that anything may have become deliverable anywhere (register writes).
    pub(crate) fn mark_scan_all(&mut self) {
        self.full_scan = [true; MAX_VCPUS];
    }

    pub fn num_vcpus(&self) -> usize {
        self.num_vcpus
    }

    /// The interrupt `intid` as seen from `vcpu` (private ones are per vCPU).
    fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        if vcpu >= self.num_vcpus {
            return None;
        }
        match intid {
            0..=31 => Some(&self.private[vcpu][intid as usize]),
            32..NUM_INTIDS => Some(&self.spis[intid as usize - NUM_PRIVATE]),
            _ => None,
        }
    }

    fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        if vcpu >= self.num_vcpus {
            return None;
        }
        match intid {
            0..=31 => Some(&mut self.private[vcpu][intid as usize]),
            32..NUM_INTIDS => Some(&mut self.spis[intid as usize - NUM_PRIVATE]),
            _ => None,
        }
    }

    /// The vCPU an interrupt is delivered to.
    fn target_of(&self, vcpu: usize, intid: u32) -> usize {
        if intid < 32 {
            vcpu
        } else {
            self.irq(vcpu, intid).map_or(0, |i| usize::from(i.target))
        }
    }

    fn group_enabled(&self, irq: &Irq) -> bool {
        // GICD_CTLR (non-secure view): EnableGrp1 (bit 0) / EnableGrp1A (bit 1).
        irq.group1 && self.ctlr & 0b11 != 0
    }

    fn deliverable(&self, irq: &Irq) -> bool {
        irq.enabled && irq.pending() && !irq.active && self.group_enabled(irq)
    }

    /// Latch an edge on `intid` (`vcpu_for_private` names the vCPU for SGIs/PPIs).
    /// Returns the vCPU to kick if the interrupt can now be delivered.
    pub fn set_pending(&mut self, intid: u32, vcpu_for_private: usize) -> Option<usize> {
        let irq = self.irq_mut(vcpu_for_private, intid)?;
        irq.latch = true;
        let irq = *irq;
        let target = self.target_of(vcpu_for_private, intid);
        self.hint_irq(target, intid);
        (self.deliverable(&irq) || (irq.enabled && irq.lr.is_some())).then_some(target)
    }

    /// Drive the input line of a level-sensitive interrupt.
    pub fn set_level(&mut self, intid: u32, vcpu_for_private: usize, level: bool) -> Option<usize> {
        let irq = self.irq_mut(vcpu_for_private, intid)?;
        irq.level = level;
        let irq = *irq;
        let target = self.target_of(vcpu_for_private, intid);
        self.hint_irq(target, intid);
        (level && self.deliverable(&irq)).then_some(target)
    }

    /// Back `intid` with physical interrupt `pintid` (list-register HW bit).
    pub fn set_hw(&mut self, intid: u32, vcpu: usize, pintid: Option<u32>) {
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.hw = pintid
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p < 1020);
        }
    }

    /// HW-backed interrupts the guest enabled or disabled since the last
    /// call, as (physical INTID, enabled, vCPU the interrupt is routed to).
    pub fn take_hw_enable_changes(&mut self) -> [Option<(u32, bool, usize)>; 8] {
        let events = self.hw_enable_events;
        self.hw_enable_events = [None; 8];
        events.map(|e| e.map(|(pintid, enabled)| (pintid, enabled, self.route_of(pintid))))
    }

    /// The vCPU an SPI is routed to (0 for anything else).
    pub fn route_of(&self, intid: u32) -> usize {
        if intid >= 32 {
            self.target_of(0, intid)
        } else {
            0
        }
    }

    fn note_enable_change(&mut self, vcpu: usize, intid: u32, enabled: bool) {
        let Some(hw) = self.irq(vcpu, intid).and_then(|i| i.hw) else {
            return;
        };
        if let Some(slot) = self
            .hw_enable_events
            .iter_mut()
            .find(|e| e.is_none() || e.is_some_and(|(p, _)| p == u32::from(hw)))
        {
            *slot = Some((u32::from(hw), enabled));
        }
    }

    /// ICC_SGI1R_EL1 write by `sender`: mark the SGI pending on its targets.
    /// Returns the bitmask of vCPUs to kick.
    pub fn send_sgi(&mut self, sender: usize, sgi1r: u64) -> u32 {
        let intid = ((sgi1r >> 24) & 0xf) as u32;
        let broadcast = sgi1r & (1 << 40) != 0;
        let aff1 = (sgi1r >> 16) & 0xff;
        let aff2 = (sgi1r >> 32) & 0xff;
        let aff3 = (sgi1r >> 48) & 0xff;
        let range_selector = (sgi1r >> 44) & 0xf;
        let target_list = sgi1r & 0xffff;
        let mut kick = 0;
        for vcpu in 0..self.num_vcpus {
            let targeted = if broadcast {
                vcpu != sender
            } else {
                // Virtual MPIDRs have Aff0 = index and Aff1..3 = 0.
                aff1 == 0
                    && aff2 == 0
                    && aff3 == 0
                    && range_selector == 0
                    && target_list & (1 << vcpu) != 0
            };
            if targeted && self.set_pending(intid, vcpu).is_some() {
                kick |= 1 << vcpu;
            }
        }
        kick
    }

    /// Whether `vcpu` has an interrupt it could take now (in a list register
    /// as pending, or deliverable from the model).
    pub fn has_pending(&self, vcpu: usize) -> bool {
        if vcpu >= self.num_vcpus {
            return false;
        }
        self.private[vcpu]
            .iter()
            .any(|i| self.deliverable(i) || (i.lr.is_some() && i.pending() && i.enabled))
            || self.spis.iter().any(|i| {
                usize::from(i.target) == vcpu
                    && (self.deliverable(i) || (i.lr.is_some() && i.pending() && i.enabled))
            })
    }

    /// Read back the list registers of `vcpu` after an exit: what the guest
    /// acknowledged became active, what it completed became invalid.
    pub fn sync_lrs(&mut self, vcpu: usize, lrs: &[u64]) {
        if vcpu >= self.num_vcpus {
            return;
        }
        for (n, &lr) in lrs.iter().enumerate().take(MAX_LRS) {
            let Some(intid) = self.lr_owner[vcpu][n] else {
                continue;
            };
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            let state = lr >> LR_STATE_SHIFT;
            irq.active = state & 0b10 != 0;
            // The list register held the pending state since the last entry
            // (flush moved it there); take it back if the guest did not
            // acknowledge it. A new edge latched meanwhile stays latched.
            if state & 0b01 != 0 {
                irq.latch = true;
            }
            if state == 0 {
                irq.lr = None;
                self.lr_owner[vcpu][n] = None;
                // Completed: a new edge latched meanwhile is now deliverable.
                self.hint_irq(vcpu, intid);
            }
        }
    }

    fn lr_value(intid: u32, irq: &Irq) -> u64 {
        let mut lr = u64::from(intid) | (u64::from(irq.priority) << LR_PRIORITY_SHIFT);
        if irq.group1 {
            lr |= LR_GROUP1;
        }
        if let Some(p) = irq.hw {
            lr |= LR_HW | (u64::from(p) << LR_PINTID_SHIFT);
        } else if !irq.edge {
            // Level-sensitive: exit on deactivation to resample the line.
            lr |= LR_EOI_MAINTENANCE;
        }
        let pending = irq.pending() && irq.enabled;
        // Pending-and-active is not allowed with HW=1; the physical interrupt
        // cannot fire again while active anyway.
        let pending = pending && !(irq.active && irq.hw.is_some());
        if pending {
            lr |= LR_PENDING;
        }
        if irq.active {
            lr |= LR_ACTIVE;
        }
        lr
    }

    /// Fill the list registers of `vcpu` before entering it; returns the
    /// ICH_HCR_EL2 value to program.
    pub fn flush_lrs(&mut self, vcpu: usize, lrs: &mut [u64]) -> u64 {
        if vcpu >= self.num_vcpus {
            return ICH_HCR_EN;
        }
        let n = lrs.len().min(MAX_LRS);
        // 1. Rewrite occupied list registers from the model; drop the ones
        //    with nothing left to show (completed, cleared or disabled).
        for (slot, lr) in lrs.iter_mut().enumerate().take(n) {
            *lr = 0;
            let Some(intid) = self.lr_owner[vcpu][slot] else {
                continue;
            };
            let Some(irq) = self.irq(vcpu, intid).copied() else {
                continue;
            };
            let keep = irq.active || (irq.pending() && irq.enabled && self.group_enabled(&irq));
            if keep {
                *lr = self.place(vcpu, intid);
            } else {
                self.release(vcpu, slot, intid);
            }
        }
        // 2. Load deliverable interrupts, highest priority first, evicting a
        //    lower-priority pending-only entry when all registers are taken.
        let mut overflow = false;
        while let Some(intid) = self.next_candidate(vcpu) {
            let prio = self.irq(vcpu, intid).map_or(u8::MAX, |i| i.priority);
            let slot = match (0..n).find(|&s| self.lr_owner[vcpu][s].is_none()) {
                Some(free) => free,
                None => match self.eviction_victim(vcpu, lrs, n, prio) {
                    Some(victim) => {
                        let old = self.lr_owner[vcpu][victim].unwrap_or(0);
                        self.release(vcpu, victim, old);
                        // Its pending state goes back to the model.
                        if let Some(irq) = self.irq_mut(vcpu, old) {
                            irq.latch = true;
                        }
                        self.hint_irq(vcpu, old);
                        victim
                    }
                    None => {
                        overflow = true;
                        break;
                    }
                },
            };
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                break;
            };
            irq.lr = Some((vcpu as u8, slot as u8));
            self.lr_owner[vcpu][slot] = Some(intid);
            lrs[slot] = self.place(vcpu, intid);
        }
        if overflow {
            ICH_HCR_EN | ICH_HCR_UIE
        } else {
            // Everything deliverable is loaded; start collecting hints afresh.
            self.full_scan[vcpu] = false;
            self.hint[vcpu] = 0;
            ICH_HCR_EN
        }
    }

    /// The list-register value for `intid`; its pending state moves from the
    /// model's latch into the list register.
    fn place(&mut self, vcpu: usize, intid: u32) -> u64 {
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return 0;
        };
        let lr = Self::lr_value(intid, irq);
        if lr & LR_PENDING != 0 {
            irq.latch = false;
        }
        lr
    }

    /// The vCPU is (re)starting with empty list registers: forget what they held.
    pub fn forget_lrs(&mut self, vcpu: usize) {
        if vcpu >= self.num_vcpus {
            return;
        }
        for slot in 0..MAX_LRS {
            if let Some(intid) = self.lr_owner[vcpu][slot] {
                self.release(vcpu, slot, intid);
            }
        }
        self.full_scan[vcpu] = true;
    }

    fn release(&mut self, vcpu: usize, slot: usize, intid: u32) {
        self.lr_owner[vcpu][slot] = None;
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.lr = None;
        }
    }

    fn candidate(&self, vcpu: usize, intid: u32) -> Option<(u8, u32)> {
        let irq = self.irq(vcpu, intid)?;
        (irq.lr.is_none() && self.deliverable(irq) && self.target_of(vcpu, intid) == vcpu)
            .then_some((irq.priority, intid))
    }

    /// The next interrupt to load: the best of the hinted ones, or of all
    /// after a register write.
    fn next_candidate(&self, vcpu: usize) -> Option<u32> {
        if self.full_scan[vcpu] {
            return self.best_candidate(vcpu);
        }
        let mut bits = self.hint[vcpu];
        let mut best = None;
        while bits != 0 {
            let intid = bits.trailing_zeros();
            bits &= bits - 1;
            if let Some(c) = self.candidate(vcpu, intid) {
                best = Some(best.map_or(c, |b: (u8, u32)| b.min(c)));
            }
        }
        best.map(|(_, intid)| intid)
    }

    /// Highest-priority deliverable interrupt for `vcpu` not already in a
    /// list register, looking at every interrupt.
    fn best_candidate(&self, vcpu: usize) -> Option<u32> {
        let private = self.private[vcpu]
            .iter()
            .enumerate()
            .map(|(i, irq)| (i as u32, irq));
        let spis = self
            .spis
            .iter()
            .enumerate()
            .map(|(i, irq)| (i as u32 + 32, irq));
        private
            .chain(spis)
            .filter(|(intid, irq)| {
                irq.lr.is_none() && self.deliverable(irq) && self.target_of(vcpu, *intid) == vcpu
            })
            .min_by_key(|(intid, irq)| (irq.priority, *intid))
            .map(|(intid, _)| intid)
    }

    /// A list register holding a pending-only interrupt of lower priority than `prio`.
    fn eviction_victim(&self, vcpu: usize, lrs: &[u64], n: usize, prio: u8) -> Option<usize> {
        (0..n)
            .filter(|&s| lrs[s] >> LR_STATE_SHIFT == 0b01)
            .filter_map(|s| Some((s, self.irq(vcpu, self.lr_owner[vcpu][s]?)?.priority)))
            .filter(|&(_, p)| p > prio)
            .max_by_key(|&(_, p)| p)
            .map(|(s, _)| s)
    }

    /// GICD access by `vcpu` at `offset` in the distributor frame.
    pub fn dist_access(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: u8,
        write: bool,
        value: u64,
    ) -> MmioResult {
        regs::dist_access(self, vcpu, offset, size, write, value)
    }

    /// GICR access at `offset` in the redistributor region (128 KiB per vCPU).
    pub fn redist_access(&mut self, offset: u64, size: u8, write: bool, value: u64) -> MmioResult {
        if write {
            self.mark_scan_all();
        }
        regs::redist_access(self, offset, size, write, value)
    }
}

#[cfg(test)]
mod tests;

#[cfg(any(test, kani))]
mod proofs;
