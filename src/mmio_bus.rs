//! A VM's MMIO bus: which emulated device owns which guest-physical range.
//!
//! Devices are registered when the VM is built, each with one range; the
//! ranges never overlap (a registration that would overlap is refused and
//! names both ranges). A stage-2 data abort's IPA is looked up to the one
//! device whose range holds it and the offset in that range; an IPA in no
//! range (a hole between devices, or beyond them all) finds nothing and the
//! access is aborted — it never reaches a neighbour.
//!
//! As Firecracker's `vstate/bus.rs`, but looked up on every MMIO exit of a
//! guest, so the lookup is short: the entries are kept sorted by base, and
//! a table indexed by the IPA's 512 KiB region says where in them to start,
//! so finding a device is one table load and usually one entry's compares
//! (the device is the first entry of its region).
//!
//! The bus is generic over what it holds for a device (the hypervisor
//! keeps a reference to the device's emulation; the tests a number).

/// The address bits that select a region of the start table: 512 KiB
/// regions put each of QEMU virt's device windows (the GIC distributor and
/// redistributors too) first in its region.
pub const REGION_SHIFT: u32 = 19;
/// Regions with their own start index (the low 4 GiB: an 8 KiB table);
/// addresses above share one more. Under Kani a few, so that building the
/// table is a short loop; the code is the same for any count.
const REGIONS: usize = if cfg!(kani) {
    4
} else {
    1 << (32 - REGION_SHIFT)
};

/// An inclusive range of guest-physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusRange {
    pub base: u64,
    /// The last address in the range (so a range may end at 2^64 - 1).
    pub last: u64,
}

impl BusRange {
    /// `size` bytes from `base`; `None` for an empty range or one that
    /// would run past the top of the address space.
    pub fn new(base: u64, size: u64) -> Option<BusRange> {
        let last = base.checked_add(size.checked_sub(1)?)?;
        Some(BusRange { base, last })
    }

    pub fn overlaps(&self, other: &BusRange) -> bool {
        self.base <= other.last && other.base <= self.last
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.base <= addr && addr <= self.last
    }
}

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusError {
    /// The range is empty or runs past the top of the address space.
    BadRange { base: u64, size: u64 },
    /// The range overlaps one registered earlier.
    Overlap { new: BusRange, existing: BusRange },
    /// The bus holds [`MAX_DEVICES`] already.
    Full,
}

impl core::fmt::Display for BusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BusError::BadRange { base, size } => {
                write!(
                    f,
                    "MMIO range of {size:#x} bytes at {base:#x} is empty or wraps"
                )
            }
            BusError::Overlap { new, existing } => write!(
                f,
                "MMIO range {:#x}..={:#x} overlaps the device at {:#x}..={:#x}",
                new.base, new.last, existing.base, existing.last
            ),
            BusError::Full => write!(f, "more than {MAX_DEVICES} MMIO devices"),
        }
    }
}

/// Entry slots: the devices and at least one empty slot after them. Under
/// Kani 4 (the proof registers 3), so its symbolic state stays small.
const SLOTS: usize = if cfg!(kani) { 4 } else { 32 };
/// Devices one bus holds at most.
pub const MAX_DEVICES: usize = SLOTS - 1;

/// A device and its range, or (`device: None`) an empty slot, whose range
/// is the last address alone so that a scan always stops at it.
#[derive(Debug, Clone, Copy)]
struct Entry<D> {
    range: BusRange,
    device: Option<D>,
}

impl<D> Entry<D> {
    const EMPTY: Entry<D> = Entry {
        range: BusRange {
            base: u64::MAX,
            last: u64::MAX,
        },
        device: None,
    };
}

/// The devices of one VM by address range.
#[derive(Debug, Clone)]
pub struct MmioBus<D> {
    /// The first `len` sorted by base, not overlapping; then empty slots.
    /// Inline (no pointer to follow) and a power of two long (an index is
    /// masked, not bounds-checked): the lookup is on every MMIO exit.
    entries: [Entry<D>; SLOTS],
    len: usize,
    /// For each region, the first entry that ends in or after it (the only
    /// entries that can hold an address there start from it).
    start: [u8; REGIONS + 1],
}

impl<D: Copy> Default for MmioBus<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Copy> MmioBus<D> {
    pub const fn new() -> Self {
        MmioBus {
            entries: [Entry::EMPTY; SLOTS],
            len: 0,
            start: [0; REGIONS + 1],
        }
    }

    /// Give `device` the `size` bytes at `base`; refused if the range is
    /// empty, wraps, or overlaps a device registered before (the bus is
    /// then unchanged).
    pub fn register(&mut self, base: u64, size: u64, device: D) -> Result<(), BusError> {
        let range = BusRange::new(base, size).ok_or(BusError::BadRange { base, size })?;
        let used = &self.entries[..self.len];
        if let Some(existing) = used.iter().find(|e| e.range.overlaps(&range)) {
            return Err(BusError::Overlap {
                new: range,
                existing: existing.range,
            });
        }
        if self.len >= MAX_DEVICES {
            return Err(BusError::Full);
        }
        let at = used.partition_point(|e| e.range.base < base);
        self.entries.copy_within(at..self.len, at + 1);
        self.entries[at] = Entry {
            range,
            device: Some(device),
        };
        self.len += 1;
        self.rebuild_start();
        Ok(())
    }

    fn rebuild_start(&mut self) {
        let mut first = 0;
        for (region, start) in self.start.iter_mut().enumerate() {
            let region_base = (region as u64) << REGION_SHIFT;
            while first < self.len && self.entries[first].range.last < region_base {
                first += 1;
            }
            // At most MAX_DEVICES, so it fits.
            *start = first as u8;
        }
    }

    /// The device whose range holds `addr`, and the offset of `addr` in it.
    #[inline(always)]
    pub fn lookup(&self, addr: u64) -> Option<(D, u64)> {
        let region = addr >> REGION_SHIFT;
        if region >= REGIONS as u64 {
            return self.lookup_from(usize::from(self.start[REGIONS]), addr);
        }
        self.lookup_from(usize::from(self.start[region as usize]), addr)
    }

    /// The first entry from `index` on that ends at or after `addr` is the
    /// only one that can hold it (sorted, disjoint); it does if it starts
    /// at or before. The scan ends at the latest at the first empty slot
    /// (there is one after the devices), which ends at the last address.
    #[inline(always)]
    fn lookup_from(&self, mut index: usize, addr: u64) -> Option<(D, u64)> {
        loop {
            let entry = &self.entries[index % SLOTS];
            if entry.range.last >= addr {
                let offset = addr.wrapping_sub(entry.range.base);
                return match entry.device {
                    Some(device) if entry.range.base <= addr => Some((device, offset)),
                    _ => None,
                };
            }
            index += 1;
        }
    }

    /// The registered devices and their ranges, by base.
    pub fn devices(&self) -> impl Iterator<Item = (BusRange, D)> + '_ {
        self.entries[..self.len]
            .iter()
            .filter_map(|e| Some((e.range, e.device?)))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GICD: u64 = 0x0800_0000;
    const GICR: u64 = 0x080A_0000;
    const UART: u64 = 0x0900_0000;
    const VIRTIO: u64 = 0x0A00_0000;
    const SCRATCH: u64 = 0x0B00_0000;

    fn virt_bus() -> MmioBus<u8> {
        let mut bus = MmioBus::new();
        // Registered out of address order on purpose.
        bus.register(SCRATCH, 0x1000, 5).unwrap();
        bus.register(GICD, 0x1_0000, 1).unwrap();
        bus.register(UART, 0x1000, 3).unwrap();
        bus.register(GICR, 0x2_0000 * 4, 2).unwrap();
        bus.register(VIRTIO, 0x200, 4).unwrap();
        bus
    }

    #[test]
    fn each_device_is_found_with_its_offset() {
        let bus = virt_bus();
        assert_eq!(bus.lookup(GICD), Some((1, 0)));
        assert_eq!(bus.lookup(GICD + 0xffff), Some((1, 0xffff)));
        assert_eq!(bus.lookup(GICR + 0x2_0008), Some((2, 0x2_0008)));
        assert_eq!(bus.lookup(GICR + 0x8_0000 - 1), Some((2, 0x8_0000 - 1)));
        assert_eq!(bus.lookup(UART + 0x18), Some((3, 0x18)));
        assert_eq!(bus.lookup(VIRTIO + 0x50), Some((4, 0x50)));
        assert_eq!(bus.lookup(SCRATCH + 8), Some((5, 8)));
    }

    #[test]
    fn holes_and_addresses_beyond_every_device_find_nothing() {
        let bus = virt_bus();
        for addr in [
            0,
            GICD - 1,
            GICD + 0x1_0000, // between the distributor and the redistributors
            GICR - 1,
            GICR + 0x8_0000, // just past the 4 redistributor frames
            UART - 1,
            UART + 0x1000,
            VIRTIO + 0x200, // between two virtio slots' worth
            SCRATCH + 0x1000,
            0x4000_0000, // RAM is not on the bus
            1 << 40,
            u64::MAX,
        ] {
            assert_eq!(bus.lookup(addr), None, "{addr:#x}");
        }
    }

    #[test]
    fn an_overlapping_registration_is_refused_and_changes_nothing() {
        let mut bus = virt_bus();
        let before: Vec<_> = bus.devices().collect();
        let err = bus.register(GICD + 0xf000, 0x2000, 9).unwrap_err();
        assert_eq!(
            err,
            BusError::Overlap {
                new: BusRange {
                    base: GICD + 0xf000,
                    last: GICD + 0x10fff
                },
                existing: BusRange {
                    base: GICD,
                    last: GICD + 0xffff
                },
            }
        );
        assert!(alloc::format!("{err}").contains("overlaps the device at 0x8000000..=0x800ffff"));
        // Enclosing a device, and enclosed by one, are overlaps too.
        assert!(bus.register(UART - 0x1000, 0x3000, 9).is_err());
        assert!(bus.register(UART + 4, 4, 9).is_err());
        assert_eq!(bus.devices().collect::<Vec<_>>(), before);
        assert_eq!(bus.lookup(GICD + 0x1_0000), None);
        // Adjacent is fine.
        bus.register(GICD + 0x1_0000, 0x1000, 9).unwrap();
        assert_eq!(bus.lookup(GICD + 0x1_0000), Some((9, 0)));
        assert_eq!(bus.lookup(GICD + 0xffff), Some((1, 0xffff)));
    }

    #[test]
    fn empty_wrapping_and_too_many_ranges_are_refused() {
        let mut bus = MmioBus::<u8>::new();
        assert_eq!(
            bus.register(0x1000, 0, 1),
            Err(BusError::BadRange {
                base: 0x1000,
                size: 0
            })
        );
        assert!(bus.register(u64::MAX, 2, 1).is_err());
        // The very top of the address space can be registered and found.
        bus.register(u64::MAX, 1, 7).unwrap();
        assert_eq!(bus.lookup(u64::MAX), Some((7, 0)));
        for i in 1..MAX_DEVICES as u64 {
            bus.register(i * 0x1000, 0x1000, i as u8).unwrap();
        }
        assert_eq!(bus.register(0x1_0000_0000, 1, 0), Err(BusError::Full));
        assert_eq!(bus.lookup(u64::MAX - 1), None);
        assert_eq!(bus.lookup(u64::MAX), Some((7, 0)));
        assert_eq!(bus.lookup(0x1fff), Some((1, 0xfff)));
    }

    #[test]
    fn a_range_spanning_regions_and_one_above_four_gib_are_found() {
        let mut bus = MmioBus::<u8>::new();
        bus.register(0x0FF0_0000, 0x0030_0000, 1).unwrap(); // regions 0x0f..0x11
        bus.register(0x10_0000_0000, 0x1000, 2).unwrap();
        bus.register(0x1_2000_0000, 0x1000, 3).unwrap();
        assert_eq!(bus.lookup(0x1010_0000), Some((1, 0x0020_0000)));
        assert_eq!(bus.lookup(0x1030_0000), None);
        assert_eq!(bus.lookup(0x10_0000_0fff), Some((2, 0xfff)));
        assert_eq!(bus.lookup(0x1_2000_0010), Some((3, 0x10)));
        assert_eq!(bus.lookup(0x1_1000_0000), None);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;
    use crate::verify::Source;

    /// Devices in the proof: enough for holes between and around them.
    const PROOF_DEVICES: usize = 2;

    /// An address near where devices lie more often than not, so ranges
    /// meet, abut and leave holes (under Kani, any address).
    fn near(src: &mut Source, anchor: u64) -> u64 {
        if src.below(4) == 0 {
            src.any()
        } else {
            anchor.wrapping_add(src.below(0x40)).wrapping_sub(0x20)
        }
    }

    proof! {
        /// Registration refuses exactly the ranges that are bad or overlap
        /// one registered, and leaves the bus as it was; lookup returns the
        /// device whose range holds the address with its offset, and nothing
        /// when no range holds it (never a neighbour).
        #[unwind(7)]
        fn lookup_finds_the_owner_and_registration_refuses_overlaps(src) {
            let mut bus = MmioBus::<u8>::new();
            let mut accepted: [Option<BusRange>; PROOF_DEVICES] = [None; PROOF_DEVICES];
            let anchor = if src.any() { src.below(4) << REGION_SHIFT } else { src.any() };
            for id in 0..PROOF_DEVICES {
                let base = near(src, anchor.wrapping_add(id as u64 * 0x10));
                let size = if src.below(4) == 0 { src.any() } else { src.below(0x30) };
                let before = bus.len();
                let result = bus.register(base, size, id as u8);
                let range = BusRange::new(base, size);
                let overlapping = range.and_then(|r| accepted.iter().flatten().find(|a| a.overlaps(&r)).copied());
                match (range, overlapping) {
                    (None, _) => assert_eq!(result, Err(BusError::BadRange { base, size })),
                    (Some(new), Some(_)) => {
                        let refused = matches!(result, Err(BusError::Overlap { new: n, existing: e }) if n == new && e.overlaps(&new) && accepted.contains(&Some(e)));
                        assert!(refused);
                        cover!(true, "an overlapping registration is refused");
                    }
                    (Some(new), None) => {
                        assert_eq!(result, Ok(()));
                        accepted[id] = Some(new);
                    }
                }
                assert_eq!(bus.len(), before + usize::from(result.is_ok()));
            }
            let probe = anchor.wrapping_add(src.below(0x40));
            let addr = near(src, probe);
            let owner = (0..PROOF_DEVICES).find(|&id| accepted[id].is_some_and(|r| r.contains(addr)));
            let found = bus.lookup(addr);
            match owner {
                Some(id) => {
                    let range = accepted[id].unwrap();
                    assert_eq!(found, Some((id as u8, addr - range.base)));
                    cover!(bus.len() > 1, "an address is found among several devices");
                    cover!(range.base != addr && range.last != addr, "an address inside a range");
                }
                None => {
                    assert_eq!(found, None);
                    let between = accepted.iter().flatten().any(|r| r.last < addr)
                        && accepted.iter().flatten().any(|r| r.base > addr);
                    cover!(between, "an address in a hole between two devices finds nothing");
                }
            }
        }
    }
}
