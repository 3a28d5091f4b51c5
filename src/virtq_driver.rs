//! The driver side of a split virtqueue (virtio 1.2, section 2.7): how the
//! hypervisor hands requests to a physical virtio device of the machine
//! (QEMU's virtio-blk behind a `-drive`) and takes them back.
//!
//! The rings live in memory the hypervisor owns; [`RingMemory`] is how this
//! logic reaches them (the glue adds the barriers the device needs). The
//! bookkeeping here decides which descriptors a chain uses and checks what
//! the device answers: a used element naming a descriptor that is not the
//! head of a chain in flight, or more used elements than chains given, means
//! the device broke its side of the protocol ([`DriverError::DeviceBroke`]),
//! and nothing is freed twice.

/// A descriptor continues in `next`.
pub const DESC_F_NEXT: u16 = 1;
/// The device writes this buffer (rather than reads it).
pub const DESC_F_WRITE: u16 = 2;

/// One buffer of a request, in host-physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Piece {
    pub addr: u64,
    pub len: u32,
    /// The device writes it (data of a read, the status byte).
    pub device_writes: bool,
}

/// The rings of one queue, as the device sees them.
pub trait RingMemory {
    /// Fill descriptor `index`.
    fn set_descriptor(&mut self, index: u16, addr: u64, len: u32, flags: u16, next: u16);
    /// Put `head` in slot `slot` of the available ring.
    fn set_avail_entry(&mut self, slot: u16, head: u16);
    /// Publish the available index, after the descriptors and the entry
    /// written before it are visible to the device.
    fn set_avail_idx(&mut self, idx: u16);
    /// The device's used index (read before the elements it covers).
    fn used_idx(&self) -> u16;
    /// Used element in slot `slot`: (id, bytes written).
    fn used_elem(&self, slot: u16) -> (u32, u32);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverError {
    /// Not enough free descriptors for the chain (or an empty chain).
    Full,
    /// The device's used ring names something that was not in flight.
    DeviceBroke,
}

/// Descriptor bookkeeping of a queue of `N` descriptors (a power of two).
#[derive(Debug, Clone)]
pub struct DriverQueue<const N: usize> {
    /// Free-list links; a chain in flight keeps the links it was taken with.
    next: [u16; N],
    free_head: u16,
    num_free: u16,
    /// Descriptors of the chain whose head is this index; 0: not a head in flight.
    chain_len: [u16; N],
    chains_in_flight: u16,
    avail_idx: u16,
    last_used: u16,
}

impl<const N: usize> Default for DriverQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> DriverQueue<N> {
    const SIZE_IS_VALID: () = assert!(N.is_power_of_two() && N <= 32768);

    pub fn new() -> Self {
        let () = Self::SIZE_IS_VALID;
        DriverQueue {
            next: core::array::from_fn(|i| (i + 1) as u16),
            free_head: 0,
            num_free: N as u16,
            chain_len: [0; N],
            chains_in_flight: 0,
            avail_idx: 0,
            last_used: 0,
        }
    }

    /// Queue size (what the driver writes to QueueNum).
    pub const fn size(&self) -> u16 {
        N as u16
    }

    pub fn free_descriptors(&self) -> usize {
        usize::from(self.num_free)
    }

    pub fn chains_in_flight(&self) -> usize {
        usize::from(self.chains_in_flight)
    }

    /// Give the device a chain of `pieces` (device-read ones first); returns
    /// its head, which [`DriverQueue::pop_used`] hands back when done.
    pub fn add(&mut self, mem: &mut impl RingMemory, pieces: &[Piece]) -> Result<u16, DriverError> {
        if pieces.is_empty() || pieces.len() > usize::from(self.num_free) {
            return Err(DriverError::Full);
        }
        let head = self.free_head;
        let mut at = head;
        for (k, piece) in pieces.iter().enumerate() {
            let link = self.next[usize::from(at) % N];
            let mut flags = if piece.device_writes { DESC_F_WRITE } else { 0 };
            if k + 1 < pieces.len() {
                flags |= DESC_F_NEXT;
            }
            mem.set_descriptor(at, piece.addr, piece.len, flags, link);
            at = link;
        }
        self.free_head = at;
        self.num_free -= pieces.len() as u16;
        self.chain_len[usize::from(head) % N] = pieces.len() as u16;
        self.chains_in_flight += 1;
        mem.set_avail_entry(self.avail_idx % N as u16, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.set_avail_idx(self.avail_idx);
        Ok(head)
    }

    /// The next chain the device finished, as (head, bytes written), or
    /// `None` when it finished nothing new.
    pub fn pop_used(&mut self, mem: &impl RingMemory) -> Result<Option<(u16, u32)>, DriverError> {
        let used = mem.used_idx();
        if used == self.last_used {
            return Ok(None);
        }
        if used.wrapping_sub(self.last_used) > self.chains_in_flight {
            return Err(DriverError::DeviceBroke);
        }
        let (id, written) = mem.used_elem(self.last_used % N as u16);
        let head = usize::try_from(id).unwrap_or(usize::MAX);
        let Some(&len) = self.chain_len.get(head).filter(|len| **len > 0) else {
            return Err(DriverError::DeviceBroke);
        };
        // Back on the free list: the chain's own links lead to its tail.
        let mut tail = head;
        for _ in 1..len {
            tail = usize::from(self.next[tail]) % N;
        }
        self.next[tail] = self.free_head;
        self.free_head = head as u16;
        self.num_free += len;
        self.chain_len[head] = 0;
        self.chains_in_flight -= 1;
        self.last_used = self.last_used.wrapping_add(1);
        Ok(Some((head as u16, written)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Rings as plain arrays, with a device that completes chains in any order.
    #[derive(Default)]
    struct Rings {
        desc: Vec<(u64, u32, u16, u16)>,
        avail: Vec<u16>,
        avail_idx: u16,
        used: Vec<(u32, u32)>,
        used_idx: u16,
    }

    impl Rings {
        fn new(n: usize) -> Self {
            Rings {
                desc: alloc::vec![(0, 0, 0, 0); n],
                avail: alloc::vec![0; n],
                used: alloc::vec![(0, 0); n],
                ..Default::default()
            }
        }

        /// The chain the driver published from `head`: (addr, len, writes).
        fn chain(&self, head: u16) -> Vec<(u64, u32, bool)> {
            let mut out = Vec::new();
            let mut at = usize::from(head);
            loop {
                let (addr, len, flags, next) = self.desc[at];
                out.push((addr, len, flags & DESC_F_WRITE != 0));
                if flags & DESC_F_NEXT == 0 {
                    return out;
                }
                at = usize::from(next);
            }
        }

        fn complete(&mut self, id: u32, written: u32) {
            let n = self.used.len();
            self.used[usize::from(self.used_idx) % n] = (id, written);
            self.used_idx = self.used_idx.wrapping_add(1);
        }
    }

    impl RingMemory for Rings {
        fn set_descriptor(&mut self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
            self.desc[usize::from(index)] = (addr, len, flags, next);
        }
        fn set_avail_entry(&mut self, slot: u16, head: u16) {
            self.avail[usize::from(slot)] = head;
        }
        fn set_avail_idx(&mut self, idx: u16) {
            self.avail_idx = idx;
        }
        fn used_idx(&self) -> u16 {
            self.used_idx
        }
        fn used_elem(&self, slot: u16) -> (u32, u32) {
            self.used[usize::from(slot)]
        }
    }

    fn piece(addr: u64, len: u32, device_writes: bool) -> Piece {
        Piece {
            addr,
            len,
            device_writes,
        }
    }

    #[test]
    fn a_request_goes_out_as_one_chain_and_comes_back() {
        let mut rings = Rings::new(8);
        let mut q = DriverQueue::<8>::new();
        let pieces = [
            piece(0x1000, 16, false),
            piece(0x8000, 4096, true),
            piece(0x2000, 1, true),
        ];
        let head = q.add(&mut rings, &pieces).unwrap();
        assert_eq!(rings.avail_idx, 1);
        assert_eq!(rings.avail[0], head);
        assert_eq!(
            rings.chain(head),
            [(0x1000, 16, false), (0x8000, 4096, true), (0x2000, 1, true)]
        );
        assert_eq!(q.free_descriptors(), 5);
        assert_eq!(q.pop_used(&rings), Ok(None));
        rings.complete(u32::from(head), 4097);
        assert_eq!(q.pop_used(&rings), Ok(Some((head, 4097))));
        assert_eq!(q.free_descriptors(), 8);
        assert_eq!(q.chains_in_flight(), 0);
    }

    #[test]
    fn out_of_order_completions_free_the_right_descriptors() {
        let mut rings = Rings::new(4);
        let mut q = DriverQueue::<4>::new();
        let a = q
            .add(&mut rings, &[piece(1, 1, false), piece(2, 1, true)])
            .unwrap();
        let b = q
            .add(&mut rings, &[piece(3, 1, false), piece(4, 1, true)])
            .unwrap();
        assert_eq!(
            q.add(&mut rings, &[piece(5, 1, true)]),
            Err(DriverError::Full)
        );
        rings.complete(u32::from(b), 1);
        assert_eq!(q.pop_used(&rings), Ok(Some((b, 1))));
        // b's two descriptors are reused; a's chain is untouched.
        let c = q
            .add(&mut rings, &[piece(6, 1, false), piece(7, 1, true)])
            .unwrap();
        assert_eq!(rings.chain(a), [(1, 1, false), (2, 1, true)]);
        assert_eq!(rings.chain(c), [(6, 1, false), (7, 1, true)]);
        rings.complete(u32::from(a), 1);
        rings.complete(u32::from(c), 1);
        assert_eq!(q.pop_used(&rings), Ok(Some((a, 1))));
        assert_eq!(q.pop_used(&rings), Ok(Some((c, 1))));
        assert_eq!(q.free_descriptors(), 4);
    }

    #[test]
    fn a_device_that_answers_what_it_was_not_given_is_caught() {
        let mut rings = Rings::new(4);
        let mut q = DriverQueue::<4>::new();
        let head = q.add(&mut rings, &[piece(1, 1, true)]).unwrap();
        // Not a head in flight.
        rings.complete(u32::from(head) + 1, 0);
        assert_eq!(q.pop_used(&rings), Err(DriverError::DeviceBroke));
        // More used elements than chains.
        let mut rings2 = Rings::new(4);
        let mut q2 = DriverQueue::<4>::new();
        let h = q2.add(&mut rings2, &[piece(1, 1, true)]).unwrap();
        rings2.complete(u32::from(h), 0);
        rings2.complete(u32::from(h), 0);
        assert_eq!(q2.pop_used(&rings2), Err(DriverError::DeviceBroke));
        // An index far out of range.
        let mut rings3 = Rings::new(4);
        let mut q3 = DriverQueue::<4>::new();
        q3.add(&mut rings3, &[piece(1, 1, true)]).unwrap();
        rings3.complete(u32::MAX, 0);
        assert_eq!(q3.pop_used(&rings3), Err(DriverError::DeviceBroke));
    }

    #[test]
    fn indices_wrap_past_u16() {
        let mut rings = Rings::new(2);
        let mut q = DriverQueue::<2>::new();
        for round in 0..70_000u32 {
            let head = q
                .add(&mut rings, &[piece(u64::from(round), 1, true)])
                .unwrap();
            rings.complete(u32::from(head), round);
            assert_eq!(q.pop_used(&rings), Ok(Some((head, round))));
        }
        assert_eq!(q.free_descriptors(), 2);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    /// Rings whose device answers anything (proofs): the used ring is drawn.
    struct AnyDevice {
        written: [bool; 4],
        used_idx: u16,
        elem: (u32, u32),
    }

    impl RingMemory for AnyDevice {
        fn set_descriptor(&mut self, index: u16, _: u64, _: u32, _: u16, _: u16) {
            // A descriptor of a chain in flight is never written again.
            assert!(!self.written[usize::from(index)]);
            self.written[usize::from(index)] = true;
        }
        fn set_avail_entry(&mut self, _: u16, _: u16) {}
        fn set_avail_idx(&mut self, _: u16) {}
        fn used_idx(&self) -> u16 {
            self.used_idx
        }
        fn used_elem(&self, _: u16) -> (u32, u32) {
            self.elem
        }
    }

    proof! {
        /// Whatever the device puts in its used ring, the bookkeeping stays
        /// consistent: no descriptor is handed out while in flight, every
        /// descriptor is free or in exactly one chain, and only heads that
        /// are in flight come back.
        #[unwind(5)]
        fn driver_queue_never_double_allocates(src) {
            const N: usize = 4;
            let mut q = DriverQueue::<N>::new();
            let mut dev = AnyDevice { written: [false; N], used_idx: 0, elem: (0, 0) };
            let mut heads_returned = 0;
            for _ in 0..3 {
                if src.any::<bool>() {
                    let count = src.below(3) as usize + 1;
                    let pieces = [Piece::default(); 3];
                    let before = q.free_descriptors();
                    match q.add(&mut dev, &pieces[..count]) {
                        Ok(head) => {
                            assert!(usize::from(head) < N);
                            assert!(q.free_descriptors() == before - count);
                        }
                        Err(_) => assert!(count > before),
                    }
                } else {
                    dev.used_idx = q.last_used.wrapping_add(src.below(3) as u16);
                    dev.elem = (src.below(6) as u32, 0);
                    let in_flight = q.chain_len;
                    if let Ok(Some((head, _))) = q.pop_used(&dev) {
                        let len = in_flight[usize::from(head)];
                        assert!(len > 0);
                        heads_returned += 1;
                        // The device may reuse them now: forget they were written.
                        let mut at = usize::from(head);
                        for _ in 0..len {
                            dev.written[at] = false;
                            at = usize::from(q.next[at]) % N;
                        }
                    }
                }
                let held: u16 = q.chain_len.iter().sum();
                assert!(held + q.num_free == N as u16);
                assert!(usize::from(q.chains_in_flight) == q.chain_len.iter().filter(|l| **l > 0).count());
            }
            cover!(heads_returned > 0, "a chain comes back");
            cover!(q.free_descriptors() == 0, "the queue fills up");
        }
    }
}
