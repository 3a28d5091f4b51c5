//! Physical memory: the frame allocator over host RAM, and stage-2 table
//! memory backed by it. Physical addresses are identity-mapped at EL2, so a
//! frame's address is also a pointer to it.

use hvcore::frame_alloc::{FrameAllocator, FrameScrubber, FRAME_SIZE};
use hvcore::stage2::TableMemory;
use spin::Once;

use super::lock::Mutex;

static FRAMES: Once<Mutex<FrameAllocator>> = Once::new();

/// Create the global frame allocator over `[base, base+size)`.
pub fn init_frames(base: u64, size: u64) {
    FRAMES.call_once(|| {
        Mutex::new(FrameAllocator::new(base, size).expect("host RAM range is page aligned"))
    });
}

/// The global frame allocator.
pub fn frames() -> &'static Mutex<FrameAllocator> {
    FRAMES.get().expect("frame allocator initialised at boot")
}

/// Zeroes frames changing owner: identity-mapped Normal memory at EL2,
/// zeroed and cleaned to the point of coherency (guests start with caches off).
pub struct HostScrubber;

impl FrameScrubber for HostScrubber {
    fn zero(&mut self, pa: u64, len: u64) {
        // The line-aligned middle by DC ZVA; unaligned ends (the part of a
        // chunk around a copy) byte by byte.
        const LINE: u64 = 64;
        let end = pa + len;
        let middle = pa.next_multiple_of(LINE).min(end)..(end & !(LINE - 1)).max(pa);
        for (start, stop) in [
            (pa, middle.start),
            (middle.start, middle.end.max(middle.start)),
            (middle.end.max(middle.start), end),
        ] {
            if stop > start {
                hv_arch::cache::zero_and_clean(start as usize, (stop - start) as usize);
            }
        }
    }
}

/// Stage-2 tables in frames from the global allocator.
pub struct FrameTableMemory;

impl TableMemory for FrameTableMemory {
    fn alloc_table(&mut self, pages: usize) -> Option<u64> {
        let mut frames = frames().lock();
        // One frame (every table below the root): the word-at-a-time search,
        // not the frame-by-frame first fit (page-granular guest RAM needs a
        // table per 2 MiB). Zeroed with the allocator unlocked.
        let pa = if pages == 1 {
            frames.alloc()?
        } else {
            frames.alloc_contiguous(pages, pages as u64 * FRAME_SIZE)?
        };
        drop(frames);
        HostScrubber.zero(pa, pages as u64 * FRAME_SIZE);
        Some(pa)
    }

    fn free_table(&mut self, pa: u64, pages: usize) {
        let _ = frames().lock().free_contiguous(pa, pages);
    }

    fn read_entry(&self, table_pa: u64, index: usize) -> u64 {
        // SAFETY: table_pa is a table this memory allocated.
        unsafe { core::ptr::read_volatile((table_pa as *const u64).add(index)) }
    }

    fn write_entry(&mut self, table_pa: u64, index: usize, value: u64) {
        // SAFETY: as read_entry; the barrier orders the update before the walker sees it.
        unsafe { core::ptr::write_volatile((table_pa as *mut u64).add(index), value) };
        hv_arch::sysreg::dsb_ishst();
    }

    fn invalidate_ipa(&mut self, ipa: u64) {
        // Break-before-make: drop stage-2 and combined entries for this IPA
        // on every CPU before the entry is replaced. Runs with the VM's
        // VMID in VTTBR_EL2 (changes to a live VM happen in its exits).
        hv_arch::cache::invalidate_guest_ipa(ipa);
    }
}

/// Copy `len` bytes between identity-mapped physical ranges and clean the
/// destination to the point of coherency (the guest starts with caches off).
pub fn copy_to_guest(dst_pa: u64, src_pa: u64, len: u64) {
    // SAFETY: the caller passes ranges inside host RAM that do not overlap
    // (source blobs are reserved and never part of a VM's RAM).
    unsafe { hv_arch::cache::copy_and_clean(dst_pa as usize, src_pa as usize, len as usize) };
}
