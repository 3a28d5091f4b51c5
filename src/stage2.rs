//! Stage-2 translation tables (VMSAv8-64, 4 KiB granule): the map from a
//! VM's intermediate physical addresses (IPAs) to host physical addresses.
//!
//! The table memory is behind [`TableMemory`], so the same builder runs on
//! the hardware (identity-mapped frames) and on the host in tests and proofs.
//! Every mapping's output must lie inside one of the VM's allowed physical
//! ranges ([`Stage2::allow`]): its RAM frames and assigned device MMIO. So
//! no sequence of calls can map another VM's memory or the hypervisor's.
//! Failed calls change no translation.

/// Memory holding translation tables.
pub trait TableMemory {
    /// Index bits each table level resolves: 9 (512 entries per 4 KiB table)
    /// as the hardware walks them. The builder is written for any value, so
    /// proofs run it on 4-entry tables (2 bits) with the same three levels
    /// below the root, blocks, splits and concatenated roots, where
    /// unrolling 512-entry loops would be out of reach.
    const LEVEL_BITS: u32 = 9;
    /// `pages` contiguous zeroed 4 KiB pages aligned to `pages * 4 KiB`; their physical address.
    fn alloc_table(&mut self, pages: usize) -> Option<u64>;
    fn free_table(&mut self, pa: u64, pages: usize);
    fn read_entry(&self, table_pa: u64, index: usize) -> u64;
    fn write_entry(&mut self, table_pa: u64, index: usize, value: u64);
    /// A valid entry covering `ipa` was just invalidated (break-before-make):
    /// drop stale TLB entries before it is replaced. No-op by default.
    fn invalidate_ipa(&mut self, _ipa: u64) {}
}

/// Stage-2 access permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Perms {
    pub const NONE: Perms = Perms {
        read: false,
        write: false,
        exec: false,
    };
    pub const RO: Perms = Perms {
        read: true,
        write: false,
        exec: false,
    };
    pub const RW: Perms = Perms {
        read: true,
        write: true,
        exec: false,
    };
    pub const RX: Perms = Perms {
        read: true,
        write: false,
        exec: true,
    };
    pub const RWX: Perms = Perms {
        read: true,
        write: true,
        exec: true,
    };
}

/// Stage-2 memory type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemAttr {
    /// Normal, inner and outer write-back cacheable (MemAttr 0b1111).
    Normal,
    /// Device-nGnRE (MemAttr 0b0001).
    Device,
}

/// Result of a software table walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub pa: u64,
    pub perms: Perms,
    pub attr: MemAttr,
    /// Size of the page or block that maps the address.
    pub block_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage2Error {
    Misaligned,
    ZeroSize,
    OutOfIpaRange,
    Overlap,
    NotMapped,
    OutsideAllowedMemory,
    NoMemory,
    UnsupportedIpaSize,
    /// More allowed ranges than the VM may have.
    TooManyRanges,
}

const PAGE: u64 = 4096;
const MAX_ALLOWED: usize = 16;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;
const MEMATTR_SHIFT: u32 = 2;
const MEMATTR_MASK: u64 = 0xf << MEMATTR_SHIFT;
const MEMATTR_NORMAL_WB: u64 = 0b1111;
const MEMATTR_DEVICE_NGNRE: u64 = 0b0001;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;
const PERM_MASK: u64 = S2AP_READ | S2AP_WRITE | XN;

fn perm_bits(perms: Perms) -> u64 {
    (if perms.read { S2AP_READ } else { 0 })
        | (if perms.write { S2AP_WRITE } else { 0 })
        | (if perms.exec { 0 } else { XN })
}

fn leaf_attrs(perms: Perms, attr: MemAttr) -> u64 {
    let memattr = match attr {
        MemAttr::Normal => (MEMATTR_NORMAL_WB << MEMATTR_SHIFT) | SH_INNER,
        MemAttr::Device => MEMATTR_DEVICE_NGNRE << MEMATTR_SHIFT,
    };
    AF | memattr | perm_bits(perms)
}

fn decode_leaf(desc: u64) -> (Perms, MemAttr) {
    let perms = Perms {
        read: desc & S2AP_READ != 0,
        write: desc & S2AP_WRITE != 0,
        exec: desc & XN == 0,
    };
    let attr = if (desc & MEMATTR_MASK) >> MEMATTR_SHIFT == MEMATTR_NORMAL_WB {
        MemAttr::Normal
    } else {
        MemAttr::Device
    };
    (perms, attr)
}

enum Entry {
    Invalid,
    Table(u64),
    Leaf(u64),
}

fn classify(desc: u64, level: u32) -> Entry {
    if desc & VALID == 0 {
        Entry::Invalid
    } else if level < 3 && desc & TABLE_OR_PAGE != 0 {
        Entry::Table(desc & OA_MASK)
    } else {
        Entry::Leaf(desc)
    }
}

/// A VM's stage-2 translation tables.
pub struct Stage2<M: TableMemory> {
    mem: M,
    root: u64,
    root_pages: usize,
    start_level: u32,
    ipa_bits: u32,
    pa_bits: u32,
    allowed: [(u64, u64); MAX_ALLOWED],
    allowed_count: usize,
    /// Whether [`Stage2::map`] may use 1 GiB and 2 MiB blocks.
    blocks: bool,
}

impl<M: TableMemory> Stage2<M> {
    /// Entries in one table.
    const ENTRIES: u64 = 1 << M::LEVEL_BITS;
    /// IPA bits one level-1 table covers (39 with 512-entry tables).
    const LEVEL1_BITS: u32 = 12 + 3 * M::LEVEL_BITS;

    fn level_shift(level: u32) -> u32 {
        12 + M::LEVEL_BITS * (3 - level)
    }

    fn level_size(level: u32) -> u64 {
        1 << Self::level_shift(level)
    }

    /// Empty tables for an `ipa_bits`-bit IPA space (32..=48) on a machine with `pa_bits`-bit PAs.
    /// (With smaller tables, from 7 bits below a level-1 table's reach, but
    /// never less than a level-2 table's, to a level-0 table's.)
    pub fn new(mut mem: M, ipa_bits: u32, pa_bits: u32) -> Result<Self, Stage2Error> {
        let min_bits = (Self::LEVEL1_BITS - 7).max(Self::LEVEL1_BITS - M::LEVEL_BITS + 1);
        let max_bits = Self::LEVEL1_BITS + M::LEVEL_BITS;
        if !(min_bits..=max_bits).contains(&ipa_bits)
            || !matches!(pa_bits, 32 | 36 | 40 | 42 | 44 | 48)
        {
            return Err(Stage2Error::UnsupportedIpaSize);
        }
        // Start at level 1 up to 42 bits, concatenating up to 8 level-1
        // tables above 39 bits (Arm ARM D8.2.x); level 0 beyond.
        let (start_level, root_pages) = if ipa_bits <= Self::LEVEL1_BITS {
            (1, 1)
        } else if ipa_bits <= Self::LEVEL1_BITS + 3 {
            (1, 1usize << (ipa_bits - Self::LEVEL1_BITS))
        } else {
            (0, 1)
        };
        let root = mem.alloc_table(root_pages).ok_or(Stage2Error::NoMemory)?;
        Ok(Stage2 {
            mem,
            root,
            root_pages,
            start_level,
            ipa_bits,
            pa_bits,
            allowed: [(0, 0); MAX_ALLOWED],
            allowed_count: 0,
            blocks: true,
        })
    }

    pub fn root_pa(&self) -> u64 {
        self.root
    }

    pub fn mem(&self) -> &M {
        &self.mem
    }

    pub fn mem_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// VTCR_EL2 for these tables.
    pub fn vtcr(&self) -> u64 {
        let t0sz = u64::from(64 - self.ipa_bits);
        let sl0: u64 = match self.start_level {
            0 => 0b10,
            1 => 0b01,
            _ => 0b00,
        };
        let ps: u64 = match self.pa_bits {
            32 => 0,
            36 => 1,
            40 => 2,
            42 => 3,
            44 => 4,
            _ => 5,
        };
        (1 << 31) | (ps << 16) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | (sl0 << 6) | t0sz
    }

    /// Allow mappings to the physical range `[pa, pa + size)`, which must
    /// lie below `1 << pa_bits`.
    pub fn allow(&mut self, pa: u64, size: u64) -> Result<(), Stage2Error> {
        if size == 0 {
            return Err(Stage2Error::ZeroSize);
        }
        let end = pa
            .checked_add(size)
            .ok_or(Stage2Error::OutsideAllowedMemory)?;
        // Descriptors keep only output-address bits below `pa_bits`: a range
        // above would alias low memory (the hypervisor's).
        if end > 1u64 << self.pa_bits {
            return Err(Stage2Error::OutsideAllowedMemory);
        }
        if self.allowed_count == MAX_ALLOWED {
            return Err(Stage2Error::TooManyRanges);
        }
        self.allowed[self.allowed_count] = (pa, size);
        self.allowed_count += 1;
        Ok(())
    }

    fn is_allowed(&self, pa: u64, size: u64) -> bool {
        let Some(end) = pa.checked_add(size) else {
            return false;
        };
        self.allowed[..self.allowed_count]
            .iter()
            .any(|&(base, len)| pa >= base && end <= base + len)
    }

    fn check_range(&self, ipa: u64, size: u64) -> Result<u64, Stage2Error> {
        if size == 0 {
            return Err(Stage2Error::ZeroSize);
        }
        // Masks, not `%`: a model checker encodes a remainder as a 64-bit divider.
        if (ipa | size) & (PAGE - 1) != 0 {
            return Err(Stage2Error::Misaligned);
        }
        let end = ipa.checked_add(size).ok_or(Stage2Error::OutOfIpaRange)?;
        if end > 1u64 << self.ipa_bits {
            return Err(Stage2Error::OutOfIpaRange);
        }
        Ok(end)
    }

    fn root_entries(&self) -> u64 {
        (1u64 << self.ipa_bits) >> Self::level_shift(self.start_level)
    }

    /// Entry range of table (at `level`, covering IPAs from `table_base`) that overlaps `[start, end)`.
    fn entries_in(&self, level: u32, table_base: u64, start: u64, end: u64) -> (u64, u64) {
        let span = Self::level_size(level);
        let count = if level == self.start_level {
            self.root_entries()
        } else {
            Self::ENTRIES
        };
        // Spans and counts are powers of two: shifts and masks, not divisions (which a
        // model checker would have to encode as 64-bit dividers).
        let shift = Self::level_shift(level);
        let first = (start.max(table_base) - table_base) >> shift;
        let last = ((end - table_base + (span - 1)) >> shift).min(count);
        (first, last)
    }

    /// Let later [`Stage2::map`] calls use blocks (the default) or only
    /// 4 KiB pages. Pages cost table memory and TLB reach on hardware, but
    /// under QEMU's TCG a guest page behind a stage-2 block is recorded as a
    /// block-sized page, and every guest TLB invalidation by address inside
    /// such a "large page" flushes the guest's whole software TLB.
    pub fn set_block_mappings(&mut self, allowed: bool) {
        self.blocks = allowed;
    }

    /// Map `[ipa, ipa + size)` to `[pa, pa + size)`.
    ///
    /// The whole output range must lie in one allowed range, and nothing in
    /// the input range may be mapped yet; on any error no translation
    /// changes. Uses 1 GiB and 2 MiB blocks where `ipa`, `pa` and the
    /// remaining size allow, 4 KiB pages elsewhere. [`Perms::NONE`] is
    /// accepted: a valid descriptor with no access, so every guest access
    /// faults to the hypervisor (useful to trap a range while keeping it
    /// reserved).
    pub fn map(
        &mut self,
        ipa: u64,
        pa: u64,
        size: u64,
        perms: Perms,
        attr: MemAttr,
    ) -> Result<(), Stage2Error> {
        let end = self.check_range(ipa, size)?;
        if pa & (PAGE - 1) != 0 {
            return Err(Stage2Error::Misaligned);
        }
        if !self.is_allowed(pa, size) {
            return Err(Stage2Error::OutsideAllowedMemory);
        }
        if self.any_mapped(self.root, self.start_level, 0, ipa, end) {
            return Err(Stage2Error::Overlap);
        }
        let mut done = ipa;
        let result = self.map_in(
            self.root,
            self.start_level,
            0,
            ipa,
            end,
            pa.wrapping_sub(ipa),
            leaf_attrs(perms, attr),
            &mut done,
        );
        if result.is_err() && done > ipa {
            // Out of table memory half-way: take back what was mapped.
            self.clear_in(self.root, self.start_level, 0, ipa, done);
        }
        result
    }

    fn any_mapped(&self, table: u64, level: u32, base: u64, start: u64, end: u64) -> bool {
        let (first, last) = self.entries_in(level, base, start, end);
        (first..last).any(|i| {
            let entry_base = base + i * Self::level_size(level);
            match classify(self.mem.read_entry(table, i as usize), level) {
                Entry::Invalid => false,
                Entry::Leaf(_) => true,
                Entry::Table(next) => self.any_mapped(next, level + 1, entry_base, start, end),
            }
        })
    }

    fn all_mapped(&self, table: u64, level: u32, base: u64, start: u64, end: u64) -> bool {
        let (first, last) = self.entries_in(level, base, start, end);
        (first..last).all(|i| {
            let entry_base = base + i * Self::level_size(level);
            match classify(self.mem.read_entry(table, i as usize), level) {
                Entry::Invalid => false,
                Entry::Leaf(_) => true,
                Entry::Table(next) => self.all_mapped(next, level + 1, entry_base, start, end),
            }
        })
    }

    /// `delta` = pa - ipa (wrapping); `done` advances as leaves are written.
    #[allow(clippy::too_many_arguments)]
    fn map_in(
        &mut self,
        table: u64,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
        delta: u64,
        attrs: u64,
        done: &mut u64,
    ) -> Result<(), Stage2Error> {
        let span = Self::level_size(level);
        let (first, last) = self.entries_in(level, base, start, end);
        for i in first..last {
            let entry_base = base + i * span;
            let lo = start.max(entry_base);
            let hi = end.min(entry_base + span);
            let out = lo.wrapping_add(delta);
            let whole_entry = lo == entry_base && hi == entry_base + span;
            if level == 3 || (self.blocks && level >= 1 && whole_entry && out & (span - 1) == 0) {
                let kind = if level == 3 {
                    VALID | TABLE_OR_PAGE
                } else {
                    VALID
                };
                if let Entry::Table(old) = classify(self.mem.read_entry(table, i as usize), level) {
                    // An empty table left by an earlier unmap (the overlap
                    // check saw nothing mapped under it). Break-before-make,
                    // because walk caches may still hold the table entry,
                    // and free it so it does not leak.
                    self.mem.write_entry(table, i as usize, 0);
                    self.mem.invalidate_ipa(entry_base);
                    self.free_tree(old, level + 1);
                }
                self.mem
                    .write_entry(table, i as usize, (out & OA_MASK) | attrs | kind);
                *done = hi;
                continue;
            }
            let next = match classify(self.mem.read_entry(table, i as usize), level) {
                Entry::Table(next) => next,
                _ => {
                    let next = self.mem.alloc_table(1).ok_or(Stage2Error::NoMemory)?;
                    self.mem
                        .write_entry(table, i as usize, next | VALID | TABLE_OR_PAGE);
                    next
                }
            };
            self.map_in(next, level + 1, entry_base, lo, hi, delta, attrs, done)?;
        }
        Ok(())
    }

    /// Replace the leaf at `table[i]` (a block at `level`) with a table of
    /// next-level leaves translating exactly the same way.
    fn split_block(
        &mut self,
        table: u64,
        i: usize,
        level: u32,
        entry_base: u64,
    ) -> Result<u64, Stage2Error> {
        let desc = self.mem.read_entry(table, i);
        let next = self.mem.alloc_table(1).ok_or(Stage2Error::NoMemory)?;
        let child_span = Self::level_size(level + 1);
        let kind = if level + 1 == 3 {
            VALID | TABLE_OR_PAGE
        } else {
            VALID
        };
        let attrs = desc & !OA_MASK & !(VALID | TABLE_OR_PAGE);
        for k in 0..Self::ENTRIES {
            let out = (desc & OA_MASK) + k * child_span;
            self.mem.write_entry(next, k as usize, out | attrs | kind);
        }
        // Break-before-make: invalidate, flush, then install the table.
        self.mem.write_entry(table, i, 0);
        self.mem.invalidate_ipa(entry_base);
        self.mem.write_entry(table, i, next | VALID | TABLE_OR_PAGE);
        Ok(next)
    }

    /// Make sure no block straddles `boundary` (so ranges ending there can be changed alone).
    fn split_at(&mut self, boundary: u64) -> Result<(), Stage2Error> {
        if boundary >= 1u64 << self.ipa_bits {
            return Ok(());
        }
        let mut table = self.root;
        let mut level = self.start_level;
        loop {
            let span = Self::level_size(level);
            let count = if level == self.start_level {
                self.root_entries()
            } else {
                Self::ENTRIES
            };
            let index = ((boundary >> Self::level_shift(level)) & (count - 1)) as usize;
            let entry_base = boundary & !(span - 1);
            match classify(self.mem.read_entry(table, index), level) {
                Entry::Invalid => return Ok(()),
                Entry::Leaf(_) if boundary & (span - 1) == 0 || level == 3 => return Ok(()),
                Entry::Leaf(_) => table = self.split_block(table, index, level, entry_base)?,
                Entry::Table(next) => table = next,
            }
            if boundary & (span - 1) == 0 {
                return Ok(());
            }
            level += 1;
        }
    }

    /// Invalidate every leaf inside `[start, end)` (no block may straddle
    /// its ends: see [`Self::split_at`]) and free tables it covers whole.
    fn clear_in(&mut self, table: u64, level: u32, base: u64, start: u64, end: u64) {
        let span = Self::level_size(level);
        let (first, last) = self.entries_in(level, base, start, end);
        for i in first..last {
            let entry_base = base + i * span;
            let whole = start <= entry_base && end >= entry_base + span;
            match classify(self.mem.read_entry(table, i as usize), level) {
                Entry::Invalid => {}
                Entry::Leaf(_) => {
                    if whole {
                        self.mem.write_entry(table, i as usize, 0);
                        self.mem.invalidate_ipa(entry_base);
                    }
                }
                Entry::Table(next) => {
                    self.clear_in(next, level + 1, entry_base, start, end);
                    if whole {
                        self.mem.write_entry(table, i as usize, 0);
                        self.mem.invalidate_ipa(entry_base);
                        self.free_tree(next, level + 1);
                    }
                }
            }
        }
    }

    fn free_tree(&mut self, table: u64, level: u32) {
        if level < 3 {
            for i in 0..Self::ENTRIES as usize {
                if let Entry::Table(next) = classify(self.mem.read_entry(table, i), level) {
                    self.free_tree(next, level + 1);
                }
            }
        }
        self.mem.free_table(table, 1);
    }

    fn set_perms_in(&mut self, table: u64, level: u32, base: u64, start: u64, end: u64, bits: u64) {
        let span = Self::level_size(level);
        let (first, last) = self.entries_in(level, base, start, end);
        for i in first..last {
            let entry_base = base + i * span;
            match classify(self.mem.read_entry(table, i as usize), level) {
                Entry::Invalid => {}
                Entry::Leaf(desc) => {
                    self.mem.write_entry(table, i as usize, 0);
                    self.mem.invalidate_ipa(entry_base);
                    self.mem
                        .write_entry(table, i as usize, (desc & !PERM_MASK) | bits);
                }
                Entry::Table(next) => {
                    self.set_perms_in(next, level + 1, entry_base, start, end, bits)
                }
            }
        }
    }

    /// Remove exactly `[ipa, ipa + size)`, which must be fully mapped.
    pub fn unmap(&mut self, ipa: u64, size: u64) -> Result<(), Stage2Error> {
        let end = self.check_range(ipa, size)?;
        if !self.all_mapped(self.root, self.start_level, 0, ipa, end) {
            return Err(Stage2Error::NotMapped);
        }
        // Splitting keeps every translation as it was, so running out of
        // memory here leaves the mapping unchanged.
        self.split_at(ipa)?;
        self.split_at(end)?;
        self.clear_in(self.root, self.start_level, 0, ipa, end);
        Ok(())
    }

    /// Change the permissions of `[ipa, ipa + size)`, which must be fully mapped.
    pub fn set_perms(&mut self, ipa: u64, size: u64, perms: Perms) -> Result<(), Stage2Error> {
        let end = self.check_range(ipa, size)?;
        if !self.all_mapped(self.root, self.start_level, 0, ipa, end) {
            return Err(Stage2Error::NotMapped);
        }
        self.split_at(ipa)?;
        self.split_at(end)?;
        self.set_perms_in(self.root, self.start_level, 0, ipa, end, perm_bits(perms));
        Ok(())
    }

    /// Walk the tables for `ipa`, as the hardware would.
    pub fn translate(&self, ipa: u64) -> Option<Translation> {
        if ipa >= 1u64 << self.ipa_bits {
            return None;
        }
        let mut table = self.root;
        let mut level = self.start_level;
        loop {
            let count = if level == self.start_level {
                self.root_entries()
            } else {
                Self::ENTRIES
            };
            let index = ((ipa >> Self::level_shift(level)) & (count - 1)) as usize;
            match classify(self.mem.read_entry(table, index), level) {
                Entry::Invalid => return None,
                Entry::Table(next) => {
                    table = next;
                    level += 1;
                }
                Entry::Leaf(desc) => {
                    let span = Self::level_size(level);
                    let (perms, attr) = decode_leaf(desc);
                    return Some(Translation {
                        pa: (desc & OA_MASK & !(span - 1)) | (ipa & (span - 1)),
                        perms,
                        attr,
                        block_size: span,
                    });
                }
            }
        }
    }

    /// Number of root pages (concatenated level-1 tables for 40..=42-bit IPAs).
    pub fn root_pages(&self) -> usize {
        self.root_pages
    }
}

/// Table memory in host RAM, for tests and proofs: up to [`ARENA_PAGES`]
/// tables of `N` entries (512 as on hardware, or fewer for proofs), one per
/// 4 KiB page from an address far from any guest range. Plain arrays found
/// by index, not a growing list searched or a heap buffer: a proof then
/// neither unrolls a lookup loop nor rewrites a heap object byte by byte on
/// every entry written.
#[cfg(any(test, kani))]
pub struct TableArena<const N: usize> {
    /// Page `k` is at `BASE + k * 4 KiB`.
    pages: [[u64; N]; ARENA_PAGES],
    /// Whether page `k` is handed out and not freed.
    in_use: [bool; ARENA_PAGES],
    /// Pages handed out so far (freed pages are not reused).
    used: usize,
    live: usize,
    /// Fail allocations once this many pages are in use.
    pub limit: usize,
    pub freed: usize,
}

/// Pages a [`TableArena`] can hand out.
#[cfg(any(test, kani))]
pub const ARENA_PAGES: usize = 16;

/// Table memory with hardware-sized tables.
#[cfg(any(test, kani))]
pub type TestTableMemory = TableArena<512>;

#[cfg(any(test, kani))]
impl<const N: usize> TableArena<N> {
    pub const BASE: u64 = 0x7f_0000_0000;

    pub fn new() -> Self {
        TableArena {
            pages: [[0; N]; ARENA_PAGES],
            in_use: [false; ARENA_PAGES],
            used: 0,
            live: 0,
            limit: usize::MAX,
            freed: 0,
        }
    }

    /// Page and entry of `index` in the table at `table_pa`, if that page is in use.
    fn locate(&self, table_pa: u64, index: usize) -> Option<(usize, usize)> {
        // Shifts and masks (PAGE and N are powers of two): a model checker
        // encodes `/` and `%`, even by a constant, as 64-bit dividers, and
        // every table access of a proof goes through here.
        let offset = table_pa.checked_sub(Self::BASE)?;
        if offset & (PAGE - 1) != 0 {
            return None;
        }
        let page = (offset >> PAGE.trailing_zeros()) as usize + (index >> N.trailing_zeros());
        (page < ARENA_PAGES && self.in_use[page]).then_some((page, index & (N - 1)))
    }
}

#[cfg(any(test, kani))]
impl<const N: usize> Default for TableArena<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(any(test, kani))]
impl<const N: usize> TableMemory for TableArena<N> {
    const LEVEL_BITS: u32 = N.trailing_zeros();

    fn alloc_table(&mut self, pages: usize) -> Option<u64> {
        // BASE is aligned far beyond any root size: aligning the index aligns the address.
        // (`pages` is a power of two: round up with a mask, not a division by a variable.)
        let first = (self.used + pages - 1) & !(pages - 1);
        if self.live + pages > self.limit || first + pages > ARENA_PAGES {
            return None;
        }
        for k in first..first + pages {
            self.pages[k] = [0; N];
            self.in_use[k] = true;
        }
        self.used = first + pages;
        self.live += pages;
        Some(Self::BASE + first as u64 * PAGE)
    }

    fn free_table(&mut self, pa: u64, pages: usize) {
        self.freed += pages;
        for k in 0..pages {
            if let Some((page, _)) = self.locate(pa, k * N) {
                self.in_use[page] = false;
                self.live -= 1;
            }
        }
    }

    fn read_entry(&self, table_pa: u64, index: usize) -> u64 {
        self.locate(table_pa, index)
            .map_or(0, |(page, i)| self.pages[page][i])
    }

    fn write_entry(&mut self, table_pa: u64, index: usize, value: u64) {
        if let Some((page, i)) = self.locate(table_pa, index) {
            self.pages[page][i] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB2: u64 = 2 << 20;
    const RAM_PA: u64 = 0x8000_0000;

    fn vm(ipa_bits: u32) -> Stage2<TestTableMemory> {
        let mut s = Stage2::new(TestTableMemory::new(), ipa_bits, 40).unwrap();
        s.allow(RAM_PA, 4 * GIB).unwrap();
        s
    }

    #[test]
    fn vtcr_for_40_and_39_bit_ipa() {
        let s = vm(40);
        assert_eq!(s.root_pages(), 2);
        assert_eq!(s.root_pa() % (2 * PAGE), 0);
        assert_eq!(s.vtcr() & 0x3f, 24);
        assert_eq!((s.vtcr() >> 6) & 3, 1);
        assert_eq!((s.vtcr() >> 16) & 7, 2);
        assert_eq!(s.vtcr() & (1 << 31), 1 << 31);
        let s = vm(39);
        assert_eq!((s.root_pages(), s.vtcr() & 0x3f), (1, 25));
    }

    #[test]
    fn maps_pages_only_when_blocks_are_off() {
        let mut s = vm(40);
        s.set_block_mappings(false);
        s.map(0x4000_0000, RAM_PA, 2 * MIB2, Perms::RWX, MemAttr::Normal)
            .unwrap();
        for ipa in [0x4000_0000, 0x401f_f000, 0x4020_0000, 0x403f_f123] {
            let t = s.translate(ipa).unwrap();
            assert_eq!(t.block_size, PAGE);
            assert_eq!(t.pa, RAM_PA + (ipa - 0x4000_0000));
        }
        assert_eq!(s.translate(0x4040_0000), None);
    }

    #[test]
    fn uses_blocks_when_aligned_and_pages_otherwise() {
        let mut s = vm(40);
        s.map(0x4000_0000, RAM_PA, GIB, Perms::RWX, MemAttr::Normal)
            .unwrap();
        assert_eq!(s.translate(0x4000_1234).unwrap().block_size, GIB);
        s.map(0x8000_0000, RAM_PA + GIB, MIB2, Perms::RW, MemAttr::Normal)
            .unwrap();
        assert_eq!(s.translate(0x8000_0000).unwrap().block_size, MIB2);
        s.map(
            0x9000_1000,
            RAM_PA + 2 * GIB + 0x1000,
            0x3000,
            Perms::RO,
            MemAttr::Device,
        )
        .unwrap();
        let t = s.translate(0x9000_2abc).unwrap();
        assert_eq!(
            (t.pa, t.block_size, t.perms, t.attr),
            (RAM_PA + 2 * GIB + 0x2abc, PAGE, Perms::RO, MemAttr::Device)
        );
        assert_eq!(s.translate(0x9000_0000), None);
        assert_eq!(s.translate(0x9000_4000), None);
    }

    #[test]
    fn partial_unmap_splits_a_block_and_keeps_the_rest() {
        let mut s = vm(40);
        s.map(0x4000_0000, RAM_PA, GIB, Perms::RWX, MemAttr::Normal)
            .unwrap();
        s.unmap(0x4020_1000, 0x1000).unwrap();
        assert_eq!(s.translate(0x4020_1000), None);
        assert_eq!(s.translate(0x4020_0fff).unwrap().pa, RAM_PA + 0x20_0fff);
        assert_eq!(s.translate(0x4020_2000).unwrap().pa, RAM_PA + 0x20_2000);
        assert_eq!(s.translate(0x7fff_ffff).unwrap().pa, RAM_PA + GIB - 1);
        assert_eq!(s.unmap(0x4020_1000, 0x1000), Err(Stage2Error::NotMapped));
        s.set_perms(0x4000_0000, PAGE, Perms::RO).unwrap();
        assert_eq!(s.translate(0x4000_0000).unwrap().perms, Perms::RO);
        assert_eq!(s.translate(0x4000_1000).unwrap().perms, Perms::RWX);
    }

    #[test]
    fn refuses_bad_requests_without_changes() {
        let mut s = vm(40);
        s.map(0x4000_0000, RAM_PA, MIB2, Perms::RW, MemAttr::Normal)
            .unwrap();
        assert_eq!(
            s.map(
                0x401f_f000,
                RAM_PA + MIB2,
                0x2000,
                Perms::RW,
                MemAttr::Normal
            ),
            Err(Stage2Error::Overlap)
        );
        assert_eq!(s.translate(0x4020_0000), None);
        assert_eq!(
            s.map(0x5000_0000, 0x1000, PAGE, Perms::RW, MemAttr::Normal),
            Err(Stage2Error::OutsideAllowedMemory)
        );
        assert_eq!(
            s.map(0x5000_0800, RAM_PA, PAGE, Perms::RW, MemAttr::Normal),
            Err(Stage2Error::Misaligned)
        );
        assert_eq!(
            s.map(0x5000_0000, RAM_PA, 0, Perms::RW, MemAttr::Normal),
            Err(Stage2Error::ZeroSize)
        );
        assert_eq!(
            s.map(1 << 40, RAM_PA, PAGE, Perms::RW, MemAttr::Normal),
            Err(Stage2Error::OutOfIpaRange)
        );
        assert_eq!(
            s.map(!0xfff, RAM_PA, 2 * PAGE, Perms::RW, MemAttr::Normal),
            Err(Stage2Error::OutOfIpaRange)
        );
        assert_eq!(
            Stage2::new(TestTableMemory::new(), 52, 40).err(),
            Some(Stage2Error::UnsupportedIpaSize)
        );
    }

    #[test]
    fn vtcr_start_levels_and_root_sizes() {
        // (ipa_bits, root pages, T0SZ, SL0)
        for (bits, pages, t0sz, sl0) in [
            (32, 1, 32, 1),
            (39, 1, 25, 1),
            (42, 8, 22, 1),
            (44, 1, 20, 2),
            (48, 1, 16, 2),
        ] {
            let s = Stage2::new(TestTableMemory::new(), bits, 48).unwrap();
            assert_eq!(s.root_pages(), pages, "{bits}-bit IPA");
            assert_eq!(s.vtcr() & 0x3f, t0sz);
            assert_eq!((s.vtcr() >> 6) & 3, sl0);
            assert_eq!((s.vtcr() >> 16) & 7, 5); // PS: 48 bits
            assert_eq!((s.vtcr() >> 8) & 0xff, 0b0011_0101); // SH0, ORGN0, IRGN0; TG0 = 4K
        }
    }

    #[test]
    fn block_over_a_table_emptied_by_unmap_frees_the_table() {
        let mut s = vm(40);
        s.map(0x4000_0000, RAM_PA, PAGE, Perms::RW, MemAttr::Normal)
            .unwrap();
        s.unmap(0x4000_0000, PAGE).unwrap();
        assert_eq!(s.mem().freed, 0); // the level-2 and level-3 tables stay
        s.map(0x4000_0000, RAM_PA, MIB2, Perms::RW, MemAttr::Normal)
            .unwrap();
        assert_eq!(s.mem().freed, 1); // the empty level-3 table
        assert_eq!(s.translate(0x4000_0000).unwrap().block_size, MIB2);
        s.unmap(0x4000_0000, MIB2).unwrap();
        s.map(0x4000_0000, RAM_PA, GIB, Perms::RW, MemAttr::Normal)
            .unwrap();
        assert_eq!(s.mem().freed, 2); // the empty level-2 table
        assert_eq!(s.translate(0x7fff_f000).unwrap().pa, RAM_PA + GIB - PAGE);
    }

    #[test]
    fn allowed_ranges_must_fit_the_physical_address_size() {
        let mut s = Stage2::new(TestTableMemory::new(), 40, 40).unwrap();
        assert_eq!(
            s.allow(1 << 40, PAGE),
            Err(Stage2Error::OutsideAllowedMemory)
        );
        assert_eq!(
            s.allow((1 << 40) - PAGE, 2 * PAGE),
            Err(Stage2Error::OutsideAllowedMemory)
        );
        assert_eq!(s.allow(u64::MAX, 2), Err(Stage2Error::OutsideAllowedMemory));
        assert_eq!(s.allow(RAM_PA, 0), Err(Stage2Error::ZeroSize));
        s.allow((1 << 40) - PAGE, PAGE).unwrap();
        for k in 1..MAX_ALLOWED as u64 {
            s.allow(k * PAGE, PAGE).unwrap();
        }
        assert_eq!(s.allow(0, PAGE), Err(Stage2Error::TooManyRanges));
    }

    #[test]
    fn no_access_mapping_is_valid_and_translates() {
        let mut s = vm(40);
        s.map(0x4000_0000, RAM_PA, PAGE, Perms::NONE, MemAttr::Normal)
            .unwrap();
        assert_eq!(s.translate(0x4000_0000).unwrap().perms, Perms::NONE);
        assert_eq!(
            s.map(0x4000_0000, RAM_PA, PAGE, Perms::RW, MemAttr::Normal),
            Err(Stage2Error::Overlap)
        );
    }

    #[test]
    fn running_out_of_table_memory_changes_nothing() {
        let mut mem = TestTableMemory::new();
        mem.limit = 3; // 2 root pages + 1: not enough for L2 + L3
        let mut s = Stage2::new(mem, 40, 40).unwrap();
        s.allow(RAM_PA, GIB).unwrap();
        assert_eq!(
            s.map(0x4000_0000, RAM_PA, 0x4000, Perms::RW, MemAttr::Normal),
            Err(Stage2Error::NoMemory)
        );
        assert_eq!(s.translate(0x4000_0000), None);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    //! The harnesses run on tables of `N` entries: `N = 2` under Kani (so a
    //! level-1 block is 16 KiB, a level-2 block 8 KiB, pages 4 KiB, and a
    //! 16-bit IPA space has two concatenated root tables, like the 40-bit one
    //! the hypervisor uses; no range spans more than two entries of a table,
    //! so every loop runs at most twice and `unwind(3)` bounds them all), and
    //! both `N = 2` and `N = 512` as property tests. Every size below is
    //! derived from `N`, so both instances exercise level-1 blocks, level-2
    //! blocks, pages, and splits of each.
    use super::*;

    struct Geometry {
        l1: u64,
        l2: u64,
        ram_pa: u64,
        ram_size: u64,
        /// Never allowed: stands for the hypervisor's memory.
        hv_pa: u64,
    }

    fn geometry<const N: usize>() -> Geometry {
        let l2 = PAGE * N as u64;
        let l1 = l2 * N as u64;
        Geometry {
            l1,
            l2,
            ram_pa: l1,
            ram_size: 2 * l1,
            hv_pa: 4 * l1,
        }
    }

    fn small_vm<const N: usize>() -> Stage2<TableArena<N>> {
        let g = geometry::<N>();
        // One bit above a level-1 table's reach: two concatenated root tables.
        let ipa_bits = 13 + 3 * N.trailing_zeros();
        let mut s = Stage2::new(TableArena::<N>::new(), ipa_bits, 40).unwrap();
        assert_eq!(s.root_pages(), 2);
        s.allow(g.ram_pa, g.ram_size).unwrap();
        s
    }

    /// A range to map: level-1, level-2 or page sized, at block-aligned or offset addresses,
    /// its output in the VM's RAM (block aligned or half a level-2 block off) or outside it.
    fn pick_range<const N: usize>(src: &mut crate::verify::Source) -> (u64, u64, u64) {
        let g = geometry::<N>();
        let ipa = src.below(2) * g.l1 + src.below(2) * g.l2 + src.below(2) * PAGE;
        let size = match src.below(3) {
            0 => g.l1,
            1 => g.l2,
            _ => (1 + src.below(3)) * PAGE,
        };
        let pa = if !src.any::<bool>() {
            g.hv_pa + src.below(2) * PAGE
        } else if size == g.l1 {
            g.ram_pa + src.below(2) * g.l2
        } else {
            g.ram_pa + src.below(4) * (g.l2 / 2)
        };
        (ipa, pa, size)
    }

    fn map_then_translate_on<const N: usize>(src: &mut crate::verify::Source) {
        let g = geometry::<N>();
        let mut s = small_vm::<N>();
        let (ipa, pa, size) = pick_range::<N>(src);
        let perms = Perms {
            read: src.any(),
            write: src.any(),
            exec: src.any(),
        };
        let attr = if src.any() {
            MemAttr::Normal
        } else {
            MemAttr::Device
        };
        let result = s.map(ipa, pa, size, perms, attr);
        cover!(
            result == Err(Stage2Error::OutsideAllowedMemory),
            "a map outside the VM's memory is refused"
        );
        if result.is_ok() {
            let offset = src.below(size);
            let t = s
                .translate(ipa + offset)
                .expect("mapped address translates");
            cover!(t.block_size == g.l1, "a level-1 block is mapped");
            cover!(t.block_size == g.l2, "a level-2 block is mapped");
            cover!(
                t.block_size == PAGE && size >= g.l2,
                "a block-sized range misaligned in PA is mapped with pages"
            );
            assert_eq!(t.pa, pa + offset);
            assert_eq!((t.perms, t.attr), (perms, attr));
        }
    }

    proof! {
        /// Mapping a range then translating any address in it gives pa + offset with the requested
        /// permissions and memory type.
        #[unwind(3)]
        fn map_then_translate(src) {
            map_then_translate_on::<2>(src);
            #[cfg(not(kani))]
            map_then_translate_on::<512>(src);
        }
    }

    fn unmap_removes_exactly_the_range_on<const N: usize>(src: &mut crate::verify::Source) {
        let g = geometry::<N>();
        let mut s = small_vm::<N>();
        // All of RAM, as two level-1 blocks.
        s.map(0, g.ram_pa, g.ram_size, Perms::RW, MemAttr::Normal)
            .unwrap();
        // Half the ranges end near a block boundary, where splitting matters.
        let boundary = if src.any() { g.l1 } else { g.l2 };
        let start = if src.any() {
            boundary - src.below(3) * PAGE
        } else {
            src.below(g.ram_size / PAGE) * PAGE
        };
        let size = (1 + src.below(3)) * PAGE;
        let probe = if src.any() {
            start + src.below(size)
        } else {
            src.below(g.ram_size)
        };
        // Splitting a block changes the block size, never where an address goes.
        let view = |t: Option<Translation>| t.map(|t| (t.pa, t.perms, t.attr));
        let before = view(s.translate(probe));
        let result = s.unmap(start, size);
        cover!(
            result == Err(Stage2Error::NotMapped),
            "unmapping beyond the mapping is refused"
        );
        if result.is_ok() {
            if probe >= start && probe < start + size {
                assert_eq!(s.translate(probe), None);
            } else {
                let after = s.translate(probe);
                cover!(
                    after.is_some_and(|t| t.block_size == PAGE),
                    "a block was split down to pages"
                );
                assert_eq!(view(after), before);
            }
        }
    }

    proof! {
        /// Unmapping removes exactly the range: its addresses no longer translate, and addresses
        /// outside it translate as before.
        #[unwind(3)]
        fn unmap_removes_exactly_the_range(src) {
            unmap_removes_exactly_the_range_on::<2>(src);
            #[cfg(not(kani))]
            unmap_removes_exactly_the_range_on::<512>(src);
        }
    }

    fn translations_stay_inside_allowed_memory_on<const N: usize>(src: &mut crate::verify::Source) {
        let g = geometry::<N>();
        let mut s = small_vm::<N>();
        // A map, then any call: every translation a call creates comes from a map, and the
        // second call meets tables holding blocks, pages, or both.
        for step in 0..2 {
            let (ipa, pa, size) = pick_range::<N>(src);
            let probe = ipa + src.below(size);
            let before = s.translate(probe);
            match if step == 0 { 0 } else { src.below(3) } {
                0 => {
                    let result = s.map(ipa, pa, size, Perms::RW, MemAttr::Normal);
                    // An address already mapped makes the map fail and stay as it was.
                    if before.is_some() {
                        cover!(true, "a map over a mapped address");
                        assert!(result.is_err(), "overlapping map accepted");
                        assert_eq!(s.translate(probe), before);
                    }
                }
                1 => {
                    let result = s.unmap(ipa, size);
                    cover!(result.is_ok(), "a range is unmapped");
                }
                _ => {
                    let result = s.set_perms(ipa, size, Perms::RO);
                    cover!(result.is_ok(), "a range's permissions are changed");
                }
            }
            // (Three calls, not a loop over three probes: loops here run at most twice.)
            let inside = |t: Option<Translation>| {
                t.is_none_or(|t| t.pa >= g.ram_pa && t.pa < g.ram_pa + g.ram_size)
            };
            assert!(inside(s.translate(ipa)), "translation outside the VM");
            assert!(
                inside(s.translate(ipa + size - 1)),
                "translation outside the VM"
            );
            assert!(inside(s.translate(probe)), "translation outside the VM");
        }
    }

    proof! {
        /// No map/unmap/set_perms call after a map creates a translation outside the VM's allowed
        /// memory, and an overlapping map is refused without changing any translation.
        #[unwind(3)]
        fn translations_stay_inside_allowed_memory(src) {
            translations_stay_inside_allowed_memory_on::<2>(src);
            #[cfg(not(kani))]
            translations_stay_inside_allowed_memory_on::<512>(src);
        }
    }
}
