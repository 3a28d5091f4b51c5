//! The virtual GICv3 of one VM.
//!
//! The guest's CPU interface (ICC_* registers) is virtualised by hardware;
//! this model emulates the distributor and redistributors (guest accesses
//! trap as stage-2 MMIO, see [`regs`]) and decides which interrupts sit in
//! each vCPU's list registers (ICH_LR<n>_EL2, see [`lrs`]).
//!
//! The guest sees a GIC with a single security state (GICD_CTLR.DS = 1),
//! affinity routing always on, 128 INTIDs, no LPIs, and 5 priority bits.
//! Virtual MPIDRs are Aff0 = vCPU index, Aff1..Aff3 = 0.
//!
//! Bookkeeping rules, checked by the proofs in `proofs.rs`:
//! - an interrupt is in at most one list register of at most one vCPU;
//! - between an exit ([`Vgic::sync_lrs`]) and the next entry
//!   ([`Vgic::flush_lrs`]) the model is the truth; on entry every occupied
//!   list register is rewritten from it;
//! - a pending, enabled interrupt that does not fit stays pending in the
//!   model, and the underflow maintenance interrupt is requested so it is
//!   delivered when list registers free up;
//! - a flush never leaves a maintenance condition asserted
//!   ([`maintenance_asserted`] of its list registers and ICH_HCR_EL2 is
//!   false), so handling the maintenance interrupt by a sync and a flush
//!   always ends it (no livelock at EL2);
//! - an interrupt backed by a physical one (list-register HW bit) keeps its
//!   physical twin active exactly while it is pending or active here; the
//!   changes the glue must make are queued ([`Vgic::take_hw_active_changes`]).
//!
//! The sizes are type parameters so that proofs run on a small instance:
//! `Vgic` (the defaults) is the hypervisor's, with [`MAX_VCPUS`] vCPUs,
//! [`NUM_INTIDS`] INTIDs and [`MAX_LRS`] list registers.

mod lrs;
mod regs;

pub use lrs::{maintenance_asserted, Refill, ICH_HCR_EN, ICH_HCR_UIE};
pub use regs::{dist_needs_lr_sync, redist_needs_lr_sync, MmioResult};

/// Most vCPUs a VM may have.
pub const MAX_VCPUS: usize = 8;
/// INTIDs 0..NUM_INTIDS exist: 16 SGIs and 16 PPIs per vCPU, then SPIs.
pub const NUM_INTIDS: u32 = 128;
/// List registers the model drives at most (the architectural maximum).
pub const MAX_LRS: usize = 16;
/// Most changes [`Vgic::take_hw_enable_changes`] hands out per call.
pub const HW_CHANGES_PER_CALL: usize = 8;

const NUM_PRIVATE: usize = 32;
/// SPIs of the hypervisor's vGIC.
pub const NUM_SPIS: usize = NUM_INTIDS as usize - NUM_PRIVATE;
/// Priority bits kept: QEMU's CPU interface implements 5 (the minimum), and
/// the list registers' unimplemented low bits are RES0.
const PRIORITY_MASK: u8 = 0xf8;
/// Physical INTIDs at or above this are special (1020-1023) or LPIs.
const FIRST_SPECIAL_INTID: u32 = 1020;

/// GICD_CTLR enable bits in the single-security-state view.
const CTLR_ENABLE_GRP0: u32 = 1 << 0;
const CTLR_ENABLE_GRP1: u32 = 1 << 1;

/// The state of one interrupt as the guest configured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Irq {
    enabled: bool,
    /// Pending latch: an edge, a write to ISPENDR, or a HW interrupt taken.
    latch: bool,
    /// The pending state of the list register holding this interrupt came
    /// from `latch` (moved there by a flush). Given back to `latch` while
    /// the list register still shows it pending, so nothing is lost or
    /// invented whether the pending state came from the latch or the line.
    lr_latched: bool,
    /// Input line level (level-sensitive interrupts).
    level: bool,
    active: bool,
    priority: u8,
    group1: bool,
    edge: bool,
    /// vCPU an SPI is routed to (from GICD_IROUTER).
    target: u8,
    /// Raw GICD_IROUTER value, as the guest wrote it (writable fields only).
    router: u64,
    /// Physical INTID deactivated along with this one (LR HW bit).
    hw: Option<u16>,
    /// (vCPU, list register) holding this interrupt, if any.
    lr: Option<(u8, u8)>,
    /// HW-backed: the physical twin is active (taken by the hypervisor and
    /// not yet deactivated). Kept equal to `active || pending_anywhere()`.
    phys_active: bool,
}

/// Reset state of one interrupt: disabled, Group 0, priority 0, level.
const IRQ_RESET: Irq = Irq {
    enabled: false,
    latch: false,
    lr_latched: false,
    level: false,
    active: false,
    priority: 0,
    group1: false,
    edge: false,
    target: 0,
    router: 0,
    hw: None,
    lr: None,
    phys_active: false,
};

/// Reset state of one vCPU's SGIs and PPIs (SGIs are always edge).
/// Built at compile time, so `Vgic::new` has no loop over them.
const PRIVATE_RESET: [Irq; NUM_PRIVATE] = {
    let mut irqs = [IRQ_RESET; NUM_PRIVATE];
    let mut i = 0;
    while i < 16 {
        irqs[i].edge = true;
        i += 1;
    }
    irqs
};

/// A change the glue must make to the physical twin of a HW-backed
/// interrupt: make it active or inactive. `vcpu` names the redistributor
/// (for SGIs/PPIs: the physical CPU running that vCPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HwActiveChange {
    pub pintid: u32,
    pub vcpu: usize,
    pub active: bool,
}

impl Irq {
    /// Pending as the model sees it between an exit and the next entry.
    fn pending(&self) -> bool {
        self.latch || (self.level && !self.edge)
    }

    /// Pending in the model or in the list register the last flush wrote.
    fn pending_anywhere(&self) -> bool {
        self.pending() || self.lr_latched
    }
}

/// One VM's virtual distributor and redistributors, for at most `V`
/// vCPUs, with `S` SPIs (INTIDs `32..32 + S`, `S` <= 96) and at most `L`
/// list registers per vCPU.
#[derive(Debug, Clone)]
pub struct Vgic<const V: usize = MAX_VCPUS, const S: usize = NUM_SPIS, const L: usize = MAX_LRS> {
    num_vcpus: usize,
    /// GICD_CTLR EnableGrp0 / EnableGrp1.
    ctlr: u32,
    private: [[Irq; NUM_PRIVATE]; V],
    spis: [Irq; S],
    /// Per vCPU, which INTID each list register holds.
    lr_owner: [[Option<u32>; L]; V],
    /// Per vCPU, the list registers `lr_owner` says are held (bit = register).
    lr_used: [u32; V],
    /// Per vCPU, GICR_WAKER.ProcessorSleep.
    asleep: [bool; V],
    /// HW-backed SPIs (bit = INTID) whose enable or routing the guest
    /// changed and the glue has not yet been told about.
    hw_changed: u128,
    /// Per vCPU, INTIDs that may have become deliverable since the last
    /// flush loaded everything it could (a pending edge or level, a list
    /// register freed). Lets a flush look at a few interrupts, not all 128.
    hint: [u128; V],
    /// Per vCPU: anything may have become deliverable (a group enabled, the
    /// vCPU restarted), so the next flush looks at every interrupt.
    full_scan: [bool; V],
    /// HW-backed interrupts whose physical active state must change (bit =
    /// INTID): per vCPU for SGIs/PPIs, one mask for SPIs.
    phys_changed_private: [u32; V],
    phys_changed_spis: u128,
    /// Some bit above is set (checked on every entry, so kept cheap).
    phys_changed_any: bool,
}

impl<const V: usize, const S: usize, const L: usize> Vgic<V, S, L> {
    /// INTIDs 0..INTIDS exist.
    pub const INTIDS: u32 = {
        assert!(
            S <= 96 && V >= 1 && V <= 32 && L <= 32,
            "vGIC size out of range"
        );
        (NUM_PRIVATE + S) as u32
    };

    /// A VM with `num_vcpus` vCPUs (clamped to 1..=V), all interrupts
    /// at reset state: disabled, Group 0, priority 0, level-sensitive (SGIs
    /// edge), SPIs routed to vCPU 0, redistributors asleep.
    pub fn new(num_vcpus: usize) -> Self {
        Vgic {
            num_vcpus: num_vcpus.clamp(1, V),
            ctlr: 0,
            private: [PRIVATE_RESET; V],
            spis: [IRQ_RESET; S],
            lr_owner: [[None; L]; V],
            lr_used: [0; V],
            asleep: [true; V],
            hw_changed: 0,
            hint: [0; V],
            full_scan: [true; V],
            phys_changed_private: [0; V],
            phys_changed_spis: 0,
            phys_changed_any: false,
        }
    }

    pub fn num_vcpus(&self) -> usize {
        self.num_vcpus
    }

    /// Note that `intid` may have become deliverable to `vcpu`.
    fn hint_irq(&mut self, vcpu: usize, intid: u32) {
        if let Some(bits) = self.hint.get_mut(vcpu) {
            *bits |= 1u128 << (intid % 128);
        }
    }

    /// A register write changed the interrupts `first + i` for each bit `i`
    /// of `mask` (as seen from `vcpu`): they may have become deliverable to
    /// that vCPU (SGIs/PPIs) or, for SPIs, to any. `mask` never spans private
    /// interrupts and SPIs (register words cover 32-aligned INTID ranges).
    fn note_written(&mut self, vcpu: usize, first: u32, mask: u32) {
        let bits = u128::from(mask) << (first % 128);
        if first < 32 {
            if let Some(hint) = self.hint.get_mut(vcpu) {
                *hint |= bits;
            }
        } else {
            for hint in self.hint.iter_mut().take(self.num_vcpus) {
                *hint |= bits;
            }
        }
    }

    /// Note that anything may have become deliverable anywhere (a group enabled).
    fn mark_scan_all(&mut self) {
        self.full_scan = [true; V];
    }

    /// The interrupt `intid` as seen from `vcpu` (private ones are per vCPU;
    /// SPIs are the same from any vCPU).
    fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        match intid {
            0..=31 if vcpu < self.num_vcpus => self.private.get(vcpu)?.get(intid as usize),
            32.. => self.spis.get(intid as usize - NUM_PRIVATE),
            _ => None,
        }
    }

    fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        match intid {
            0..=31 if vcpu < self.num_vcpus => self.private.get_mut(vcpu)?.get_mut(intid as usize),
            32.. => self.spis.get_mut(intid as usize - NUM_PRIVATE),
            _ => None,
        }
    }

    /// The vCPU an interrupt is routed to.
    fn target_of(&self, vcpu: usize, intid: u32) -> usize {
        if intid < 32 {
            vcpu
        } else {
            self.irq(vcpu, intid).map_or(0, |i| usize::from(i.target))
        }
    }

    /// The vCPU that must act on `intid` now: the one whose list register
    /// holds it (an SPI rerouted while in flight finishes where it started),
    /// else the one it is routed to.
    fn owner_of(&self, vcpu: usize, intid: u32) -> usize {
        match self.irq(vcpu, intid).and_then(|i| i.lr) {
            Some((holder, _)) => usize::from(holder),
            None => self.target_of(vcpu, intid),
        }
    }

    fn group_enabled(&self, irq: &Irq) -> bool {
        let bit = if irq.group1 {
            CTLR_ENABLE_GRP1
        } else {
            CTLR_ENABLE_GRP0
        };
        self.ctlr & bit != 0
    }

    /// Could be loaded into a list register as pending now.
    fn deliverable(&self, irq: &Irq) -> bool {
        irq.enabled && irq.pending() && !irq.active && self.group_enabled(irq)
    }

    /// Whether a list register holding `irq` shows it pending. With the HW
    /// bit, pending-and-active is not a valid list-register state; the
    /// physical interrupt cannot fire again while active anyway.
    fn shows_pending(&self, irq: &Irq) -> bool {
        irq.enabled
            && irq.pending_anywhere()
            && self.group_enabled(irq)
            && !(irq.active && irq.hw.is_some())
    }

    /// Latch an edge on `intid` (`vcpu_for_private` names the vCPU for
    /// SGIs/PPIs). Returns the vCPU to kick if the interrupt can now be
    /// delivered; `None` for an unknown INTID or vCPU.
    pub fn set_pending(&mut self, intid: u32, vcpu_for_private: usize) -> Option<usize> {
        let irq = self.irq_mut(vcpu_for_private, intid)?;
        irq.latch = true;
        let irq = *irq;
        self.became_pending(irq, intid, vcpu_for_private)
    }

    /// `irq` (INTID `intid`) just became pending: the vCPU to kick, if any.
    /// Already in a list register, the holder's next entry shows it there
    /// (pending, or pending and active); otherwise its target's next flush
    /// is hinted to look at it.
    fn became_pending(&mut self, irq: Irq, intid: u32, vcpu_for_private: usize) -> Option<usize> {
        if let Some((holder, _)) = irq.lr {
            return (irq.enabled && self.group_enabled(&irq)).then_some(usize::from(holder));
        }
        let target = self.target_of(vcpu_for_private, intid);
        self.hint_irq(target, intid);
        self.deliverable(&irq).then_some(target)
    }

    /// Drive the input line of a level-sensitive interrupt. Returns the vCPU
    /// to kick when the line rose on a deliverable interrupt.
    ///
    /// This is the API for software level interrupts (emulated devices): call
    /// it with the device's output whenever it may have changed; the
    /// interrupt is pending exactly while the line is high (or a guest
    /// ISPENDR write latched it). For a HW-backed interrupt the glue calls it
    /// with `false` when it sees the physical line drop (the virtual timer's
    /// output on every exit that syncs): the interrupt stops being pending
    /// and its physical twin is deactivated unless the guest has it active.
    pub fn set_level(&mut self, intid: u32, vcpu_for_private: usize, level: bool) -> Option<usize> {
        let irq = self.irq_mut(vcpu_for_private, intid)?;
        if irq.level == level {
            return None;
        }
        irq.level = level;
        let irq = *irq;
        if irq.hw.is_some() {
            self.update_phys(vcpu_for_private, intid);
        }
        if irq.lr.is_some() {
            // In a list register: a level-sensitive entry asks for a
            // maintenance exit on deactivation, which resamples the line.
            return None;
        }
        let target = self.target_of(vcpu_for_private, intid);
        self.hint_irq(target, intid);
        (level && self.deliverable(&irq)).then_some(target)
    }

    /// The physical twin of HW-backed `intid` fired and the glue took it
    /// (priority dropped, still active): the virtual interrupt becomes
    /// pending (as an edge or as a high line, as the guest configured it).
    /// Returns the vCPU to kick.
    pub fn hw_fired(&mut self, intid: u32, vcpu_for_private: usize) -> Option<usize> {
        let irq = self.irq_mut(vcpu_for_private, intid)?;
        irq.phys_active = true;
        if irq.edge {
            return self.set_pending(intid, vcpu_for_private);
        }
        irq.level = true;
        let irq = *irq;
        self.became_pending(irq, intid, vcpu_for_private)
    }

    /// Keep a HW-backed interrupt's physical twin active exactly while the
    /// virtual one is pending or active, queueing the change for the glue.
    /// (A pending HW-backed interrupt is completed by the guest through the
    /// list register, which deactivates the twin; a twin left active would
    /// never fire again.)
    fn update_phys(&mut self, vcpu: usize, intid: u32) {
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        if irq.hw.is_none() {
            return;
        }
        let want = irq.active || irq.pending_anywhere();
        if want == irq.phys_active {
            return;
        }
        irq.phys_active = want;
        self.phys_changed_any = true;
        if intid < 32 {
            if let Some(bits) = self.phys_changed_private.get_mut(vcpu) {
                *bits |= 1 << intid;
            }
        } else {
            self.phys_changed_spis |= 1u128 << (intid % 128);
        }
    }

    /// Physical twins whose active state must change, as the vGIC wants it
    /// now. At most [`HW_CHANGES_PER_CALL`] per call; the rest stay queued
    /// (see [`Vgic::has_hw_active_changes`]).
    pub fn take_hw_active_changes(&mut self) -> [Option<HwActiveChange>; HW_CHANGES_PER_CALL] {
        let mut out = [None; HW_CHANGES_PER_CALL];
        for slot in out.iter_mut() {
            let (vcpu, intid) =
                if let Some(vcpu) = self.phys_changed_private.iter().position(|b| *b != 0) {
                    let bits = &mut self.phys_changed_private[vcpu];
                    let intid = bits.trailing_zeros();
                    *bits &= !(1 << intid);
                    (vcpu, intid)
                } else if self.phys_changed_spis != 0 {
                    let intid = self.phys_changed_spis.trailing_zeros();
                    self.phys_changed_spis &= !(1u128 << intid);
                    (self.target_of(0, intid), intid)
                } else {
                    self.phys_changed_any = false;
                    break;
                };
            if let Some(irq) = self.irq(vcpu, intid) {
                if let Some(pintid) = irq.hw {
                    *slot = Some(HwActiveChange {
                        pintid: u32::from(pintid),
                        vcpu,
                        active: irq.phys_active,
                    });
                }
            }
        }
        out
    }

    /// Whether [`Vgic::take_hw_active_changes`] has more to hand out.
    pub fn has_hw_active_changes(&self) -> bool {
        self.phys_changed_any
    }

    /// Back `intid` with physical interrupt `pintid` (list-register HW bit),
    /// or stop doing so with `None`. Physical INTIDs >= 1020 are refused.
    pub fn set_hw(&mut self, intid: u32, vcpu: usize, pintid: Option<u32>) {
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.hw = pintid
                .filter(|p| *p < FIRST_SPECIAL_INTID)
                .and_then(|p| u16::try_from(p).ok());
        }
    }

    /// Whether the guest has `intid` enabled (as seen from `vcpu` for SGIs/PPIs).
    pub fn is_enabled(&self, intid: u32, vcpu: usize) -> bool {
        self.irq(vcpu, intid).is_some_and(|i| i.enabled)
    }

    /// HW-backed SPIs whose enable or routing the guest changed since they
    /// were last handed out, as (physical INTID, enabled, vCPU it is routed
    /// to). At most [`HW_CHANGES_PER_CALL`] per call; the rest stay queued
    /// for the next call (see [`Vgic::has_hw_enable_changes`]), none is
    /// dropped. Private interrupts are not reported.
    pub fn take_hw_enable_changes(&mut self) -> [Option<(u32, bool, usize)>; HW_CHANGES_PER_CALL] {
        let mut out = [None; HW_CHANGES_PER_CALL];
        for slot in out.iter_mut() {
            if self.hw_changed == 0 {
                break;
            }
            let intid = self.hw_changed.trailing_zeros();
            self.hw_changed &= !(1u128 << intid);
            if let Some(irq) = self.irq(0, intid) {
                if let Some(pintid) = irq.hw {
                    *slot = Some((u32::from(pintid), irq.enabled, usize::from(irq.target)));
                }
            }
        }
        out
    }

    /// Whether [`Vgic::take_hw_enable_changes`] has more to hand out.
    pub fn has_hw_enable_changes(&self) -> bool {
        self.hw_changed != 0
    }

    /// The vCPU an SPI is routed to (0 for anything else).
    pub fn route_of(&self, intid: u32) -> usize {
        if intid >= 32 {
            self.target_of(0, intid)
        } else {
            0
        }
    }

    /// Queue a report for the glue if `intid` is a HW-backed SPI.
    fn note_hw_change(&mut self, intid: u32) {
        if intid >= 32 && self.irq(0, intid).is_some_and(|i| i.hw.is_some()) {
            self.hw_changed |= 1u128 << (intid % 128);
        }
    }

    /// ICC_SGI1R_EL1 write by `sender`: mark the SGI pending on its targets.
    /// Returns the bitmask of vCPUs to kick (never a vCPU >= num_vcpus).
    pub fn send_sgi(&mut self, sender: usize, sgi1r: u64) -> u32 {
        let intid = ((sgi1r >> 24) & 0xf) as u32;
        let broadcast = sgi1r & (1 << 40) != 0;
        let aff1 = (sgi1r >> 16) & 0xff;
        let aff2 = (sgi1r >> 32) & 0xff;
        let aff3 = (sgi1r >> 48) & 0xff;
        let range_selector = (sgi1r >> 44) & 0xf;
        let target_list = sgi1r & 0xffff;
        // Virtual MPIDRs have Aff0 = index and Aff1..3 = 0, so a list
        // naming another cluster or range matches nobody.
        let list_matches_cluster = aff1 == 0 && aff2 == 0 && aff3 == 0 && range_selector == 0;
        let mut kick = 0;
        for vcpu in 0..self.num_vcpus {
            let targeted = if broadcast {
                vcpu != sender
            } else {
                list_matches_cluster && target_list & (1 << vcpu) != 0
            };
            if targeted {
                if let Some(owner) = self.set_pending(intid, vcpu) {
                    kick |= 1 << owner;
                }
            }
        }
        kick
    }

    /// Whether `vcpu` has an interrupt it could take now, in a list register
    /// or in the model (for WFI: whether to block). Ignores the guest's
    /// priority mask, so a WFI may return early, which the architecture allows.
    pub fn has_pending(&self, vcpu: usize) -> bool {
        if vcpu >= self.num_vcpus {
            return false;
        }
        let waiting = |intid: u32, irq: &Irq| {
            self.shows_pending(irq)
                && (!irq.active || irq.lr.is_some())
                && self.owner_of(vcpu, intid) == vcpu
        };
        let private = self.private[vcpu]
            .iter()
            .enumerate()
            .any(|(i, irq)| waiting(i as u32, irq));
        private
            || self
                .spis
                .iter()
                .enumerate()
                .any(|(i, irq)| waiting(i as u32 + 32, irq))
    }

    /// GICD access by `vcpu` at `offset` in the 64 KiB distributor frame.
    pub fn dist_access(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: u8,
        write: bool,
        value: u64,
    ) -> MmioResult {
        // Writes hint what they changed (see `note_written`).
        regs::dist_access(self, vcpu, offset, size, write, value)
    }

    /// GICR access at `offset` in the redistributor region: vCPU i owns
    /// `[i * 0x20000, (i + 1) * 0x20000)`, its RD_base frame then its SGI_base
    /// frame. Beyond the last vCPU's frames there is no redistributor: the
    /// access is bad (the glue injects an external abort).
    pub fn redist_access(&mut self, offset: u64, size: u8, write: bool, value: u64) -> MmioResult {
        // Writes hint what they changed (see `note_written`).
        regs::redist_access(self, offset, size, write, value)
    }
}

#[cfg(test)]
mod tests;

#[cfg(any(test, kani))]
mod proofs;

#[cfg(any(test, kani))]
mod lrs_proofs;

#[cfg(test)]
mod regs_tests;
