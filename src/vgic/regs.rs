//! Distributor and redistributor registers, as Linux's GICv3 driver uses
//! them. Wrong access widths and misaligned accesses abort (the
//! architecture leaves them CONSTRAINED UNPREDICTABLE; an abort is the safe
//! choice), read-only registers ignore writes, reserved offsets are RAZ/WI
//! for 32-bit accesses.

use super::{
    word_index, Vgic, CTLR_ENABLE_GRP0, CTLR_ENABLE_GRP1, PRIORITY_MASK, SPI_WORDS, WORDS,
};

/// Outcome of one register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioResult {
    Read(u64),
    Written,
    /// Bad width or alignment, or no register frame there: the hypervisor
    /// injects an external abort.
    BadAccess,
}

const GICD_CTLR: u64 = 0x0000;
const GICD_TYPER: u64 = 0x0004;
const GICD_IIDR: u64 = 0x0008;
const GICD_TYPER2: u64 = 0x000c;
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ICENABLER: u64 = 0x0180;
const GICD_ISPENDR: u64 = 0x0200;
const GICD_ICPENDR: u64 = 0x0280;
const GICD_ISACTIVER: u64 = 0x0300;
const GICD_ICACTIVER: u64 = 0x0380;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ICFGR: u64 = 0x0c00;
/// End of the ICFGR array for the most INTIDs a GICv3 distributor has.
const GICD_ICFGR_END: u64 = 0x0d00;
const GICD_IROUTER: u64 = 0x6000;
const PIDR2: u64 = 0xffe8;
/// Arm as implementer (JEP106 0x43b).
const IIDR: u64 = 0x0000_043b;
/// PIDR2.ArchRev = 3: GICv3.
const PIDR2_GICV3: u64 = 0x3b;
/// Affinity routing, always on (RAO/WI).
const CTLR_ARE: u32 = 1 << 4;
/// Single security state (RAO/WI): bit 0 enables Group 0, bit 1 Group 1.
const CTLR_DS: u32 = 1 << 6;
/// GICD_TYPER for `intids` INTIDs: ITLinesNumber = ceil(lines/32) - 1;
/// IDbits = 9 (10-bit INTIDs); no LPIs, no MBIS.
fn typer(intids: u32) -> u64 {
    u64::from(intids.div_ceil(32) - 1) | (9 << 19)
}
/// GICD_IROUTER fields kept: Aff3, IRM, Aff2, Aff1, Aff0.
const IROUTER_WRITABLE: u64 = 0xff_80ff_ffff;
const IROUTER_IRM: u64 = 1 << 31;

const GICR_FRAME: u64 = 0x2_0000;
const SGI_FRAME: u64 = 0x1_0000;
const GICR_CTLR: u64 = 0x0000;
const GICR_IIDR: u64 = 0x0004;
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const WAKER_PROCESSOR_SLEEP: u64 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u64 = 1 << 2;

/// Per-interrupt field kinds of the banked bit-array registers.
#[derive(Clone, Copy)]
enum BitField {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl<const V: usize, const S: usize, const L: usize> Vgic<V, S, L> {
    /// One 32-bit word of a 1-bit-per-interrupt register covering INTIDs
    /// `first..first+32`: a few word operations on the state bitmaps.
    fn bits_access(
        &mut self,
        vcpu: usize,
        first: u32,
        field: BitField,
        write: bool,
        value: u64,
    ) -> MmioResult {
        let exists = self.word_exists(vcpu, first);
        if !write {
            let word = match field {
                BitField::Group => self.group1.word(vcpu, first),
                BitField::SetEnable | BitField::ClearEnable => self.enabled.word(vcpu, first),
                BitField::SetPending | BitField::ClearPending => {
                    self.latch.word(vcpu, first)
                        | self.lr_latched.word(vcpu, first)
                        | (self.level.word(vcpu, first) & !self.edge.word(vcpu, first))
                }
                BitField::SetActive | BitField::ClearActive => self.active.word(vcpu, first),
            };
            return MmioResult::Read(u64::from(word & exists));
        }
        // Writing 0 to a set/clear register changes nothing (IGROUPR
        // stores every bit).
        let ones = value as u32 & exists;
        if ones == 0 && !matches!(field, BitField::Group) {
            return MmioResult::Written;
        }
        let hw = self.hw_backed.word(vcpu, first);
        let changed = match field {
            BitField::Group => {
                let old = self.group1.word(vcpu, first);
                self.group1.set_word(vcpu, first, exists, ones);
                old ^ ones
            }
            BitField::SetEnable | BitField::ClearEnable => {
                let old = self.enabled.word(vcpu, first);
                let new = match field {
                    BitField::SetEnable => old | ones,
                    _ => old & !ones,
                };
                self.enabled.set_word(vcpu, first, exists, new);
                let changed = old ^ new;
                if first >= 32 && changed & hw != 0 {
                    // The glue follows enable changes of HW-backed SPIs
                    // (`changed` also moves the change counter).
                    self.hw_changed |= u128::from(changed & hw) << (first % 128);
                }
                changed
            }
            BitField::SetPending => {
                let old = self.latch.word(vcpu, first);
                self.latch.set_word(vcpu, first, exists, old | ones);
                ones & !old
            }
            BitField::ClearPending => {
                // The line of a level-sensitive interrupt keeps it pending. A
                // HW-backed one forgets its line: the physical twin is
                // deactivated and fires again if the line is still high.
                let latch = self.latch.word(vcpu, first);
                let lr_latched = self.lr_latched.word(vcpu, first);
                let level = self.level.word(vcpu, first);
                let forgets_line = ones & hw & level;
                self.latch.set_word(vcpu, first, exists, latch & !ones);
                self.lr_latched
                    .set_word(vcpu, first, exists, lr_latched & !ones);
                self.level
                    .set_word(vcpu, first, exists, level & !forgets_line);
                ones & (latch | lr_latched | forgets_line)
            }
            BitField::SetActive => {
                let old = self.active.word(vcpu, first);
                self.active.set_word(vcpu, first, exists, old | ones);
                ones & !old
            }
            BitField::ClearActive => {
                let active = self.active.word(vcpu, first);
                let level = self.level.word(vcpu, first);
                let forgets_line = ones & hw & level;
                self.active.set_word(vcpu, first, exists, active & !ones);
                self.level
                    .set_word(vcpu, first, exists, level & !forgets_line);
                ones & (active | forgets_line)
            }
        };
        if changed != 0 {
            self.note_written(vcpu, first, changed);
        }
        // Pending and active changes reach a physical twin.
        let mut hw_touched = ones & hw;
        while hw_touched != 0 {
            let bit = hw_touched.trailing_zeros();
            hw_touched &= hw_touched - 1;
            self.update_phys(vcpu, first + bit);
        }
        MmioResult::Written
    }

    /// The priority bytes of the 32-bit word starting at INTID `first` (a
    /// multiple of 32) as seen from `vcpu`: fewer than 32, or none, where
    /// INTIDs do not exist.
    fn word_priorities_mut(&mut self, vcpu: usize, first: u32) -> &mut [u8] {
        let exist = self.word_exists(vcpu, first).count_ones() as usize;
        let word = word_index(vcpu, first) & (WORDS - 1);
        &mut self.priorities[word][..exist]
    }

    /// IPRIORITYR bytes for INTIDs `first..first+size`.
    fn priority_access(
        &mut self,
        vcpu: usize,
        first: u32,
        size: u8,
        write: bool,
        value: u64,
    ) -> MmioResult {
        if !matches!(size, 1 | 4) {
            return MmioResult::BadAccess;
        }
        // One slice for the bytes (they never cross a 32-INTID word:
        // accesses are aligned to their size).
        let offset = first % 32;
        let bytes = self.word_priorities_mut(vcpu, first - offset);
        let bytes = bytes.get_mut(offset as usize..).unwrap_or_default();
        if let Some(word) = bytes.first_chunk_mut::<4>().filter(|_| size == 4) {
            // A whole word of existing interrupts: one load, one compare.
            let old = u32::from_le_bytes(*word);
            if !write {
                return MmioResult::Read(u64::from(old));
            }
            let new = value as u32 & u32::from_le_bytes([PRIORITY_MASK; 4]);
            if new != old {
                *word = new.to_le_bytes();
                let diff = (old ^ new).to_le_bytes();
                let changed = diff
                    .iter()
                    .enumerate()
                    .fold(0, |mask, (byte, d)| mask | u32::from(*d != 0) << byte);
                self.set_priority_planes(vcpu, first, changed, u64::from(new));
                self.note_written(vcpu, first, changed);
            }
            return MmioResult::Written;
        }
        let bytes = bytes.iter_mut().take(usize::from(size)).enumerate();
        if !write {
            let word = bytes.fold(0u64, |word, (byte, priority)| {
                word | u64::from(*priority) << (8 * byte)
            });
            return MmioResult::Read(word);
        }
        let mut changed = 0u32;
        for (byte, priority) in bytes {
            let new = (value >> (8 * byte)) as u8 & PRIORITY_MASK;
            if *priority != new {
                *priority = new;
                changed |= 1 << byte;
            }
        }
        if changed != 0 {
            self.set_priority_planes(vcpu, first, changed, value);
            self.note_written(vcpu, first, changed);
        }
        MmioResult::Written
    }

    /// ICFGR: two bits per interrupt, bit 1 of each pair = edge. SGIs are fixed edge.
    fn config_access(&mut self, vcpu: usize, first: u32, write: bool, value: u64) -> MmioResult {
        // The 16 interrupts' edge bits, as bits 0..16.
        let word_first = first & !31;
        let half = first % 32;
        let exists = (self.word_exists(vcpu, word_first) >> half) & 0xffff;
        let edges = (self.edge.word(vcpu, word_first) >> half) & exists;
        if !write {
            let mut word = 0u64;
            let mut bits = edges;
            while bits != 0 {
                let k = bits.trailing_zeros();
                bits &= bits - 1;
                word |= 2 << (2 * k);
            }
            return MmioResult::Read(word);
        }
        // SGIs are fixed edge.
        let writable = if first < 16 { 0 } else { exists };
        let mut new = 0u32;
        for k in 0..16 {
            if value & (2 << (2 * k)) != 0 {
                new |= 1 << k;
            }
        }
        let changed = (edges ^ new) & writable;
        if changed != 0 {
            let word = self.edge.word(vcpu, word_first) ^ (changed << half);
            let exists = self.word_exists(vcpu, word_first);
            self.edge.set_word(vcpu, word_first, exists, word);
        }
        // A level interrupt turned edge (or back) changes what is pending.
        self.note_written(vcpu, first, changed);
        MmioResult::Written
    }
}

/// The registers shared by GICD (SPIs, `private=false`) and the GICR SGI frame (SGIs/PPIs).
#[inline(always)]
fn banked_access<const V: usize, const S: usize, const L: usize>(
    v: &mut Vgic<V, S, L>,
    vcpu: usize,
    offset: u64,
    size: u8,
    write: bool,
    value: u64,
    spis: bool,
) -> Option<MmioResult> {
    let word_of = |base: u64| (offset - base) / 4;
    let in_words = |base: u64, words: u64| offset >= base && offset < base + 4 * words;
    let words = if spis {
        u64::from(Vgic::<V, S, L>::INTIDS.div_ceil(32))
    } else {
        1
    };
    // The seven bit arrays are 0x80 apart, IGROUPR first.
    if (GICD_IGROUPR..GICD_ICACTIVER + 0x80).contains(&offset) && (offset % 0x80) / 4 < words {
        let field = match offset & !0x7f {
            GICD_IGROUPR => BitField::Group,
            GICD_ISENABLER => BitField::SetEnable,
            GICD_ICENABLER => BitField::ClearEnable,
            GICD_ISPENDR => BitField::SetPending,
            GICD_ICPENDR => BitField::ClearPending,
            GICD_ISACTIVER => BitField::SetActive,
            _ => BitField::ClearActive,
        };
        if size != 4 {
            return Some(MmioResult::BadAccess);
        }
        let first = ((offset % 0x80) / 4 * 32) as u32;
        // With affinity routing, the distributor's words for INTIDs 0-31 are RAZ/WI.
        if spis && first < 32 {
            return Some(read_only(write, 0));
        }
        return Some(v.bits_access(vcpu, first, field, write, value));
    }
    if in_words(GICD_IPRIORITYR, words * 8) {
        let first = (offset - GICD_IPRIORITYR) as u32;
        if spis && first < 32 {
            return Some(if matches!(size, 1 | 4) {
                read_only(write, 0)
            } else {
                MmioResult::BadAccess
            });
        }
        return Some(v.priority_access(vcpu, first, size, write, value));
    }
    if in_words(GICD_ICFGR, words * 2) {
        if size != 4 {
            return Some(MmioResult::BadAccess);
        }
        let first = (word_of(GICD_ICFGR) * 16) as u32;
        if spis && first < 32 {
            return Some(read_only(write, 0));
        }
        return Some(v.config_access(vcpu, first, write, value));
    }
    None
}

/// The pending and active arrays (ISPENDR..ICACTIVER), whose state lives
/// partly in the list registers.
fn is_pending_or_active(offset: u64) -> bool {
    (GICD_ISPENDR..GICD_IPRIORITYR).contains(&offset)
}

/// Whether a distributor access at `offset` reads state the list registers
/// hold or writes anything (which may make interrupts deliverable), so the
/// caller must sync the list registers before it and refill them after.
/// Other reads return the same value either way.
pub fn dist_needs_lr_sync(offset: u64, write: bool) -> bool {
    write || is_pending_or_active(offset)
}

/// As [`dist_needs_lr_sync`], for an access at `offset` in the redistributor region.
pub fn redist_needs_lr_sync(offset: u64, write: bool) -> bool {
    let offset = offset % GICR_FRAME;
    write || (offset >= SGI_FRAME && is_pending_or_active(offset - SGI_FRAME))
}

fn aligned(offset: u64, size: u8) -> bool {
    matches!(size, 1 | 2 | 4 | 8) && offset.is_multiple_of(u64::from(size))
}

/// A register that reads as `value` and ignores writes (RAZ/WI when 0).
fn read_only(write: bool, value: u64) -> MmioResult {
    if write {
        MmioResult::Written
    } else {
        MmioResult::Read(value)
    }
}

#[inline(always)]
pub(super) fn dist_access<const V: usize, const S: usize, const L: usize>(
    v: &mut Vgic<V, S, L>,
    vcpu: usize,
    offset: u64,
    size: u8,
    write: bool,
    value: u64,
) -> MmioResult {
    if !aligned(offset, size) || offset >= 0x1_0000 {
        return MmioResult::BadAccess;
    }
    // Only the per-interrupt arrays are worth the call (the constant
    // registers below are read often).
    if (GICD_IGROUPR..GICD_ICFGR_END).contains(&offset) {
        if let Some(result) = banked_access(v, vcpu, offset, size, write, value, true) {
            return result;
        }
    }
    let router_end = GICD_IROUTER + 8 * u64::from(Vgic::<V, S, L>::INTIDS);
    if (GICD_IROUTER + 8 * 32..router_end).contains(&offset) {
        let intid = ((offset - GICD_IROUTER) / 8) as u32;
        return v.router_access(intid, offset % 8 == 4, size, write, value);
    }
    if size != 4 {
        return MmioResult::BadAccess;
    }
    match offset {
        GICD_CTLR => {
            if write {
                let ctlr = (value as u32) & (CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1);
                if ctlr != v.ctlr {
                    // A group enable can make any interrupt deliverable.
                    v.ctlr = ctlr;
                    v.mark_scan_all();
                }
                MmioResult::Written
            } else {
                // RWP (bit 31) reads 0: writes take effect at once.
                MmioResult::Read(u64::from(v.ctlr | CTLR_ARE | CTLR_DS))
            }
        }
        GICD_TYPER => read_only(write, typer(Vgic::<V, S, L>::INTIDS)),
        GICD_IIDR => read_only(write, IIDR),
        GICD_TYPER2 => read_only(write, 0),
        PIDR2 => read_only(write, PIDR2_GICV3),
        _ => read_only(write, 0),
    }
}

impl<const V: usize, const S: usize, const L: usize> Vgic<V, S, L> {
    /// GICD_IROUTER of SPI `intid`, whole (64-bit) or either half (32-bit).
    fn router_access(
        &mut self,
        intid: u32,
        high: bool,
        size: u8,
        write: bool,
        value: u64,
    ) -> MmioResult {
        if !matches!(size, 4 | 8) {
            return MmioResult::BadAccess;
        }
        let num_vcpus = self.num_vcpus;
        let index = intid.wrapping_sub(32) as usize;
        // Indexed after a bounds test, not through `get` (see `Vgic::target_of`).
        if index >= S {
            return MmioResult::BadAccess;
        }
        let (router, old_target) = (self.spi_router[index], self.spi_target[index]);
        if !write {
            return MmioResult::Read(match (size, high) {
                (8, _) => router,
                (_, false) => router & 0xffff_ffff,
                (_, true) => router >> 32,
            });
        }
        let router = match (size, high) {
            (8, _) => value,
            (_, false) => (router & !0xffff_ffff) | (value & 0xffff_ffff),
            (_, true) => (router & 0xffff_ffff) | (value << 32),
        } & IROUTER_WRITABLE;
        let target = router_target(router, num_vcpus);
        self.spi_router[index] = router;
        if target != old_target {
            self.spi_target[index] = target;
            let (word, bit) = (index / 32, 1 << (index % 32));
            if word < SPI_WORDS {
                for vcpu in 0..V {
                    if vcpu == usize::from(target) {
                        self.routed[vcpu][word] |= bit;
                    } else {
                        self.routed[vcpu][word] &= !bit;
                    }
                }
            }
            // The glue moves the physical SPI along with the virtual one.
            self.note_hw_change(intid);
            self.note_written(0, intid, 1);
        }
        MmioResult::Written
    }
}

/// The vCPU a GICD_IROUTER value delivers to. Aff0 names the vCPU; a value
/// naming no vCPU (other affinity levels set, Aff0 too large) keeps what the
/// guest wrote but delivers to vCPU 0, and so does IRM = 1 ("any vCPU").
fn router_target(router: u64, num_vcpus: usize) -> u8 {
    let aff0 = (router & 0xff) as usize;
    let other_levels = router & IROUTER_WRITABLE & !IROUTER_IRM & !0xff;
    if router & IROUTER_IRM == 0 && other_levels == 0 && aff0 < num_vcpus {
        aff0 as u8
    } else {
        0
    }
}

#[inline(always)]
pub(super) fn redist_access<const V: usize, const S: usize, const L: usize>(
    v: &mut Vgic<V, S, L>,
    offset: u64,
    size: u8,
    write: bool,
    value: u64,
) -> MmioResult {
    if !aligned(offset, size) {
        return MmioResult::BadAccess;
    }
    let vcpu = usize::try_from(offset / GICR_FRAME).unwrap_or(usize::MAX);
    if vcpu >= v.num_vcpus {
        return MmioResult::BadAccess;
    }
    let offset = offset % GICR_FRAME;
    if offset >= SGI_FRAME {
        return match banked_access(v, vcpu, offset - SGI_FRAME, size, write, value, false) {
            Some(result) => result,
            // Reserved, IGRPMODR0 and NSACR: RAZ/WI.
            None if size == 4 => read_only(write, 0),
            None => MmioResult::BadAccess,
        };
    }
    if offset == GICR_TYPER || offset == GICR_TYPER + 4 {
        if size == 8 && offset != GICR_TYPER || !matches!(size, 4 | 8) {
            return MmioResult::BadAccess;
        }
        // Affinity = Aff0 vCPU index; Processor_Number; Last on the final vCPU.
        let last = if vcpu + 1 == v.num_vcpus { 1 << 4 } else { 0 };
        let typer = ((vcpu as u64) << 32) | ((vcpu as u64) << 8) | last;
        let value = match (size, offset) {
            (8, _) => typer,
            (_, GICR_TYPER) => typer & 0xffff_ffff,
            _ => typer >> 32,
        };
        return read_only(write, value);
    }
    if size != 4 {
        return MmioResult::BadAccess;
    }
    match offset {
        GICR_CTLR => read_only(write, 0),
        GICR_IIDR => read_only(write, IIDR),
        GICR_WAKER => {
            if write {
                v.asleep[vcpu] = value & WAKER_PROCESSOR_SLEEP != 0;
                MmioResult::Written
            } else {
                let sleep = if v.asleep[vcpu] {
                    WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP
                } else {
                    0
                };
                MmioResult::Read(sleep)
            }
        }
        PIDR2 => read_only(write, PIDR2_GICV3),
        _ => read_only(write, 0),
    }
}
