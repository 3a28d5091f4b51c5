//! Physical frame allocator: one bit per 4 KiB frame of a RAM range.
//!
//! Stage-2 tables and guest RAM come from here. Reservations (the
//! hypervisor image, the device tree, guest blobs) are marked used up front.
//! Every operation validates its address and leaves the state unchanged on
//! error, so a double free can never hand a frame out twice.
//!
//! **Frames change owner zeroed.** A frame handed to a new owner (a VM's
//! RAM, a stage-2 table) may still hold what its previous owner left there:
//! another VM's memory, hypervisor data, or whatever was in RAM at boot. So
//! every allocation that gives frames to an owner goes through
//! [`FrameAllocator::alloc_for_owner`], whose result hides the address until
//! the glue's [`FrameScrubber`] has zeroed exactly those frames
//! ([`UnscrubbedFrames::zero`]; the allocator's lock need not be held
//! meanwhile, the frames are already taken), or through
//! [`FrameAllocator::alloc_contiguous_zeroed`], which does both. Freeing does
//! not zero: the next owner's allocation does, so a frame is scrubbed once
//! per handover whichever path freed it.

use alloc::vec;
use alloc::vec::Vec;

/// Size of one frame.
pub const FRAME_SIZE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    Misaligned,
    OutOfRange,
    /// Freeing a frame that is not allocated (double free, or never allocated).
    NotAllocated,
    /// Zero-sized range, or a range that wraps around the address space.
    Empty,
}

/// Zeroes host frames; the core decides which, the glue writes the memory.
pub trait FrameScrubber {
    /// Make `[pa, pa + len)` read as zero to its next owner, including an
    /// owner that reads it with caches off.
    fn zero(&mut self, pa: u64, len: u64);
}

/// Frames allocated for a new owner and not yet zeroed. Their address is
/// only available from [`UnscrubbedFrames::zero`].
#[must_use = "frames handed out must be zeroed before use"]
#[derive(Debug)]
pub struct UnscrubbedFrames {
    pa: u64,
    count: usize,
}

impl UnscrubbedFrames {
    /// Number of frames.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The address and count, for [`crate::lazy_zero`], which zeroes the
    /// frames chunk by chunk and hands out only zeroed ones.
    pub(crate) fn into_parts(self) -> (u64, usize) {
        (self.pa, self.count)
    }

    /// Zero the frames through `scrubber`; then their address is the owner's.
    pub fn zero(self, scrubber: &mut impl FrameScrubber) -> u64 {
        scrubber.zero(self.pa, self.count as u64 * FRAME_SIZE);
        self.pa
    }
}

/// Bitmap allocator over `[base, base + frames * FRAME_SIZE)`.
#[derive(Debug, Clone)]
pub struct FrameAllocator {
    base: u64,
    frames: usize,
    used: Vec<u64>,
    free: usize,
}

impl FrameAllocator {
    /// Manage the RAM range `[base, base + size)`; `size` is rounded down to whole frames.
    pub fn new(base: u64, size: u64) -> Result<Self, FrameError> {
        if !base.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Misaligned);
        }
        let frames = usize::try_from(size / FRAME_SIZE).map_err(|_| FrameError::OutOfRange)?;
        if frames == 0 {
            return Err(FrameError::Empty);
        }
        base.checked_add(frames as u64 * FRAME_SIZE)
            .ok_or(FrameError::OutOfRange)?;
        Ok(FrameAllocator {
            base,
            frames,
            used: vec![0; frames.div_ceil(64)],
            free: frames,
        })
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn total_frames(&self) -> usize {
        self.frames
    }

    pub fn free_count(&self) -> usize {
        self.free
    }

    /// Whether `pa` lies in the managed range.
    pub fn contains(&self, pa: u64) -> bool {
        pa >= self.base && (pa - self.base) / FRAME_SIZE < self.frames as u64
    }

    fn index(&self, pa: u64) -> Result<usize, FrameError> {
        if !pa.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Misaligned);
        }
        if !self.contains(pa) {
            return Err(FrameError::OutOfRange);
        }
        Ok(((pa - self.base) / FRAME_SIZE) as usize)
    }

    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_used(&mut self, i: usize, used: bool) {
        let bit = 1u64 << (i % 64);
        if used {
            self.used[i / 64] |= bit;
        } else {
            self.used[i / 64] &= !bit;
        }
    }

    /// Whether the frame holding `pa` is allocated or reserved.
    pub fn is_allocated(&self, pa: u64) -> bool {
        self.contains(pa) && self.is_used(((pa - self.base) / FRAME_SIZE) as usize)
    }

    /// Mark every frame touching `[start, start + size)` as used; the part
    /// outside the managed range is ignored, but a range entirely outside is an error.
    pub fn reserve(&mut self, start: u64, size: u64) -> Result<(), FrameError> {
        let end = start.checked_add(size).ok_or(FrameError::Empty)?;
        if size == 0 {
            return Err(FrameError::Empty);
        }
        let limit = self.base + self.frames as u64 * FRAME_SIZE;
        let (lo, hi) = (start.max(self.base), end.min(limit));
        if lo >= hi {
            return Err(FrameError::OutOfRange);
        }
        let first = ((lo - self.base) / FRAME_SIZE) as usize;
        let last = ((hi - self.base).div_ceil(FRAME_SIZE)) as usize;
        for i in first..last {
            if !self.is_used(i) {
                self.set_used(i, true);
                self.free -= 1;
            }
        }
        Ok(())
    }

    /// One free frame, or `None` when memory is exhausted.
    pub fn alloc(&mut self) -> Option<u64> {
        let word = self.used.iter().position(|w| *w != u64::MAX)?;
        let i = word * 64 + (!self.used[word]).trailing_zeros() as usize;
        if i >= self.frames {
            return None;
        }
        self.set_used(i, true);
        self.free -= 1;
        Some(self.base + i as u64 * FRAME_SIZE)
    }

    /// `count` physically contiguous free frames starting at a multiple of
    /// `align` (a power of two, at least one frame).
    pub fn alloc_contiguous(&mut self, count: usize, align: u64) -> Option<u64> {
        if count == 0 || !align.is_power_of_two() || align < FRAME_SIZE || count > self.free {
            return None;
        }
        // One pass: a run starts at an aligned free frame and a used frame ends it.
        // (A single loop, so a proof unrolls it once per frame, not per start and frame.)
        let mut first = 0;
        let mut run = 0;
        let mut found = None;
        for i in 0..self.frames {
            if run == 0 {
                // (A mask, not `%`: align is a power of two, and a model checker would
                // encode `%` by a variable as a 64-bit divider.)
                if (self.base + i as u64 * FRAME_SIZE) & (align - 1) != 0 {
                    continue;
                }
                first = i;
            }
            if self.is_used(i) {
                run = 0;
                continue;
            }
            run += 1;
            if run == count {
                found = Some(first);
                break;
            }
        }
        // Marked after the search, not inside it: a proof then unrolls this
        // loop once, not once per frame searched.
        let first = found?;
        for k in first..first + count {
            self.set_used(k, true);
        }
        self.free -= count;
        Some(self.base + first as u64 * FRAME_SIZE)
    }

    /// The `count` frames from `pa` (a frame address), if every one of them
    /// is free; all or nothing. For RAM that must start at a given address
    /// (a guest whose kernel already lies where its RAM will be).
    pub fn alloc_at(&mut self, pa: u64, count: usize) -> Option<u64> {
        let first = self.index(pa).ok()?;
        if count == 0 || first.checked_add(count).is_none_or(|end| end > self.frames) {
            return None;
        }
        // A word of the bitmap at a time (a guest's 256 MiB is 65536 frames).
        let end = first + count;
        let words = first / 64..end.div_ceil(64);
        let mask = |w: usize| {
            let lo = first.max(w * 64) - w * 64;
            let hi = end.min(w * 64 + 64) - w * 64;
            (u64::MAX >> (64 - (hi - lo))) << lo
        };
        if words.clone().any(|w| self.used[w] & mask(w) != 0) {
            return None;
        }
        for w in words {
            self.used[w] |= mask(w);
        }
        self.free -= count;
        Some(pa)
    }

    /// Like [`FrameAllocator::alloc_at`], for a new owner who gets the
    /// address once the frames are zeroed ([`UnscrubbedFrames::zero`]).
    pub fn alloc_for_owner_at(&mut self, pa: u64, count: usize) -> Option<UnscrubbedFrames> {
        let pa = self.alloc_at(pa, count)?;
        Some(UnscrubbedFrames { pa, count })
    }

    /// Like [`FrameAllocator::alloc_contiguous`], for a new owner: the
    /// frames are zeroed through `scrubber` (and nothing else is) before
    /// their address is returned.
    pub fn alloc_contiguous_zeroed(
        &mut self,
        count: usize,
        align: u64,
        scrubber: &mut impl FrameScrubber,
    ) -> Option<u64> {
        Some(self.alloc_for_owner(count, align)?.zero(scrubber))
    }

    /// Like [`FrameAllocator::alloc_contiguous`], for a new owner who gets
    /// the address once the frames are zeroed ([`UnscrubbedFrames::zero`]),
    /// which can happen after the allocator is unlocked.
    pub fn alloc_for_owner(&mut self, count: usize, align: u64) -> Option<UnscrubbedFrames> {
        let pa = self.alloc_contiguous(count, align)?;
        Some(UnscrubbedFrames { pa, count })
    }

    /// Return one frame.
    pub fn free(&mut self, pa: u64) -> Result<(), FrameError> {
        let i = self.index(pa)?;
        if !self.is_used(i) {
            return Err(FrameError::NotAllocated);
        }
        self.set_used(i, false);
        self.free += 1;
        Ok(())
    }

    /// Return `count` frames from `pa`, all or nothing.
    pub fn free_contiguous(&mut self, pa: u64, count: usize) -> Result<(), FrameError> {
        let first = self.index(pa)?;
        if count == 0 || first.checked_add(count).is_none_or(|end| end > self.frames) {
            return Err(FrameError::OutOfRange);
        }
        if !(first..first + count).all(|i| self.is_used(i)) {
            return Err(FrameError::NotAllocated);
        }
        for i in first..first + count {
            self.set_used(i, false);
        }
        self.free += count;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x4000_0000;

    #[test]
    fn allocates_every_frame_once_then_runs_out() {
        let mut a = FrameAllocator::new(BASE, 70 * FRAME_SIZE).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(pa) = a.alloc() {
            assert!(seen.insert(pa));
        }
        assert_eq!(seen.len(), 70);
        assert_eq!(a.free_count(), 0);
        a.free(BASE + 5 * FRAME_SIZE).unwrap();
        assert_eq!(a.alloc(), Some(BASE + 5 * FRAME_SIZE));
    }

    #[test]
    fn allocates_at_an_address_only_when_every_frame_is_free() {
        let mut a = FrameAllocator::new(BASE, 16 * FRAME_SIZE).unwrap();
        a.reserve(BASE + 4 * FRAME_SIZE, FRAME_SIZE).unwrap();
        let before = a.free_count();
        // Refused, changing nothing: a reserved frame inside, past the end,
        // unaligned, outside, empty.
        assert_eq!(a.alloc_at(BASE + 2 * FRAME_SIZE, 4), None);
        assert_eq!(a.alloc_at(BASE + 12 * FRAME_SIZE, 5), None);
        assert_eq!(a.alloc_at(BASE + 5 * FRAME_SIZE + 8, 2), None);
        assert_eq!(a.alloc_at(BASE - FRAME_SIZE, 1), None);
        assert_eq!(a.alloc_at(BASE + 5 * FRAME_SIZE, 0), None);
        assert_eq!(a.free_count(), before);
        // Freeing the reservation lets a run over it be taken.
        a.free(BASE + 4 * FRAME_SIZE).unwrap();
        assert_eq!(
            a.alloc_at(BASE + 4 * FRAME_SIZE, 12),
            Some(BASE + 4 * FRAME_SIZE)
        );
        assert_eq!(a.free_count(), 4);
        assert!((4..16).all(|i| a.is_allocated(BASE + i * FRAME_SIZE)));
        assert!((0..4).all(|i| !a.is_allocated(BASE + i * FRAME_SIZE)));
        assert_eq!(a.alloc_at(BASE + 15 * FRAME_SIZE, 1), None);
        let owner = a.alloc_for_owner_at(BASE, 4).unwrap();
        assert_eq!(owner.count(), 4);
        assert_eq!(a.free_count(), 0);
    }

    #[test]
    fn alloc_at_matches_a_frame_by_frame_check() {
        // Every start and length over 3 words with a few frames reserved:
        // taken exactly when every frame is free, marking exactly those.
        for start in 0..192usize {
            for count in 1..=192 - start {
                let mut a = FrameAllocator::new(BASE, 192 * FRAME_SIZE).unwrap();
                for reserved in [5u64, 63, 64, 130] {
                    a.reserve(BASE + reserved * FRAME_SIZE, 1).unwrap();
                }
                let before: Vec<bool> = (0..192)
                    .map(|i| a.is_allocated(BASE + i * FRAME_SIZE))
                    .collect();
                let free = (start..start + count).all(|i| !before[i]);
                let got = a.alloc_at(BASE + start as u64 * FRAME_SIZE, count);
                assert_eq!(got.is_some(), free, "start {start} count {count}");
                for (i, was) in before.iter().enumerate() {
                    let inside = (start..start + count).contains(&i);
                    assert_eq!(
                        a.is_allocated(BASE + i as u64 * FRAME_SIZE),
                        *was || (free && inside),
                        "start {start} count {count} frame {i}"
                    );
                }
                assert_eq!(a.free_count(), 192 - 4 - if free { count } else { 0 });
            }
        }
    }

    #[test]
    fn bad_frees_change_nothing() {
        let mut a = FrameAllocator::new(BASE, 8 * FRAME_SIZE).unwrap();
        let pa = a.alloc().unwrap();
        a.free(pa).unwrap();
        assert_eq!(a.free(pa), Err(FrameError::NotAllocated));
        assert_eq!(a.free(pa + 1), Err(FrameError::Misaligned));
        assert_eq!(a.free(BASE + 8 * FRAME_SIZE), Err(FrameError::OutOfRange));
        assert_eq!(a.free_count(), 8);
    }

    #[test]
    fn contiguous_respects_alignment_and_reservations() {
        let mut a = FrameAllocator::new(BASE, 2048 * FRAME_SIZE).unwrap();
        a.reserve(BASE + 0x1000, 0x10).unwrap(); // one frame, partially covered
        assert!(a.is_allocated(BASE + 0x1000));
        let two_mib = 2 << 20;
        let pa = a.alloc_contiguous(512, two_mib).unwrap();
        assert_eq!(pa % two_mib, 0);
        assert_eq!(pa, BASE + two_mib); // the first 2 MiB block has a reserved frame
        assert_eq!(a.alloc_contiguous(1024, two_mib), Some(BASE + 2 * two_mib));
        assert_eq!(a.alloc_contiguous(512, two_mib), None);
        a.free_contiguous(pa, 512).unwrap();
        assert_eq!(a.free_contiguous(pa, 512), Err(FrameError::NotAllocated));
    }

    #[test]
    fn rejects_bad_ranges() {
        assert_eq!(
            FrameAllocator::new(BASE + 1, FRAME_SIZE).unwrap_err(),
            FrameError::Misaligned
        );
        assert_eq!(
            FrameAllocator::new(BASE, 100).unwrap_err(),
            FrameError::Empty
        );
        assert_eq!(
            FrameAllocator::new(!0xfff, 2 * FRAME_SIZE).unwrap_err(),
            FrameError::OutOfRange
        );
        let mut a = FrameAllocator::new(BASE, 4 * FRAME_SIZE).unwrap();
        assert_eq!(a.reserve(0, 0x1000), Err(FrameError::OutOfRange));
        assert_eq!(a.reserve(u64::MAX, 2), Err(FrameError::Empty));
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    const BASE: u64 = 0x8000;
    /// Eight frames: the allocator takes the frame count as a parameter; eight fill part of
    /// one bitmap word, so the unused tail bits of the last word are exercised too.
    const FRAMES: u64 = 8;

    fn frame(i: u64) -> u64 {
        BASE + i * FRAME_SIZE
    }

    /// Mask of the frames `[first, first + count)`.
    fn run(first: u64, count: u64) -> u8 {
        (((1u16 << count) - 1) << first) as u8
    }

    /// An allocator over `FRAMES` frames in any state (every subset of frames is reachable by
    /// reserve), and the model: bit i set when frame i is allocated or reserved.
    fn any_state(src: &mut crate::verify::Source) -> (FrameAllocator, u8) {
        let mut a = FrameAllocator::new(BASE, FRAMES * FRAME_SIZE).unwrap();
        let model: u8 = src.any();
        a.used[0] = u64::from(model);
        a.free = FRAMES as usize - model.count_ones() as usize;
        (a, model)
    }

    /// The allocator agrees with the model, frame by frame and in its free count.
    fn agrees(a: &FrameAllocator, model: u8) {
        assert_eq!(
            a.free_count(),
            FRAMES as usize - model.count_ones() as usize
        );
        for i in 0..FRAMES {
            assert_eq!(a.is_allocated(frame(i)), model & run(i, 1) != 0);
        }
    }

    proof! {
        /// From any state, alloc hands out a free frame, aligned and in range, so no frame is
        /// handed out twice or while reserved; it fails only when every frame is taken. (One step
        /// from every state covers every sequence of steps.)
        #[unwind(9)]
        fn frames_never_handed_out_twice(src) {
            let (mut a, mut model) = any_state(src);
            match a.alloc() {
                Some(pa) => {
                    cover!(true, "a frame is allocated");
                    assert!(pa % FRAME_SIZE == 0 && a.contains(pa));
                    let bit = run((pa - BASE) / FRAME_SIZE, 1);
                    assert!(model & bit == 0, "frame handed out twice");
                    model |= bit;
                }
                None => {
                    cover!(true, "memory is exhausted");
                    assert_eq!(model, u8::MAX);
                }
            }
            agrees(&a, model);
        }
    }

    proof! {
        /// From any state, alloc_contiguous hands out an aligned run of free frames, and finds one
        /// whenever one exists.
        #[unwind(9)]
        fn contiguous_runs_are_free_aligned_and_found(src) {
            let (mut a, mut model) = any_state(src);
            let count = 1 + src.below(3);
            let align = FRAME_SIZE << src.below(3);
            let step = align / FRAME_SIZE;
            let fits = |m: u8, first: u64| first + count <= FRAMES && m & run(first, count) == 0;
            let exists = (0..FRAMES).any(|first| first & (step - 1) == 0 && fits(model, first));
            match a.alloc_contiguous(count as usize, align) {
                Some(pa) => {
                    cover!(count > 1 && align > FRAME_SIZE, "an aligned run of frames is allocated");
                    assert_eq!(pa & (align - 1), 0);
                    let first = (pa - BASE) / FRAME_SIZE;
                    assert!(pa >= BASE && fits(model, first), "run not free or not in range");
                    model |= run(first, count);
                }
                None => {
                    cover!(model != u8::MAX, "no aligned run among free frames");
                    assert!(!exists, "a free aligned run was missed");
                }
            }
            agrees(&a, model);
        }
    }

    proof! {
        /// From any state, reserve marks exactly the frames its range touches, and refuses only
        /// empty ranges and ranges outside the managed memory.
        #[unwind(9)]
        fn reserve_marks_exactly_the_touched_frames(src) {
            let (mut a, mut model) = any_state(src);
            // Possibly unaligned, possibly hanging over either end of the range.
            let start = BASE - FRAME_SIZE + src.below((FRAMES + 2) * 8) * (FRAME_SIZE / 8);
            let size = src.below(3 * FRAME_SIZE);
            let end = start + size;
            if a.reserve(start, size).is_ok() {
                cover!(!start.is_multiple_of(FRAME_SIZE), "a reservation starting inside a frame");
                for i in 0..FRAMES {
                    if frame(i) < end && frame(i) + FRAME_SIZE > start {
                        model |= run(i, 1);
                    }
                }
            } else {
                cover!(size > 0, "a reservation outside the range is refused");
                assert!(size == 0 || end <= BASE || start >= frame(FRAMES));
            }
            agrees(&a, model);
        }
    }

    proof! {
        /// From any state, free returns exactly an allocated frame; a double free, a misaligned or
        /// out-of-range address is refused without changing anything.
        #[unwind(9)]
        fn free_returns_only_allocated_frames(src) {
            let (mut a, mut model) = any_state(src);
            let i = src.below(FRAMES + 1);
            let aligned = src.any();
            let pa = frame(i) + if aligned { 0 } else { 8 };
            let held = i < FRAMES && model & run(i, 1) != 0;
            match a.free(pa) {
                Ok(()) => {
                    cover!(true, "a frame is freed");
                    assert!(aligned && held);
                    model &= !run(i, 1);
                }
                Err(e) => {
                    cover!(e == FrameError::NotAllocated, "a double free is refused");
                    assert!(!(aligned && held), "an allocated frame could not be freed");
                }
            }
            agrees(&a, model);
        }
    }

    proof! {
        /// From any state, free_contiguous returns a run all or nothing: a run not entirely
        /// allocated is refused without changing anything.
        #[unwind(9)]
        fn free_contiguous_is_all_or_nothing(src) {
            let (mut a, mut model) = any_state(src);
            let first = src.below(FRAMES);
            let count = src.below(4);
            let held = count > 0 && first + count <= FRAMES && model & run(first, count) == run(first, count);
            match a.free_contiguous(frame(first), count as usize) {
                Ok(()) => {
                    cover!(count > 1, "a run of frames is freed");
                    assert!(held);
                    model &= !run(first, count);
                }
                Err(_) => {
                    cover!(count > 0 && first + count <= FRAMES, "freeing a run not all allocated is refused");
                    assert!(!held);
                }
            }
            agrees(&a, model);
        }
    }

    /// Host memory as the property sees it: bit i set while frame i holds anything but zeros.
    struct ModelRam(u8);

    impl FrameScrubber for ModelRam {
        fn zero(&mut self, pa: u64, len: u64) {
            let first = (pa - BASE) / FRAME_SIZE;
            self.0 &= !run(first, len / FRAME_SIZE);
        }
    }

    proof! {
        /// From any state (whichever frames other owners hold, whatever RAM holds, so also a
        /// frame its last owner dirtied and freed), a run handed to a new owner through either
        /// zeroing path is free, reads zero, and zeroing touches no other frame. (One handover
        /// from every state covers every sequence of handovers and frees.)
        #[unwind(9)]
        fn frames_change_owner_zeroed(src) {
            let (mut a, mut model) = any_state(src);
            let before: u8 = src.any();
            let mut ram = ModelRam(before);
            let count = 1 + src.below(2);
            let align = FRAME_SIZE << src.below(2);
            let pa = if src.any() {
                a.alloc_contiguous_zeroed(count as usize, align, &mut ram)
            } else {
                a.alloc_for_owner(count as usize, align)
                    .map(|frames| frames.zero(&mut ram))
            };
            let Some(pa) = pa else { return };
            let first = (pa - BASE) / FRAME_SIZE;
            assert!(pa >= BASE && first + count <= FRAMES);
            let handed = run(first, count);
            assert!(model & handed == 0, "a frame of another owner handed out");
            assert!(ram.0 & handed == 0, "frame handed over dirty");
            assert!(ram.0 & !handed == before & !handed, "zeroing touched another frame");
            cover!(before & handed == handed, "a dirty run was scrubbed");
            cover!(count > 1 && align > FRAME_SIZE, "an aligned run of two frames was handed over");
            model |= handed;
            agrees(&a, model);
        }
    }
}
