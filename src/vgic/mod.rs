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
/// Implemented priority bits (7..3), one [`Vgic::priority_planes`] each.
const PRIORITY_PLANES: usize = 5;
/// Physical INTIDs at or above this are special (1020-1023) or LPIs.
const FIRST_SPECIAL_INTID: u32 = 1020;

/// GICD_CTLR enable bits in the single-security-state view.
const CTLR_ENABLE_GRP0: u32 = 1 << 0;
const CTLR_ENABLE_GRP1: u32 = 1 << 1;

/// INTIDs 0..32: the SGIs and PPIs of one vCPU (one bank per vCPU).
const PRIVATE_BITS: u128 = 0xffff_ffff;

/// The bit of `intid` in a [`IrqBits::view`] (INTIDs are below 128).
#[inline(always)]
const fn bit(intid: u32) -> u128 {
    1u128 << (intid % 128)
}

/// 32-INTID words of SPIs (INTIDs 32..128).
const SPI_WORDS: usize = 3;
/// Words of an [`IrqBits`]: one per vCPU (at most [`SPI_WORD0`]), the
/// SPIs' words from [`SPI_WORD0`], and [`NO_WORD`]; a power of two, so that
/// an index masked with `WORDS - 1` needs no bounds check.
#[cfg(not(kani))]
const WORDS: usize = 64;
#[cfg(not(kani))]
const SPI_WORD0: usize = 32;
/// The proofs' instances have at most 4 vCPUs: 8 words per field keep every
/// access at a symbolic INTID a choice among 8 words, not 64.
#[cfg(kani)]
const WORDS: usize = 8;
#[cfg(kani)]
const SPI_WORD0: usize = 4;
/// The word of INTIDs that do not exist: always 0, never written.
const NO_WORD: usize = WORDS - 1;

/// Where the word of INTIDs `first..first + 32` (`first` a multiple of 32)
/// as seen from `vcpu` lives in an [`IrqBits`]. Computed once per access,
/// it then names the same word in every field.
#[inline(always)]
fn word_index(vcpu: usize, first: u32) -> usize {
    if first < 32 {
        if vcpu < SPI_WORD0 {
            vcpu
        } else {
            NO_WORD
        }
    } else {
        (SPI_WORD0 - 1 + (first / 32) as usize).min(NO_WORD)
    }
}

/// One interrupt's word (a [`word_index`]) and its bit in that word.
#[derive(Debug, Clone, Copy)]
struct At {
    word: usize,
    bit: u32,
}

/// Where `intid` as seen from `vcpu` lives in an [`IrqBits`].
#[inline(always)]
fn at(vcpu: usize, intid: u32) -> At {
    At {
        word: word_index(vcpu, intid & !31),
        bit: 1 << (intid % 32),
    }
}

/// One bit of per-interrupt state for every interrupt: a word per vCPU for
/// its SGIs and PPIs, and the SPIs' words (see [`word_index`]). Register
/// words, list-register decisions and proofs all work on whole words; no
/// interrupt has a record of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IrqBits {
    words: [u32; WORDS],
}

impl IrqBits {
    const CLEAR: Self = IrqBits { words: [0; WORDS] };

    /// The same bits for every vCPU's SGIs and PPIs, and `spis` (bit = INTID).
    #[cfg(any(test, kani))]
    fn with(private: u32, spis: u128) -> Self {
        let mut bits = IrqBits::CLEAR;
        bits.words[..SPI_WORD0].fill(private);
        for w in 0..SPI_WORDS {
            bits.words[SPI_WORD0 + w] = (spis >> (32 * (w + 1))) as u32;
        }
        bits
    }

    /// The SPIs' bits (bit = INTID).
    fn spis_view(&self) -> u128 {
        // A loop over indices, not a fold: cheaper for Kani (see `lrs`).
        let mut view = 0;
        for w in 0..SPI_WORDS {
            view |= u128::from(self.words[SPI_WORD0 + w]) << (32 * (w + 1));
        }
        view
    }

    /// The bits of every interrupt `vcpu` sees: its own SGIs and PPIs, every SPI.
    fn view(&self, vcpu: usize) -> u128 {
        self.spis_view() | u128::from(self.word_at(word_index(vcpu, 0)))
    }

    /// The word at `index` (from [`word_index`]).
    #[inline(always)]
    fn word_at(&self, index: usize) -> u32 {
        self.words[index & (WORDS - 1)]
    }

    /// Replace the bits `mask` of the word at `index` with those of `word`.
    /// Callers only write bits of interrupts that exist, so [`NO_WORD`]
    /// stays 0.
    #[inline(always)]
    fn put(&mut self, index: usize, mask: u32, word: u32) {
        // Indexed, not through a reference: for Kani a write at a symbolic
        // index is then one array update, not one per word it might name.
        let index = index & (WORDS - 1);
        self.words[index] = (self.words[index] & !mask) | (word & mask);
    }

    #[inline(always)]
    fn get(&self, vcpu: usize, intid: u32) -> bool {
        self.has(at(vcpu, intid))
    }

    #[inline(always)]
    fn set(&mut self, vcpu: usize, intid: u32, on: bool) {
        self.mark(at(vcpu, intid), on);
    }

    #[inline(always)]
    fn has(&self, at: At) -> bool {
        self.word_at(at.word) & at.bit != 0
    }

    #[inline(always)]
    fn mark(&mut self, at: At, on: bool) {
        self.put(at.word, at.bit, if on { at.bit } else { 0 });
    }

    /// The register word of INTIDs `first..first + 32` (`first` a multiple of 32).
    #[inline(always)]
    fn word(&self, vcpu: usize, first: u32) -> u32 {
        self.word_at(word_index(vcpu, first))
    }

    /// Replace the word [`IrqBits::word`] reads; bits outside `exists` stay.
    #[inline(always)]
    fn set_word(&mut self, vcpu: usize, first: u32, exists: u32, word: u32) {
        self.put(word_index(vcpu, first), exists, word);
    }
}

/// A change the glue must make to the physical twin of a HW-backed
/// interrupt: make it active or inactive. `vcpu` names the redistributor
/// (for SGIs/PPIs: the physical CPU running that vCPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HwActiveChange {
    pub pintid: u32,
    pub vcpu: usize,
    pub active: bool,
}

/// One VM's virtual distributor and redistributors, for at most `V`
/// vCPUs, with `S` SPIs (INTIDs `32..32 + S`, `S` <= 96) and at most `L`
/// list registers per vCPU.
///
/// Per-interrupt state is kept field by field ([`IrqBits`] for the 1-bit
/// fields, arrays for priorities, physical INTIDs and routing), so that a
/// register word is a few word operations and the proofs meet no references
/// to records at symbolic INTIDs.
#[derive(Debug, Clone)]
pub struct Vgic<const V: usize = MAX_VCPUS, const S: usize = NUM_SPIS, const L: usize = MAX_LRS> {
    num_vcpus: usize,
    /// GICD_CTLR EnableGrp0 / EnableGrp1.
    ctlr: u32,
    enabled: IrqBits,
    /// Pending latch: an edge, a write to ISPENDR, or a HW interrupt taken.
    latch: IrqBits,
    /// The pending state of the list register holding the interrupt came
    /// from `latch` (moved there by a flush). Given back to `latch` while
    /// the list register still shows it pending, so nothing is lost or
    /// invented whether the pending state came from the latch or the line.
    lr_latched: IrqBits,
    /// Input line level (level-sensitive interrupts).
    level: IrqBits,
    active: IrqBits,
    group1: IrqBits,
    /// Edge-triggered (SGIs always).
    edge: IrqBits,
    /// Backed by a physical interrupt (list-register HW bit; its INTID in
    /// `pintids`).
    hw_backed: IrqBits,
    /// HW-backed: the physical twin is active (taken by the hypervisor and
    /// not yet deactivated). Kept equal to `active || pending_anywhere`.
    phys_active: IrqBits,
    /// In a list register (of its own vCPU for SGIs/PPIs, of `spi_holder`
    /// for SPIs); `lr_owner` says which.
    in_lr: IrqBits,
    /// Priorities by word (as the flags: a [`word_index`], then the INTID's
    /// bit number), so one index finds every flag and byte of an interrupt.
    priorities: [[u8; 32]; WORDS],
    /// The priorities again, bit-sliced: plane `k` holds bit `k + 3` of each
    /// interrupt's priority (the 5 implemented bits), so that a flush finds
    /// the best of several candidates in 5 word steps.
    priority_planes: [IrqBits; PRIORITY_PLANES],
    /// Physical INTIDs of HW-backed interrupts, by word as `priorities`.
    pintids: [[u16; 32]; WORDS],
    /// vCPU each SPI is routed to (from GICD_IROUTER) ...
    spi_target: [u8; S],
    /// ... and, per vCPU, the SPIs routed to it (bit = INTID, in words as `IrqBits::spis`).
    routed: [[u32; SPI_WORDS]; V],
    /// Raw GICD_IROUTER values, as the guest wrote them (writable fields only).
    spi_router: [u64; S],
    /// vCPU whose list register holds each SPI in `in_lr`.
    spi_holder: [u8; S],
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
    /// Counts the register writes that changed something a flush or the
    /// glue acts on (see [`Vgic::changes`]).
    changes: u32,
}

impl<const V: usize, const S: usize, const L: usize> Vgic<V, S, L> {
    /// INTIDs 0..INTIDS exist.
    pub const INTIDS: u32 = {
        assert!(
            S <= 96 && V >= 1 && V <= 32 && V <= SPI_WORD0 && L <= 32,
            "vGIC size out of range"
        );
        (NUM_PRIVATE + S) as u32
    };

    /// The SPIs that exist (bit = INTID).
    const SPI_BITS: u128 = {
        let below = if S >= 96 {
            u128::MAX
        } else {
            (1u128 << (NUM_PRIVATE + S)) - 1
        };
        below & !PRIVATE_BITS
    };

    /// [`Vgic::SPI_BITS`] as SPI words.
    const SPI_EXISTS: [u32; SPI_WORDS] = {
        let mut words = [0; SPI_WORDS];
        let mut w = 0;
        while w < SPI_WORDS {
            words[w] = (Self::SPI_BITS >> (32 * (w + 1))) as u32;
            w += 1;
        }
        words
    };

    /// A VM with `num_vcpus` vCPUs (clamped to 1..=V), all interrupts
    /// at reset state: disabled, Group 0, priority 0, level-sensitive (SGIs
    /// edge), SPIs routed to vCPU 0, redistributors asleep.
    pub fn new(num_vcpus: usize) -> Self {
        let mut routed = [[0; SPI_WORDS]; V];
        routed[0] = Self::SPI_EXISTS;
        Vgic {
            num_vcpus: num_vcpus.clamp(1, V),
            ctlr: 0,
            enabled: IrqBits::CLEAR,
            latch: IrqBits::CLEAR,
            lr_latched: IrqBits::CLEAR,
            level: IrqBits::CLEAR,
            active: IrqBits::CLEAR,
            group1: IrqBits::CLEAR,
            edge: {
                // SGIs are always edge-triggered.
                let mut edge = IrqBits::CLEAR;
                let mut vcpu = 0;
                while vcpu < V {
                    edge.words[vcpu] = 0xffff;
                    vcpu += 1;
                }
                edge
            },
            hw_backed: IrqBits::CLEAR,
            phys_active: IrqBits::CLEAR,
            in_lr: IrqBits::CLEAR,
            priorities: [[0; 32]; WORDS],
            priority_planes: [IrqBits::CLEAR; PRIORITY_PLANES],
            pintids: [[0; 32]; WORDS],
            spi_target: [0; S],
            routed,
            spi_router: [0; S],
            spi_holder: [0; S],
            lr_owner: [[None; L]; V],
            lr_used: [0; V],
            asleep: [true; V],
            hw_changed: 0,
            hint: [0; V],
            full_scan: [true; V],
            phys_changed_private: [0; V],
            phys_changed_spis: 0,
            phys_changed_any: false,
            changes: 0,
        }
    }

    /// A counter that moves whenever a register access changes something
    /// that may need a refill or physical-interrupt work (an interrupt
    /// hinted, a full scan due, a physical twin or HW-backed SPI to update).
    /// An access that leaves it unchanged needs nothing after it, so the
    /// glue can skip the refill it would otherwise do.
    #[inline(always)]
    pub fn changes(&self) -> u32 {
        self.changes
    }

    pub fn num_vcpus(&self) -> usize {
        self.num_vcpus
    }

    /// Whether `intid` exists as seen from `vcpu` (SGIs/PPIs only for an
    /// existing vCPU).
    #[inline(always)]
    fn exists(&self, vcpu: usize, intid: u32) -> bool {
        if intid < 32 {
            vcpu < self.num_vcpus
        } else {
            intid < Self::INTIDS
        }
    }

    /// The interrupts of the register word at `first` that exist as seen
    /// from `vcpu` (bit = INTID - first).
    #[inline(always)]
    fn word_exists(&self, vcpu: usize, first: u32) -> u32 {
        if first < 32 {
            if vcpu < self.num_vcpus {
                u32::MAX
            } else {
                0
            }
        } else {
            Self::SPI_EXISTS
                .get((first / 32).wrapping_sub(1) as usize)
                .copied()
                .unwrap_or(0)
        }
    }

    #[inline(always)]
    fn priority(&self, vcpu: usize, intid: u32) -> u8 {
        self.priority_at(at(vcpu, intid), intid)
    }

    #[inline(always)]
    fn priority_at(&self, at: At, intid: u32) -> u8 {
        self.priorities[at.word & (WORDS - 1)][(intid % 32) as usize]
    }

    /// Bring the priority planes of the interrupts `first + b` for each bit
    /// `b` of `changed` to the priorities in byte `b` of `value`.
    fn set_priority_planes(&mut self, vcpu: usize, first: u32, mut changed: u32, value: u64) {
        while changed != 0 {
            let byte = changed.trailing_zeros();
            changed &= changed - 1;
            let priority = (value >> (8 * byte)) as u8;
            for (k, plane) in self.priority_planes.iter_mut().enumerate() {
                plane.set(vcpu, first + byte, priority & (8 << k) != 0);
            }
        }
    }

    /// Recompute the priority planes from the priority bytes (after a test
    /// or proof set the bytes directly). Word by word with plain arithmetic:
    /// far cheaper for Kani than a write per bit.
    #[cfg(any(test, kani))]
    fn rebuild_priority_planes(&mut self) {
        let words = (0..V).chain(SPI_WORD0..SPI_WORD0 + SPI_WORDS);
        for word in words {
            let bytes = self.priorities[word];
            for (k, plane) in self.priority_planes.iter_mut().enumerate() {
                let mut bits = 0u32;
                for (i, priority) in bytes.iter().enumerate() {
                    bits |= u32::from(priority & (8 << k) != 0) << i;
                }
                plane.words[word] = bits;
            }
        }
    }

    /// The physical INTID backing `intid`, if any.
    fn hw(&self, vcpu: usize, intid: u32) -> Option<u16> {
        self.hw_at(at(vcpu, intid), intid)
    }

    #[inline(always)]
    fn hw_at(&self, at: At, intid: u32) -> Option<u16> {
        self.hw_backed
            .has(at)
            .then(|| self.pintids[at.word & (WORDS - 1)][(intid % 32) as usize])
    }

    /// Note that `intid` may have become deliverable to `vcpu`.
    fn hint_irq(&mut self, vcpu: usize, intid: u32) {
        if vcpu < V {
            self.hint[vcpu] |= bit(intid);
        }
    }

    /// A register write changed the interrupts `first + i` for each bit `i`
    /// of `mask` (as seen from `vcpu`): they may have become deliverable to
    /// that vCPU (SGIs/PPIs) or, for SPIs, to any. `mask` never spans private
    /// interrupts and SPIs (register words cover 32-aligned INTID ranges).
    fn note_written(&mut self, vcpu: usize, first: u32, mask: u32) {
        if mask == 0 {
            return;
        }
        self.changes = self.changes.wrapping_add(1);
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
        self.changes = self.changes.wrapping_add(1);
        self.full_scan = [true; V];
    }

    /// The vCPU an interrupt is routed to.
    fn target_of(&self, vcpu: usize, intid: u32) -> usize {
        // Indexed after a bounds test rather than through `get`: for Kani a
        // reference at a symbolic index is a read of the whole `Vgic`.
        let spi = intid.wrapping_sub(32) as usize;
        if intid < 32 {
            vcpu
        } else if spi < S {
            usize::from(self.spi_target[spi])
        } else {
            0
        }
    }

    /// The vCPU that must act on `intid` now: the one whose list register
    /// holds it (an SPI rerouted while in flight finishes where it started),
    /// else the one it is routed to.
    fn owner_of(&self, vcpu: usize, intid: u32) -> usize {
        let spi = intid.wrapping_sub(32) as usize;
        if intid >= 32 && self.in_lr.get(vcpu, intid) {
            if spi < S {
                usize::from(self.spi_holder[spi])
            } else {
                0
            }
        } else {
            self.target_of(vcpu, intid)
        }
    }

    /// The interrupts of `vcpu`'s view whose group is enabled.
    fn group_enabled(&self, vcpu: usize) -> u128 {
        let group1 = self.group1.view(vcpu);
        let mut mask = 0;
        if self.ctlr & CTLR_ENABLE_GRP1 != 0 {
            mask |= group1;
        }
        if self.ctlr & CTLR_ENABLE_GRP0 != 0 {
            mask |= !group1;
        }
        mask
    }

    /// Pending as the model sees it between an exit and the next entry.
    fn pending(&self, vcpu: usize) -> u128 {
        self.latch.view(vcpu) | (self.level.view(vcpu) & !self.edge.view(vcpu))
    }

    /// Pending in the model or in the list register the last flush wrote.
    fn pending_anywhere(&self, vcpu: usize) -> u128 {
        self.pending(vcpu) | self.lr_latched.view(vcpu)
    }

    /// Whether a list register holding the interrupt shows it pending. With
    /// the HW bit, pending-and-active is not a valid list-register state;
    /// the physical interrupt cannot fire again while active anyway.
    fn shows_pending(&self, vcpu: usize) -> u128 {
        self.enabled.view(vcpu)
            & self.pending_anywhere(vcpu)
            & self.group_enabled(vcpu)
            & !(self.active.view(vcpu) & self.hw_backed.view(vcpu))
    }

    // The same per register word (INTIDs `first..first + 32`, `first` a
    // multiple of 32), the form the exit paths use: one interrupt's answer
    // is a bit of its word, without the other words' work.

    #[inline(always)]
    fn group_enabled_at(&self, i: usize) -> u32 {
        let group1 = self.group1.word_at(i);
        let mut mask = 0;
        if self.ctlr & CTLR_ENABLE_GRP1 != 0 {
            mask |= group1;
        }
        if self.ctlr & CTLR_ENABLE_GRP0 != 0 {
            mask |= !group1;
        }
        mask
    }

    #[inline(always)]
    fn pending_at(&self, i: usize) -> u32 {
        self.latch.word_at(i) | (self.level.word_at(i) & !self.edge.word_at(i))
    }

    #[inline(always)]
    fn pending_anywhere_at(&self, i: usize) -> u32 {
        self.pending_at(i) | self.lr_latched.word_at(i)
    }

    /// Could be loaded into a list register as pending now.
    #[inline(always)]
    fn deliverable_at(&self, i: usize) -> u32 {
        self.enabled.word_at(i)
            & self.pending_at(i)
            & !self.active.word_at(i)
            & self.group_enabled_at(i)
    }

    #[inline(always)]
    fn shows_pending_at(&self, i: usize) -> u32 {
        self.enabled.word_at(i)
            & self.pending_anywhere_at(i)
            & self.group_enabled_at(i)
            & !(self.active.word_at(i) & self.hw_backed.word_at(i))
    }

    #[inline(always)]
    fn deliverable_word(&self, vcpu: usize, first: u32) -> u32 {
        self.deliverable_at(word_index(vcpu, first))
    }

    /// Whether `intid` could be loaded into a list register as pending now.
    fn is_deliverable(&self, vcpu: usize, intid: u32) -> bool {
        let at = at(vcpu, intid);
        self.deliverable_at(at.word) & at.bit != 0
    }

    /// Latch an edge on `intid` (`vcpu_for_private` names the vCPU for
    /// SGIs/PPIs). Returns the vCPU to kick if the interrupt can now be
    /// delivered; `None` for an unknown INTID or vCPU.
    pub fn set_pending(&mut self, intid: u32, vcpu_for_private: usize) -> Option<usize> {
        if !self.exists(vcpu_for_private, intid) {
            return None;
        }
        self.latch.set(vcpu_for_private, intid, true);
        self.became_pending(intid, vcpu_for_private)
    }

    /// `intid` just became pending: the vCPU to kick, if any. Already in a
    /// list register, the holder's next entry shows it there (pending, or
    /// pending and active); otherwise its target's next flush is hinted to
    /// look at it.
    #[inline(always)]
    fn became_pending(&mut self, intid: u32, vcpu_for_private: usize) -> Option<usize> {
        let vcpu = vcpu_for_private;
        let at = at(vcpu, intid);
        if self.in_lr.has(at) {
            let shown =
                self.enabled.word_at(at.word) & self.group_enabled_at(at.word) & at.bit != 0;
            return shown.then(|| self.owner_of(vcpu, intid));
        }
        let target = self.target_of(vcpu, intid);
        self.hint_irq(target, intid);
        (self.deliverable_at(at.word) & at.bit != 0).then_some(target)
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
        let vcpu = vcpu_for_private;
        if !self.exists(vcpu, intid) || self.level.get(vcpu, intid) == level {
            return None;
        }
        self.level.set(vcpu, intid, level);
        self.update_phys(vcpu, intid);
        if self.in_lr.get(vcpu, intid) {
            // In a list register: a level-sensitive entry asks for a
            // maintenance exit on deactivation, which resamples the line.
            return None;
        }
        let target = self.target_of(vcpu, intid);
        self.hint_irq(target, intid);
        (level && self.is_deliverable(vcpu, intid)).then_some(target)
    }

    /// The physical twin of HW-backed `intid` fired and the glue took it
    /// (priority dropped, still active): the virtual interrupt becomes
    /// pending (as an edge or as a high line, as the guest configured it).
    /// Returns the vCPU to kick.
    pub fn hw_fired(&mut self, intid: u32, vcpu_for_private: usize) -> Option<usize> {
        let vcpu = vcpu_for_private;
        if !self.exists(vcpu, intid) {
            return None;
        }
        let at = at(vcpu, intid);
        self.phys_active.mark(at, true);
        if self.edge.has(at) {
            self.latch.mark(at, true);
        } else {
            self.level.mark(at, true);
        }
        self.became_pending(intid, vcpu)
    }

    /// Keep a HW-backed interrupt's physical twin active exactly while the
    /// virtual one is pending or active, queueing the change for the glue.
    /// (A pending HW-backed interrupt is completed by the guest through the
    /// list register, which deactivates the twin; a twin left active would
    /// never fire again.)
    #[inline(always)]
    fn update_phys(&mut self, vcpu: usize, intid: u32) {
        let at = at(vcpu, intid);
        if self.hw_backed.has(at) {
            self.update_phys_at(vcpu, intid, at);
        }
    }

    /// [`Vgic::update_phys`] for a HW-backed interrupt at `at`.
    #[inline(always)]
    fn update_phys_at(&mut self, vcpu: usize, intid: u32, at: At) {
        let want = (self.active.word_at(at.word) | self.pending_anywhere_at(at.word)) & at.bit != 0;
        if want == self.phys_active.has(at) {
            return;
        }
        self.phys_active.mark(at, want);
        self.phys_changed_any = true;
        self.changes = self.changes.wrapping_add(1);
        if intid < 32 {
            if vcpu < V {
                self.phys_changed_private[vcpu] |= 1 << intid;
            }
        } else {
            self.phys_changed_spis |= bit(intid);
        }
    }

    /// Physical twins whose active state must change, as the vGIC wants it
    /// now. At most [`HW_CHANGES_PER_CALL`] per call; the rest stay queued
    /// (see [`Vgic::has_hw_active_changes`]).
    pub fn take_hw_active_changes(&mut self) -> [Option<HwActiveChange>; HW_CHANGES_PER_CALL] {
        let mut out = [None; HW_CHANGES_PER_CALL];
        for slot in out.iter_mut() {
            let (vcpu, intid) =
                if let Some(vcpu) = (0..V).find(|&v| self.phys_changed_private[v] != 0) {
                    let intid = self.phys_changed_private[vcpu].trailing_zeros();
                    self.phys_changed_private[vcpu] &= !(1 << intid);
                    (vcpu, intid)
                } else if self.phys_changed_spis != 0 {
                    let intid = self.phys_changed_spis.trailing_zeros();
                    self.phys_changed_spis &= !bit(intid);
                    (self.target_of(0, intid), intid)
                } else {
                    self.phys_changed_any = false;
                    break;
                };
            if let Some(pintid) = self.hw(vcpu, intid) {
                *slot = Some(HwActiveChange {
                    pintid: u32::from(pintid),
                    vcpu,
                    active: self.phys_active.get(vcpu, intid),
                });
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
        if !self.exists(vcpu, intid) {
            return;
        }
        let pintid = pintid
            .filter(|p| *p < FIRST_SPECIAL_INTID)
            .and_then(|p| u16::try_from(p).ok());
        self.hw_backed.set(vcpu, intid, pintid.is_some());
        let word = at(vcpu, intid).word & (WORDS - 1);
        self.pintids[word][(intid % 32) as usize] = pintid.unwrap_or(0);
    }

    /// Whether the guest has `intid` enabled (as seen from `vcpu` for SGIs/PPIs).
    pub fn is_enabled(&self, intid: u32, vcpu: usize) -> bool {
        self.exists(vcpu, intid) && self.enabled.get(vcpu, intid)
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
            self.hw_changed &= !bit(intid);
            if let Some(pintid) = self.hw(0, intid) {
                *slot = Some((
                    u32::from(pintid),
                    self.enabled.get(0, intid),
                    self.target_of(0, intid),
                ));
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
        if intid >= 32 && self.hw_backed.get(0, intid) {
            self.changes = self.changes.wrapping_add(1);
            self.hw_changed |= bit(intid);
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

    /// The SPIs held in a list register of `vcpu` (bit = INTID).
    fn spis_held_by(&self, vcpu: usize) -> u128 {
        let mut held = 0;
        let mut used = self.lrs_in_use(vcpu);
        while used != 0 {
            let slot = used.trailing_zeros() as usize;
            used &= used - 1;
            if vcpu < V && slot < L {
                if let Some(intid) = self.lr_owner[vcpu][slot] {
                    held |= bit(intid);
                }
            }
        }
        held & !PRIVATE_BITS
    }

    /// Whether `vcpu` has an interrupt it could take now, in a list register
    /// or in the model (for WFI: whether to block). Ignores the guest's
    /// priority mask, so a WFI may return early, which the architecture allows.
    pub fn has_pending(&self, vcpu: usize) -> bool {
        if vcpu >= self.num_vcpus {
            return false;
        }
        let in_lr = self.in_lr.view(vcpu);
        // In a list register: the holder acts on it (its own SGIs/PPIs, the
        // SPIs it holds); elsewhere: its target, unless it is active.
        let held = (in_lr & PRIVATE_BITS) | self.spis_held_by(vcpu);
        let mut routed_here = PRIVATE_BITS;
        for w in 0..SPI_WORDS {
            routed_here |= u128::from(self.routed[vcpu][w]) << (32 * (w + 1));
        }
        let waiting = held | (!in_lr & !self.active.view(vcpu) & routed_here);
        self.shows_pending(vcpu) & waiting != 0
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
