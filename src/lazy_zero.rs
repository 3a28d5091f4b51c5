//! Guest RAM zeroed at first touch instead of up front.
//!
//! A VM's RAM frames may hold a previous owner's data, so they are zeroed
//! before the VM sees them ([`crate::frame_alloc`]). Zeroing all of it before
//! the guest's first instruction costs time in proportion to the RAM size,
//! and most of it a booting guest never touches (under an emulator it also
//! makes the host back every page). So the RAM is split into chunks: a chunk
//! is zeroed when the guest first touches it (a stage-2 translation fault:
//! the glue maps a chunk only once it is zeroed) or when the hypervisor
//! first writes into it. The host address of a chunk is handed out only
//! once the chunk is zeroed, so "frames change owner zeroed" holds chunk by
//! chunk.

use alloc::vec;
use alloc::vec::Vec;

use crate::frame_alloc::{FrameScrubber, UnscrubbedFrames, FRAME_SIZE};

/// A chunk this module has just zeroed: the glue maps it at stage 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Offset of the chunk in the RAM.
    pub offset: u64,
    /// Its host physical address.
    pub pa: u64,
    /// Its length (the last chunk may be shorter).
    pub len: u64,
}

/// A VM's RAM, contiguous host frames zeroed one chunk at a time.
#[derive(Debug)]
pub struct LazilyZeroed {
    pa: u64,
    size: u64,
    chunk_shift: u32,
    /// One bit per chunk: zeroed (and so handed out).
    zeroed: Vec<u64>,
    zeroed_chunks: usize,
}

impl LazilyZeroed {
    /// Take over `frames`, none of them zeroed yet, in chunks of
    /// `chunk_size` bytes (a power of two, at least a frame).
    pub fn new(frames: UnscrubbedFrames, chunk_size: u64) -> Option<Self> {
        if !chunk_size.is_power_of_two() || chunk_size < FRAME_SIZE {
            return None;
        }
        let (pa, count) = frames.into_parts();
        let size = count as u64 * FRAME_SIZE;
        let chunk_shift = chunk_size.trailing_zeros();
        let chunks = size.div_ceil(chunk_size) as usize;
        Some(LazilyZeroed {
            pa,
            size,
            chunk_shift,
            zeroed: vec![0; chunks.div_ceil(64)],
            zeroed_chunks: 0,
        })
    }

    /// The host range `(pa, size)` the RAM occupies, for bounds (such as
    /// stage 2's allowed output range), not for access: memory is reached
    /// through [`LazilyZeroed::zero_range`] and [`LazilyZeroed::host_address`].
    pub fn bounds(&self) -> (u64, u64) {
        (self.pa, self.size)
    }

    /// Bytes of RAM.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes per chunk.
    pub fn chunk_size(&self) -> u64 {
        1 << self.chunk_shift
    }

    /// Number of chunks.
    pub fn chunks(&self) -> usize {
        self.size.div_ceil(self.chunk_size()) as usize
    }

    /// Chunks zeroed so far.
    pub fn zeroed_chunks(&self) -> usize {
        self.zeroed_chunks
    }

    fn chunk_zeroed(&self, index: usize) -> bool {
        self.zeroed[index / 64] & (1 << (index % 64)) != 0
    }

    /// Whether the chunk holding byte `offset` is zeroed (false outside the RAM).
    pub fn is_zeroed(&self, offset: u64) -> bool {
        offset < self.size && self.chunk_zeroed((offset >> self.chunk_shift) as usize)
    }

    /// Zero the chunk holding byte `offset` unless it already is. Returns
    /// the chunk when this call zeroed it (the caller maps it); `None` when
    /// it was zeroed before or `offset` is outside the RAM.
    pub fn zero_chunk_at(
        &mut self,
        offset: u64,
        scrubber: &mut impl FrameScrubber,
    ) -> Option<Chunk> {
        if offset >= self.size {
            return None;
        }
        let index = (offset >> self.chunk_shift) as usize;
        if self.chunk_zeroed(index) {
            return None;
        }
        let start = (index as u64) << self.chunk_shift;
        let chunk = Chunk {
            offset: start,
            pa: self.pa + start,
            len: self.chunk_size().min(self.size - start),
        };
        scrubber.zero(chunk.pa, chunk.len);
        self.zeroed[index / 64] |= 1 << (index % 64);
        self.zeroed_chunks += 1;
        Some(chunk)
    }

    /// Zero every chunk that `[offset, offset + len)` meets and is not yet
    /// zeroed, passing each to `newly_zeroed` (the caller maps it), and
    /// return the host address of `offset`. `None`, and nothing zeroed, when
    /// the range is empty or leaves the RAM.
    pub fn zero_range(
        &mut self,
        offset: u64,
        len: u64,
        scrubber: &mut impl FrameScrubber,
        mut newly_zeroed: impl FnMut(Chunk),
    ) -> Option<u64> {
        let end = offset.checked_add(len)?;
        if len == 0 || end > self.size {
            return None;
        }
        let mut at = offset & !(self.chunk_size() - 1);
        while at < end {
            if let Some(chunk) = self.zero_chunk_at(at, scrubber) {
                newly_zeroed(chunk);
            }
            at += self.chunk_size();
        }
        Some(self.pa + offset)
    }

    /// Like [`LazilyZeroed::zero_range`], for a range the caller overwrites
    /// whole at once (a kernel copied into guest RAM): of the chunks handed
    /// out new, only the parts outside `[offset, offset + len)` are zeroed,
    /// and `write(scrubber, pa)` must write every byte of the range at `pa`
    /// before they count as handed out. Saves zeroing what is overwritten.
    pub fn zero_range_around<S: FrameScrubber>(
        &mut self,
        offset: u64,
        len: u64,
        scrubber: &mut S,
        write: impl FnOnce(&mut S, u64),
        mut newly_zeroed: impl FnMut(Chunk),
    ) -> Option<u64> {
        let end = offset.checked_add(len)?;
        if len == 0 || end > self.size {
            return None;
        }
        let first = (offset >> self.chunk_shift) as usize;
        let last = ((end - 1) >> self.chunk_shift) as usize;
        let (shift, size) = (self.chunk_shift, self.size);
        let chunk_at = move |index: usize| {
            let start = (index as u64) << shift;
            (start, (start + (1 << shift)).min(size))
        };
        for index in first..=last {
            if self.chunk_zeroed(index) {
                continue;
            }
            let (start, stop) = chunk_at(index);
            if start < offset {
                scrubber.zero(self.pa + start, offset - start);
            }
            if end < stop {
                scrubber.zero(self.pa + end, stop - end);
            }
        }
        write(scrubber, self.pa + offset);
        for index in first..=last {
            if self.chunk_zeroed(index) {
                continue;
            }
            let (start, stop) = chunk_at(index);
            self.zeroed[index / 64] |= 1 << (index % 64);
            self.zeroed_chunks += 1;
            newly_zeroed(Chunk {
                offset: start,
                pa: self.pa + start,
                len: stop - start,
            });
        }
        Some(self.pa + offset)
    }

    /// The host address of `[offset, offset + len)` if every chunk it meets
    /// is zeroed; `None` otherwise or when it leaves the RAM.
    pub fn host_address(&self, offset: u64, len: u64) -> Option<u64> {
        let end = offset.checked_add(len)?;
        if len == 0 || end > self.size {
            return None;
        }
        let first = offset >> self.chunk_shift;
        let last = (end - 1) >> self.chunk_shift;
        (first..=last)
            .all(|index| self.chunk_zeroed(index as usize))
            .then_some(self.pa + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_alloc::FrameAllocator;

    const BASE: u64 = 0x4000_0000;

    /// Host RAM at one byte per frame, dirty until scrubbed.
    struct Ram(Vec<u8>, usize);

    impl FrameScrubber for Ram {
        fn zero(&mut self, pa: u64, len: u64) {
            let first = ((pa - BASE) / FRAME_SIZE) as usize;
            for frame in &mut self.0[first..first + (len / FRAME_SIZE) as usize] {
                *frame = 0;
            }
            self.1 += 1;
        }
    }

    fn ram_of(frames: usize, chunk: u64) -> (LazilyZeroed, Ram) {
        let mut a = FrameAllocator::new(BASE, frames as u64 * FRAME_SIZE).unwrap();
        let unscrubbed = a.alloc_for_owner(frames, FRAME_SIZE).unwrap();
        (
            LazilyZeroed::new(unscrubbed, chunk).unwrap(),
            Ram(vec![0xa5; frames], 0),
        )
    }

    #[test]
    fn a_chunk_is_zeroed_once_at_first_touch() {
        let (mut lazy, mut ram) = ram_of(8, 2 * FRAME_SIZE);
        assert_eq!(lazy.chunks(), 4);
        assert_eq!(lazy.host_address(0, 1), None, "nothing handed out unzeroed");
        let chunk = lazy.zero_chunk_at(3 * FRAME_SIZE + 5, &mut ram).unwrap();
        assert_eq!(
            chunk,
            Chunk {
                offset: 2 * FRAME_SIZE,
                pa: BASE + 2 * FRAME_SIZE,
                len: 2 * FRAME_SIZE
            }
        );
        assert_eq!(ram.0, [0xa5, 0xa5, 0, 0, 0xa5, 0xa5, 0xa5, 0xa5]);
        assert_eq!(lazy.zero_chunk_at(2 * FRAME_SIZE, &mut ram), None);
        assert_eq!(ram.1, 1, "zeroed once");
        assert_eq!(
            lazy.host_address(2 * FRAME_SIZE, 2 * FRAME_SIZE),
            Some(BASE + 2 * FRAME_SIZE)
        );
        assert_eq!(lazy.host_address(2 * FRAME_SIZE, 2 * FRAME_SIZE + 1), None);
        assert_eq!(lazy.zeroed_chunks(), 1);
    }

    #[test]
    fn ranges_zero_every_chunk_they_meet_and_nothing_outside() {
        let (mut lazy, mut ram) = ram_of(10, 4 * FRAME_SIZE);
        assert_eq!(lazy.chunks(), 3, "the last chunk is shorter");
        let mut newly = Vec::new();
        let pa = lazy.zero_range(3 * FRAME_SIZE, 6 * FRAME_SIZE, &mut ram, |c| newly.push(c));
        assert_eq!(pa, Some(BASE + 3 * FRAME_SIZE));
        assert_eq!(newly.len(), 3);
        assert_eq!(newly[2].len, 2 * FRAME_SIZE);
        assert!(ram.0.iter().all(|&b| b == 0));
        // Again: nothing new.
        lazy.zero_range(0, 10 * FRAME_SIZE, &mut ram, |_| panic!("zeroed twice"));
        // Outside, empty or wrapping: refused, nothing done.
        let (mut lazy, mut ram) = ram_of(4, FRAME_SIZE);
        for (offset, len) in [(0, 0), (0, 4 * FRAME_SIZE + 1), (u64::MAX, 2)] {
            assert_eq!(lazy.zero_range(offset, len, &mut ram, |_| {}), None);
        }
        assert_eq!(lazy.zero_chunk_at(4 * FRAME_SIZE, &mut ram), None);
        assert_eq!(ram.1, 0);
        assert!(!lazy.is_zeroed(4 * FRAME_SIZE));
    }

    #[test]
    fn chunk_size_must_be_a_power_of_two_of_at_least_a_frame() {
        let mut a = FrameAllocator::new(BASE, 4 * FRAME_SIZE).unwrap();
        for bad in [0, 512, 3 * FRAME_SIZE] {
            let frames = a.alloc_for_owner(1, FRAME_SIZE).unwrap();
            assert!(LazilyZeroed::new(frames, bad).is_none());
        }
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    const BASE: u64 = 0x10_0000;
    const FRAMES: usize = 4;

    /// One byte per frame, anything until scrubbed.
    struct ModelRam([u8; FRAMES]);

    impl FrameScrubber for ModelRam {
        fn zero(&mut self, pa: u64, len: u64) {
            let first = ((pa - BASE) / FRAME_SIZE) as usize;
            for frame in &mut self.0[first..first + (len / FRAME_SIZE) as usize] {
                *frame = 0;
            }
        }
    }

    proof! {
        /// Whatever RAM held, every frame of a chunk handed out (by a range,
        /// a range the owner overwrites, or a lookup) reads zero unless the
        /// owner wrote it; a chunk is zeroed once, zeroing touches nothing
        /// already handed out, and addresses handed out lie in the VM's
        /// frames. One operation from any state where that already holds
        /// (any chunks zeroed, any RAM contents, any owner writes), so it
        /// holds after every sequence of operations.
        #[unwind(6)]
        fn ram_is_handed_out_only_zeroed(src) {
            let chunk_shift = FRAME_SIZE.trailing_zeros() + src.below(2) as u32;
            let chunks = (FRAMES as u64 * FRAME_SIZE).div_ceil(1 << chunk_shift) as usize;
            let zeroed_bits = src.below(1 << chunks);
            let mut lazy = LazilyZeroed {
                pa: BASE,
                size: FRAMES as u64 * FRAME_SIZE,
                chunk_shift,
                zeroed: alloc::vec![zeroed_bits],
                zeroed_chunks: zeroed_bits.count_ones() as usize,
            };
            let chunk_of = |f: usize| ((f as u64 * FRAME_SIZE) >> chunk_shift) as usize;
            let mut ram = ModelRam(src.any());
            let mut written: [bool; FRAMES] = src.any();
            let handed: [bool; FRAMES] = core::array::from_fn(|f| lazy.chunk_zeroed(chunk_of(f)));
            // The invariant: a frame handed out reads zero unless its owner wrote it.
            for f in 0..FRAMES {
                assume!(!handed[f] || written[f] || ram.0[f] == 0);
            }

            let op = src.below(3);
            let (offset, len) = if op == 2 {
                // The overwriting form writes whole frames (the model's unit).
                (src.below(FRAMES as u64 + 1) * FRAME_SIZE, src.below(3) * FRAME_SIZE)
            } else {
                (src.below(FRAMES as u64 * FRAME_SIZE + 2), src.below(2 * FRAME_SIZE + 1))
            };
            let before = ram.0;
            let mut fresh = [false; FRAMES];
            let mut overwritten = [false; FRAMES];
            let mut mark = |c: Chunk| {
                for f in (c.pa - BASE) / FRAME_SIZE..(c.pa - BASE + c.len) / FRAME_SIZE {
                    fresh[f as usize] = true;
                }
            };
            let pa = match op {
                0 => lazy.zero_range(offset, len, &mut ram, &mut mark),
                1 => lazy.host_address(offset, len),
                _ => lazy.zero_range_around(offset, len, &mut ram, |ram, pa| {
                    let range = ((pa - BASE) / FRAME_SIZE) as usize..((pa - BASE + len) / FRAME_SIZE) as usize;
                    ram.0[range.clone()].fill(0xee);
                    overwritten[range].fill(true);
                }, &mut mark),
            };
            let mut now_handed = handed;
            for f in 0..FRAMES {
                if fresh[f] {
                    assert!(!handed[f], "a chunk handed out twice");
                    now_handed[f] = true;
                } else if !overwritten[f] {
                    assert_eq!(ram.0[f], before[f], "zeroing touched another chunk");
                }
                written[f] |= overwritten[f];
                // The bookkeeping says exactly which chunks are handed out.
                assert_eq!(now_handed[f], lazy.chunk_zeroed(chunk_of(f)));
            }
            if let Some(pa) = pa {
                let first = ((pa - BASE) / FRAME_SIZE) as usize;
                let last = ((pa - BASE + len - 1) / FRAME_SIZE) as usize;
                assert!(pa >= BASE && last < FRAMES);
                for f in first..=last {
                    assert!(now_handed[f], "an address handed out before its chunk");
                    cover!(before[f] != 0 && !written[f], "a dirty chunk was zeroed and handed out");
                }
            }
            for f in 0..FRAMES {
                assert!(!now_handed[f] || written[f] || ram.0[f] == 0, "handed out dirty");
            }
            assert_eq!(lazy.zeroed_chunks, lazy.zeroed[0].count_ones() as usize);
            cover!(op == 2 && fresh.iter().any(|&f| f), "an overwritten range handed out a chunk");
            cover!(op == 1 && pa.is_some(), "a lookup of zeroed chunks");
        }
    }
}
