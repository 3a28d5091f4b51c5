//! List registers: which interrupts each vCPU's ICH_LR<n>_EL2 hold.
//!
//! On every exit the glue reads the list registers back ([`Vgic::sync_lrs`]):
//! the hardware moved what the guest acknowledged from pending to active and
//! what it completed to invalid. Just before entry it asks for new contents
//! ([`Vgic::flush_lrs`]): occupied registers are rewritten from the model,
//! free ones get the best deliverable interrupts.

// Index loops on purpose: for Kani far cheaper than iterators (see `lrs`).
#![allow(clippy::needless_range_loop)]

use super::{at, bit, Vgic, PRIORITY_MASK, PRIORITY_PLANES};

const LR_STATE_SHIFT: u32 = 62;
const LR_STATE_PENDING: u64 = 0b01;
const LR_STATE_ACTIVE: u64 = 0b10;
const LR_PENDING: u64 = LR_STATE_PENDING << LR_STATE_SHIFT;
const LR_ACTIVE: u64 = LR_STATE_ACTIVE << LR_STATE_SHIFT;
const LR_HW: u64 = 1 << 61;
const LR_GROUP1: u64 = 1 << 60;
/// With HW = 0: maintenance interrupt when the guest deactivates the entry.
const LR_EOI_MAINTENANCE: u64 = 1 << 41;
const LR_PRIORITY_SHIFT: u32 = 48;
const LR_PINTID_SHIFT: u32 = 32;

/// ICH_HCR_EL2.En: the virtual CPU interface is on.
pub const ICH_HCR_EN: u64 = 1 << 0;
/// ICH_HCR_EL2.UIE: maintenance interrupt when at most one list register is
/// valid, so interrupts that did not fit get loaded.
pub const ICH_HCR_UIE: u64 = 1 << 1;
/// ICH_HCR_EL2.LRENPIE: maintenance interrupt while EOIcount is non-zero.
const ICH_HCR_LRENPIE: u64 = 1 << 2;
/// ICH_HCR_EL2.NPIE: maintenance interrupt while no list register is pending.
const ICH_HCR_NPIE: u64 = 1 << 3;
const ICH_HCR_EOICOUNT_SHIFT: u32 = 27;

fn lr_state(lr: u64) -> u64 {
    lr >> LR_STATE_SHIFT
}

/// Bits `0..n` (list-register slots below `n`).
fn slots_below(n: usize) -> u32 {
    1u32.checked_shl(n as u32).map_or(u32::MAX, |b| b - 1)
}

/// The list-register slots to look at for `mask` from `from` up to `to`,
/// lowest first: at run time its set bits; under Kani every slot in the
/// range (each a concrete index for the proofs), which the caller skips
/// unless it is in `mask`. Either way the same slots, in the same order.
#[inline(always)]
fn slots(mask: u32, from: usize, to: usize) -> impl Iterator<Item = usize> {
    #[cfg(not(kani))]
    return SetBits(mask & slots_below(to) & !slots_below(from));
    #[cfg(kani)]
    return {
        let _ = mask;
        from..to
    };
}

/// The set bits of a mask, lowest first.
#[cfg(not(kani))]
struct SetBits(u32);

#[cfg(not(kani))]
impl Iterator for SetBits {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let slot = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(slot)
    }
}

// Loops in this module index their arrays rather than iterate over them:
// the same code once optimised, but for Kani an iterator is pointer
// arithmetic into the whole `Vgic`, several times slower to execute
// symbolically than an index (measured: 23 s against 3.7 s for the same
// 160 reads of the priority planes).

/// Empty every register of `lrs`; the ones that were not empty already.
fn clear_slots(lrs: &mut [u64]) -> u32 {
    let mut changed = 0;
    for slot in 0..lrs.len() {
        if lrs[slot] != 0 {
            lrs[slot] = 0;
            changed |= 1u32.checked_shl(slot as u32).unwrap_or(0);
        }
    }
    changed
}

/// What [`Vgic::refill_lrs`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    /// ICH_HCR_EL2 to program.
    pub hcr: u64,
    /// List registers whose new value differs from the caller's copy.
    pub changed: u32,
}

/// Whether the GIC's virtual CPU interface asserts its maintenance
/// interrupt (PPI 25, a level signal) with these list registers and this
/// ICH_HCR_EL2, i.e. whether ICH_MISR_EL2 has one of the conditions this
/// model can enable set: EOI (an invalid entry with HW = 0 and the EOI bit),
/// U (UIE and at most one valid entry), LRENP (LRENPIE and EOIcount != 0),
/// NP (NPIE and no pending entry). The VGrp conditions are never enabled.
///
/// The list registers only change while the guest runs, so the glue can
/// end a maintenance interrupt by syncing and flushing:
/// [`Vgic::flush_lrs`] never returns a state where this holds.
pub fn maintenance_asserted(hcr: u64, lrs: &[u64]) -> bool {
    if hcr & ICH_HCR_EN == 0 {
        return false;
    }
    let mut eoi = false;
    let mut valid = 0;
    let mut some_pending = false;
    for slot in 0..lrs.len() {
        let lr = lrs[slot];
        eoi |= lr_state(lr) == 0 && lr & LR_HW == 0 && lr & LR_EOI_MAINTENANCE != 0;
        valid += usize::from(lr_state(lr) != 0);
        some_pending |= lr_state(lr) & LR_STATE_PENDING != 0;
    }
    let underflow = hcr & ICH_HCR_UIE != 0 && valid <= 1;
    let eoicount = hcr & ICH_HCR_LRENPIE != 0 && (hcr >> ICH_HCR_EOICOUNT_SHIFT) & 0x1f != 0;
    let no_pending = hcr & ICH_HCR_NPIE != 0 && !some_pending;
    eoi || underflow || eoicount || no_pending
}

impl<const V: usize, const S: usize, const L: usize> Vgic<V, S, L> {
    /// Read back the list registers of `vcpu` after an exit: what the guest
    /// acknowledged became active, what it completed became invalid.
    ///
    /// Only the registers in [`Vgic::lrs_in_use`] are looked at: the others
    /// were written invalid and the hardware never changes an invalid list
    /// register, so the caller need not read them back.
    ///
    /// Returns the bitmask of other vCPUs to kick: an SPI rerouted while it
    /// was in flight here, completed and pending again, now belongs to its
    /// new target.
    pub fn sync_lrs(&mut self, vcpu: usize, lrs: &[u64]) -> u32 {
        if vcpu >= self.num_vcpus {
            return 0;
        }
        let mut kick = 0;
        let used = self.lrs_in_use(vcpu) & slots_below(lrs.len());
        for slot in slots(used, 0, lrs.len().min(L)) {
            if used & (1 << slot) == 0 {
                continue;
            }
            let (Some(intid), Some(&lr)) = (self.lr_owner[vcpu][slot], lrs.get(slot)) else {
                continue;
            };
            if !self.exists(vcpu, intid) {
                continue;
            }
            let state = lr_state(lr);
            let at = at(vcpu, intid);
            self.active.mark(at, state & LR_STATE_ACTIVE != 0);
            // Not acknowledged: the pending state the flush moved out of the
            // latch comes back (a new edge latched meanwhile stays latched).
            if state & LR_STATE_PENDING != 0 && self.lr_latched.has(at) {
                self.latch.mark(at, true);
            }
            self.lr_latched.mark(at, false);
            if state == 0 && self.hw_backed.has(at) {
                // The guest completed it: the hardware deactivated the
                // physical twin, which fires again if its line is still
                // high. Until then the line counts as low.
                self.phys_active.mark(at, false);
                self.level.mark(at, false);
                self.update_phys_at(vcpu, intid, at);
            }
            if state == 0 {
                // `release`, with the place already at hand.
                self.lr_owner[vcpu][slot] = None;
                self.lr_used[vcpu] &= !(1 << slot);
                self.in_lr.mark(at, false);
                // Completed: a new edge or a line still high is deliverable again.
                let target = self.target_of(vcpu, intid);
                self.hint_irq(target, intid);
                if target != vcpu && self.is_deliverable(vcpu, intid) {
                    kick |= 1 << target;
                }
            }
        }
        kick
    }

    /// The list registers of `vcpu` that hold an interrupt (bit = register).
    /// Right after [`Vgic::refill_lrs`] these are exactly the ones it wrote
    /// valid: the only ones the guest can change, so the only ones an exit
    /// must read back before [`Vgic::sync_lrs`]. Zero: the exit needs no
    /// list-register sync at all.
    pub fn lrs_in_use(&self, vcpu: usize) -> u32 {
        self.lr_used.get(vcpu).copied().unwrap_or(0)
    }

    /// Whether [`Vgic::refill_lrs`] may put anything into the list registers
    /// of `vcpu`: some are in use, or something was hinted or a full scan
    /// is due since the last flush that loaded everything. When not, and
    /// the list registers are all empty, a refill changes nothing.
    #[inline(always)]
    pub fn may_load(&self, vcpu: usize) -> bool {
        vcpu < self.num_vcpus
            && (self.lr_used.get(vcpu) != Some(&0)
                || self.hint.get(vcpu) != Some(&0)
                || self.full_scan.get(vcpu) != Some(&false))
    }

    /// Fill the list registers of `vcpu` before entering it (`lrs.len()` =
    /// implemented list registers, at most `L` are used); returns the
    /// ICH_HCR_EL2 value to program. The result never asserts the
    /// maintenance interrupt ([`maintenance_asserted`] is false).
    pub fn flush_lrs(&mut self, vcpu: usize, lrs: &mut [u64]) -> u64 {
        self.refill_lrs(vcpu, lrs).hcr
    }

    /// [`Vgic::flush_lrs`] for a caller that keeps a copy of the hardware's
    /// list registers in `lrs`: on return `lrs` holds the new contents (as
    /// `flush_lrs` computes them) and [`Refill::changed`] names the
    /// registers whose value differs from what `lrs` held on entry, the
    /// only ones that need writing.
    ///
    /// When no list register is in use and nothing was hinted since the
    /// last flush that loaded everything, nothing can have become
    /// deliverable: every register stays empty without a look at the
    /// interrupts.
    #[inline]
    pub fn refill_lrs(&mut self, vcpu: usize, lrs: &mut [u64]) -> Refill {
        if !self.may_load(vcpu) {
            // Nothing held, nothing new: every register stays (or becomes) empty.
            let mut any = 0;
            for slot in 0..lrs.len() {
                any |= lrs[slot];
            }
            let changed = if any == 0 { 0 } else { clear_slots(lrs) };
            return Refill {
                hcr: ICH_HCR_EN,
                changed,
            };
        }
        self.refill_lrs_busy(vcpu, lrs)
    }

    /// [`Vgic::refill_lrs`] when something is held or may have become
    /// deliverable (`vcpu` exists).
    #[inline(never)]
    fn refill_lrs_busy(&mut self, vcpu: usize, lrs: &mut [u64]) -> Refill {
        let used = self.lrs_in_use(vcpu);
        let n = lrs.len().min(L);
        // Registers the caller no longer passes cannot hold anything.
        for slot in slots(used, n, L) {
            if used & (1 << slot) == 0 {
                continue;
            }
            if let Some(intid) = self.lr_owner[vcpu][slot] {
                self.unload(vcpu, slot, intid);
            }
        }
        // 1. Rewrite occupied list registers from the model; drop the ones
        //    with nothing left to show (completed, cleared or disabled).
        let mut changed = clear_slots(&mut lrs[n..]) << n;
        for slot in 0..n {
            let new = match self.lr_owner[vcpu][slot] {
                Some(intid) => self.rewrite(vcpu, slot, intid),
                None => 0,
            };
            if lrs[slot] != new {
                lrs[slot] = new;
                changed |= 1 << slot;
            }
        }
        if n == 0 {
            // No list registers: an underflow interrupt would fire forever.
            return Refill {
                hcr: ICH_HCR_EN,
                changed,
            };
        }
        // 2. Load deliverable interrupts, highest priority first, evicting a
        //    lower-priority pending-only entry when all registers are taken.
        //    The priorities loaded are non-decreasing (what an eviction puts
        //    back is worse than what replaced it), so an entry loaded by this
        //    flush is never evicted by it: at most one load per list
        //    register, then one round that finds nothing to do.
        //    Should the bound ever be reached, the rest counts as overflow.
        //    A register loaded here held nothing valid or an evicted other
        //    interrupt before, so its value always changes.
        //    Loading one interrupt changes no other's candidacy, except
        //    that an evicted one becomes a candidate again.
        let mut overflow = true;
        let mut candidates = self.flush_candidates(vcpu);
        for _ in 0..=n {
            let Some(intid) = self.best_of(vcpu, candidates) else {
                overflow = false;
                break;
            };
            let Some((slot, evicted)) = self.slot_for(vcpu, intid, &lrs[..n]) else {
                break;
            };
            if let Some(evicted) = evicted {
                candidates |= self.candidates_in(vcpu, bit(evicted));
            }
            candidates &= !bit(intid);
            self.load(vcpu, slot, intid);
            // Indexed, not through a reference (one update for Kani).
            if slot < lrs.len() {
                lrs[slot] = self.place(vcpu, intid);
                changed |= 1 << slot;
            }
        }
        // Every register in use shows something (valid), the others are 0.
        let hcr = if overflow && self.lr_used[vcpu].count_ones() >= 2 {
            // Underflow (at most one valid entry) cannot hold now; it will
            // once the guest has completed all but one.
            ICH_HCR_EN | ICH_HCR_UIE
        } else if overflow {
            // With a single list register the underflow condition would
            // hold at once and fire forever: what waits is loaded on the
            // next exit instead.
            ICH_HCR_EN
        } else {
            // Everything deliverable is loaded; start collecting hints afresh.
            self.full_scan[vcpu] = false;
            self.hint[vcpu] = 0;
            ICH_HCR_EN
        };
        Refill { hcr, changed }
    }

    /// The new value of list register `slot` of `vcpu`, which holds
    /// `intid`: rewritten from the model, or emptied (0) when there is
    /// nothing left to show (completed, cleared or disabled).
    #[inline(always)]
    pub(super) fn rewrite(&mut self, vcpu: usize, slot: usize, intid: u32) -> u64 {
        // Take back what the last flush put there, in case no sync came
        // since: a flush must not lose what an earlier one moved.
        self.reclaim(vcpu, intid);
        // Its bit of `active | shows_pending`, from its word alone.
        let at = at(vcpu, intid);
        let keep = (self.active.word_at(at.word) | self.shows_pending_at(at.word)) & at.bit != 0;
        if keep {
            self.place(vcpu, intid)
        } else {
            self.release(vcpu, slot, intid);
            0
        }
    }

    /// A list register for `intid`: a free one, or one whose pending-only
    /// entry of lower priority goes back to the model (returned as well).
    fn slot_for(&mut self, vcpu: usize, intid: u32, lrs: &[u64]) -> Option<(usize, Option<u32>)> {
        for free in 0..lrs.len().min(L) {
            if self.lr_owner[vcpu][free].is_none() {
                return Some((free, None));
            }
        }
        let prio = self.priority(vcpu, intid);
        let victim = self.eviction_victim(vcpu, lrs, prio)?;
        let old = self.lr_owner[vcpu][victim];
        if let Some(old) = old {
            self.unload(vcpu, victim, old);
            self.hint_irq(vcpu, old);
        }
        Some((victim, old))
    }

    pub(super) fn load(&mut self, vcpu: usize, slot: usize, intid: u32) {
        self.in_lr.set(vcpu, intid, true);
        let spi = intid.wrapping_sub(32) as usize;
        if spi < S {
            self.spi_holder[spi] = vcpu as u8;
        }
        self.lr_owner[vcpu][slot] = Some(intid);
        self.lr_used[vcpu] |= 1 << slot;
    }

    /// The list-register value for `intid`; a pending state shown there
    /// moves out of the model's latch (remembered in `lr_latched`).
    #[inline(always)]
    fn place(&mut self, vcpu: usize, intid: u32) -> u64 {
        let at = at(vcpu, intid);
        let pending = self.shows_pending_at(at.word) & at.bit != 0;
        let mut lr = u64::from(intid)
            | (u64::from(self.priority_at(at, intid) & PRIORITY_MASK) << LR_PRIORITY_SHIFT);
        if self.group1.has(at) {
            lr |= LR_GROUP1;
        }
        if let Some(pintid) = self.hw_at(at, intid) {
            lr |= LR_HW | (u64::from(pintid) << LR_PINTID_SHIFT);
        } else if !self.edge.has(at) {
            // Level-sensitive: exit on deactivation to resample the line.
            lr |= LR_EOI_MAINTENANCE;
        }
        if self.active.has(at) {
            lr |= LR_ACTIVE;
        }
        if pending {
            lr |= LR_PENDING;
            let latched = self.latch.has(at);
            self.lr_latched.mark(at, latched);
            self.latch.mark(at, false);
        }
        lr
    }

    /// Give the latch back to the model if the last flush moved it into a
    /// list register.
    fn reclaim(&mut self, vcpu: usize, intid: u32) {
        let at = at(vcpu, intid);
        if self.lr_latched.has(at) {
            self.latch.mark(at, true);
            self.lr_latched.mark(at, false);
        }
    }

    /// Empty list register `slot` of `vcpu`, its pending state back in the model.
    fn unload(&mut self, vcpu: usize, slot: usize, intid: u32) {
        self.reclaim(vcpu, intid);
        self.release(vcpu, slot, intid);
    }

    /// Forget that list register `slot` of `vcpu` holds `intid`.
    fn release(&mut self, vcpu: usize, slot: usize, intid: u32) {
        self.lr_owner[vcpu][slot] = None;
        self.lr_used[vcpu] &= !(1 << slot);
        self.in_lr.set(vcpu, intid, false);
    }

    /// The vCPU is (re)starting with empty list registers: whatever they
    /// held goes back to the model (pending stays pending, active stays
    /// active until the guest clears it through ICACTIVER).
    pub fn forget_lrs(&mut self, vcpu: usize) {
        if vcpu >= self.num_vcpus {
            return;
        }
        for slot in 0..L {
            if let Some(intid) = self.lr_owner[vcpu][slot] {
                self.unload(vcpu, slot, intid);
            }
        }
        self.full_scan[vcpu] = true;
    }

    /// The interrupts that can be loaded into a list register of `vcpu`
    /// (bit = INTID): deliverable, in no list register, routed to `vcpu`.
    #[cfg(any(test, kani))]
    pub(super) fn candidates(&self, vcpu: usize) -> u128 {
        self.candidates_in(vcpu, u128::MAX)
    }

    /// [`Vgic::candidates`] among `look`, looking only at the register
    /// words `look` touches.
    fn candidates_in(&self, vcpu: usize, look: u128) -> u128 {
        let Some(&routed) = self.routed.get(vcpu) else {
            return 0;
        };
        if vcpu >= self.num_vcpus {
            return 0;
        }
        let mut found = 0;
        let mut first = 0;
        while first < Self::INTIDS {
            let wanted = (look >> first) as u32;
            if wanted != 0 {
                let routed_here = if first < 32 {
                    u32::MAX
                } else {
                    routed.get((first / 32 - 1) as usize).copied().unwrap_or(0)
                };
                let word = self.deliverable_word(vcpu, first)
                    & !self.in_lr.word(vcpu, first)
                    & routed_here
                    & wanted;
                found |= u128::from(word) << first;
            }
            first += 32;
        }
        found
    }

    /// The best of the interrupts `bits` of `vcpu`: highest priority
    /// (lowest value), then lowest INTID.
    pub(super) fn best_of(&self, vcpu: usize, bits: u128) -> Option<u32> {
        if bits & bits.wrapping_sub(1) == 0 {
            // None or one: nothing to compare.
            return (bits != 0).then(|| bits.trailing_zeros());
        }
        // Keep those with the lowest priority value, most significant bit
        // first: where some have a 0 in this bit, drop those with a 1.
        let mut best = bits;
        for k in (0..PRIORITY_PLANES).rev() {
            let zero = best & !self.priority_planes[k].view(vcpu);
            if zero != 0 {
                best = zero;
            }
        }
        Some(best.trailing_zeros())
    }

    /// The interrupts a flush loads from: the hinted candidates, or all
    /// after a group enable or a restart.
    fn flush_candidates(&self, vcpu: usize) -> u128 {
        let look = if self.full_scan[vcpu] {
            u128::MAX
        } else {
            self.hint[vcpu]
        };
        self.candidates_in(vcpu, look)
    }

    /// Highest-priority deliverable interrupt for `vcpu` not already in a
    /// list register, looking at every interrupt.
    #[cfg(any(test, kani))]
    pub(super) fn best_candidate(&self, vcpu: usize) -> Option<u32> {
        self.best_of(vcpu, self.candidates(vcpu))
    }

    /// A list register holding a pending-only interrupt of lower priority
    /// than `prio` (the lowest such).
    /// Of equally bad ones, the last (as `Iterator::max_by_key` chose).
    fn eviction_victim(&self, vcpu: usize, lrs: &[u64], prio: u8) -> Option<usize> {
        let mut victim = None;
        let mut worst = prio;
        for slot in 0..lrs.len().min(L) {
            if lr_state(lrs[slot]) != LR_STATE_PENDING {
                continue;
            }
            let Some(intid) = self.lr_owner[vcpu][slot] else {
                continue;
            };
            let p = self.priority(vcpu, intid);
            if p > prio && p >= worst {
                worst = p;
                victim = Some(slot);
            }
        }
        victim
    }
}
