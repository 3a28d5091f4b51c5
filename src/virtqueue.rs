//! Virtio split virtqueues (virtio 1.2, section 2.7): reading descriptor
//! chains the guest made available and returning them as used.
//!
//! Everything here is guest-controlled: ring indices, descriptor addresses,
//! lengths, flags and `next` links. The parser therefore checks every value
//! before it is used, never follows more links than the queue has
//! descriptors (so a looping chain terminates), and yields only buffers that
//! lie entirely inside the VM's memory. A malformed queue is reported as an
//! error, on which a device sets DEVICE_NEEDS_RESET (virtio 2.1.2).

/// Guest memory as the device sees it (guest-physical addresses).
pub trait GuestMemory {
    /// Whether `[addr, addr + len)` lies entirely inside the VM's RAM.
    fn contains(&self, addr: u64, len: u64) -> bool;
    /// Read `buf.len()` bytes at `addr`; `false` if outside RAM.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
    /// Write `data` at `addr`; `false` if outside RAM.
    fn write(&mut self, addr: u64, data: &[u8]) -> bool;
    /// The host-physical address of guest address `addr`, for a physical
    /// device to read or write: valid up to the end of `addr`'s 4 KiB page
    /// and no further (guest RAM need not be contiguous in host memory). The
    /// page is made ready first (zeroed, mapped), as if the guest had
    /// touched it. `None` outside the VM's RAM, or where there is no host
    /// memory behind it (the default: memory models without one).
    fn dma_address(&mut self, addr: u64) -> Option<u64> {
        let _ = addr;
        None
    }
}

/// Largest queue size the virtio specification allows for split queues.
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// Most buffers one chain may carry here (device-independent cap, bounds work per request).
pub const MAX_CHAIN_BUFFERS: usize = 64;

const DESC_SIZE: u64 = 16;
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;

/// Why a queue can no longer be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// Queue size zero, above 32768 or not a power of two, or rings not aligned.
    BadConfiguration,
    /// A ring or descriptor table is not inside guest memory.
    RingOutsideMemory,
    /// The guest claims more new buffers than the queue holds.
    AvailIndexJump,
    /// A head or `next` index is not below the queue (or indirect table) size.
    DescriptorIndexOutOfRange,
    /// The chain is longer than the queue, i.e. it loops.
    ChainTooLong,
    /// A buffer is not entirely inside guest memory.
    BufferOutsideMemory,
    /// A device-readable buffer follows a device-writable one.
    ReadableAfterWritable,
    /// Indirect table inside an indirect table, malformed length, or INDIRECT combined with NEXT.
    BadIndirect,
    /// The device cannot answer the request (e.g. no writable byte for a
    /// block request's status).
    Unanswerable,
}

/// One guest buffer of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    pub addr: u64,
    pub len: u32,
    /// Device-writable (the device fills it) rather than device-readable.
    pub writable: bool,
}

/// A descriptor chain the guest made available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Index of the head descriptor, to return in the used ring.
    pub head: u16,
    buffers: [Buffer; MAX_CHAIN_BUFFERS],
    count: usize,
}

impl Chain {
    /// The chain's buffers, readable ones first.
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers[..self.count]
    }
}

/// Addresses and size the driver programmed for one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueConfig {
    pub size: u16,
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
}

/// Device-side state of one split virtqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitQueue {
    config: QueueConfig,
    next_avail: u16,
    next_used: u16,
}

#[derive(Clone, Copy)]
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn read_u16(mem: &(impl GuestMemory + ?Sized), addr: u64) -> Result<u16, QueueError> {
    let mut b = [0u8; 2];
    if mem.read(addr, &mut b) {
        Ok(u16::from_le_bytes(b))
    } else {
        Err(QueueError::RingOutsideMemory)
    }
}

fn read_descriptor(
    mem: &(impl GuestMemory + ?Sized),
    table: u64,
    index: u64,
) -> Result<Descriptor, QueueError> {
    let mut b = [0u8; 16];
    let addr = table
        .checked_add(index * DESC_SIZE)
        .ok_or(QueueError::RingOutsideMemory)?;
    if !mem.read(addr, &mut b) {
        return Err(QueueError::RingOutsideMemory);
    }
    Ok(Descriptor {
        addr: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        flags: u16::from_le_bytes([b[12], b[13]]),
        next: u16::from_le_bytes([b[14], b[15]]),
    })
}

impl SplitQueue {
    /// Validate a configuration the driver wrote (on QueueReady).
    pub fn new(config: QueueConfig, mem: &(impl GuestMemory + ?Sized)) -> Result<Self, QueueError> {
        let size = u64::from(config.size);
        if config.size == 0 || config.size > MAX_QUEUE_SIZE || !config.size.is_power_of_two() {
            return Err(QueueError::BadConfiguration);
        }
        // Alignment from virtio 2.7: descriptors 16, available ring 2, used ring 4.
        if !config.desc_table.is_multiple_of(16)
            || !config.avail_ring.is_multiple_of(2)
            || !config.used_ring.is_multiple_of(4)
        {
            return Err(QueueError::BadConfiguration);
        }
        let rings_inside = mem.contains(config.desc_table, size * DESC_SIZE)
            && mem.contains(config.avail_ring, 6 + 2 * size)
            && mem.contains(config.used_ring, 6 + 8 * size);
        if !rings_inside {
            return Err(QueueError::RingOutsideMemory);
        }
        Ok(SplitQueue {
            config,
            next_avail: 0,
            next_used: 0,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Take the next available chain, if the guest made one available.
    pub fn pop(&mut self, mem: &(impl GuestMemory + ?Sized)) -> Result<Option<Chain>, QueueError> {
        let avail_idx = read_u16(mem, self.config.avail_ring + 2)?;
        let pending = avail_idx.wrapping_sub(self.next_avail);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.config.size {
            return Err(QueueError::AvailIndexJump);
        }
        let slot = u64::from(self.next_avail % self.config.size);
        let head = read_u16(mem, self.config.avail_ring + 4 + 2 * slot)?;
        let chain = self.walk_chain(mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    fn walk_chain(
        &self,
        mem: &(impl GuestMemory + ?Sized),
        head: u16,
    ) -> Result<Chain, QueueError> {
        let empty = Buffer {
            addr: 0,
            len: 0,
            writable: false,
        };
        let mut chain = Chain {
            head,
            buffers: [empty; MAX_CHAIN_BUFFERS],
            count: 0,
        };
        let mut table = self.config.desc_table;
        let mut table_size = u64::from(self.config.size);
        let mut index = u64::from(head);
        let mut in_indirect = false;
        let mut seen_writable = false;
        // Each step follows one link; more steps than descriptors means a loop.
        let mut steps_left = table_size;
        loop {
            if index >= table_size {
                return Err(QueueError::DescriptorIndexOutOfRange);
            }
            if steps_left == 0 {
                return Err(QueueError::ChainTooLong);
            }
            steps_left -= 1;
            let desc = read_descriptor(mem, table, index)?;
            if desc.flags & DESC_F_INDIRECT != 0 {
                if in_indirect
                    || desc.flags & DESC_F_NEXT != 0
                    || desc.len == 0
                    || u64::from(desc.len) % DESC_SIZE != 0
                {
                    return Err(QueueError::BadIndirect);
                }
                if !mem.contains(desc.addr, u64::from(desc.len)) || desc.addr % 16 != 0 {
                    return Err(QueueError::BadIndirect);
                }
                // A chain, indirect part included, never exceeds the queue size (virtio 2.7.5.3.1).
                if u64::from(desc.len) / DESC_SIZE > u64::from(self.config.size) {
                    return Err(QueueError::BadIndirect);
                }
                in_indirect = true;
                table = desc.addr;
                table_size = u64::from(desc.len) / DESC_SIZE;
                steps_left = table_size;
                index = 0;
                continue;
            }
            let writable = desc.flags & DESC_F_WRITE != 0;
            if seen_writable && !writable {
                return Err(QueueError::ReadableAfterWritable);
            }
            seen_writable |= writable;
            if !mem.contains(desc.addr, u64::from(desc.len)) {
                return Err(QueueError::BufferOutsideMemory);
            }
            if chain.count == MAX_CHAIN_BUFFERS || chain.count == usize::from(self.config.size) {
                return Err(QueueError::ChainTooLong);
            }
            chain.buffers[chain.count] = Buffer {
                addr: desc.addr,
                len: desc.len,
                writable,
            };
            chain.count += 1;
            if desc.flags & DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            index = u64::from(desc.next);
        }
    }

    /// Return chain `head` to the guest with `written` bytes placed in its writable buffers.
    pub fn push_used(
        &mut self,
        mem: &mut (impl GuestMemory + ?Sized),
        head: u16,
        written: u32,
    ) -> Result<(), QueueError> {
        let slot = u64::from(self.next_used % self.config.size);
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&written.to_le_bytes());
        if !mem.write(self.config.used_ring + 4 + 8 * slot, &elem) {
            return Err(QueueError::RingOutsideMemory);
        }
        self.next_used = self.next_used.wrapping_add(1);
        // The index is published after the element (the glue adds the barrier).
        if !mem.write(self.config.used_ring + 2, &self.next_used.to_le_bytes()) {
            return Err(QueueError::RingOutsideMemory);
        }
        Ok(())
    }
}

/// Guest RAM as one flat byte array (tests, proofs, fuzzing, host tools).
pub struct FlatMemory {
    pub base: u64,
    pub bytes: alloc::vec::Vec<u8>,
}

impl GuestMemory for FlatMemory {
    fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.bytes.len() as u64)
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        if !self.contains(addr, buf.len() as u64) {
            return false;
        }
        let at = (addr - self.base) as usize;
        buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
        true
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        if !self.contains(addr, data.len() as u64) {
            return false;
        }
        let at = (addr - self.base) as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
        true
    }
    /// Tests stand in a host address that is the guest address plus
    /// [`FLAT_DMA_OFFSET`].
    fn dma_address(&mut self, addr: u64) -> Option<u64> {
        self.contains(addr, 1).then_some(addr + FLAT_DMA_OFFSET)
    }
}

/// Where [`FlatMemory`] says its bytes are for a device (tests).
pub const FLAT_DMA_OFFSET: u64 = 0x10_0000_0000;

#[cfg(test)]
impl FlatMemory {
    /// As a driver does (tests of devices): write the chain of (addr, len,
    /// device-writable) buffers into descriptors `first..` of the queue
    /// `config` describes, linked in order, and make it available in slot
    /// `slot` (the available index becomes `slot + 1`).
    pub fn offer_chain(
        &mut self,
        config: QueueConfig,
        slot: u16,
        first: u16,
        chain: &[(u64, u32, bool)],
    ) {
        for (k, &(addr, len, writable)) in chain.iter().enumerate() {
            let index = first + k as u16;
            let mut flags = if writable { DESC_F_WRITE } else { 0 };
            if k + 1 < chain.len() {
                flags |= DESC_F_NEXT;
            }
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&addr.to_le_bytes());
            d[8..12].copy_from_slice(&len.to_le_bytes());
            d[12..14].copy_from_slice(&flags.to_le_bytes());
            d[14..].copy_from_slice(&(index + 1).to_le_bytes());
            assert!(self.write(config.desc_table + DESC_SIZE * u64::from(index), &d));
        }
        let entry = config.avail_ring + 4 + 2 * u64::from(slot % config.size);
        assert!(self.write(entry, &first.to_le_bytes()));
        assert!(self.write(config.avail_ring + 2, &(slot + 1).to_le_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const BASE: u64 = 0x1000;
    const DESC: u64 = BASE;
    const AVAIL: u64 = BASE + 0x100;
    const USED: u64 = BASE + 0x200;

    fn memory() -> FlatMemory {
        FlatMemory {
            base: BASE,
            bytes: vec![0; 0x1000],
        }
    }

    fn put_desc(mem: &mut FlatMemory, i: u64, addr: u64, len: u32, flags: u16, next: u16) {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&addr.to_le_bytes());
        b[8..12].copy_from_slice(&len.to_le_bytes());
        b[12..14].copy_from_slice(&flags.to_le_bytes());
        b[14..].copy_from_slice(&next.to_le_bytes());
        assert!(mem.write(DESC + i * 16, &b));
    }

    fn make_available(mem: &mut FlatMemory, slot: u64, head: u16, idx: u16) {
        assert!(mem.write(AVAIL + 4 + 2 * slot, &head.to_le_bytes()));
        assert!(mem.write(AVAIL + 2, &idx.to_le_bytes()));
    }

    fn queue(mem: &FlatMemory) -> SplitQueue {
        SplitQueue::new(
            QueueConfig {
                size: 4,
                desc_table: DESC,
                avail_ring: AVAIL,
                used_ring: USED,
            },
            mem,
        )
        .unwrap()
    }

    #[test]
    fn reads_a_two_buffer_chain_and_returns_it() {
        let mut mem = memory();
        put_desc(&mut mem, 0, BASE + 0x800, 16, DESC_F_NEXT, 2);
        put_desc(&mut mem, 2, BASE + 0x900, 32, DESC_F_WRITE, 0);
        make_available(&mut mem, 0, 0, 1);
        let mut q = queue(&mem);
        let chain = q.pop(&mem).unwrap().unwrap();
        assert_eq!(chain.head, 0);
        assert_eq!(
            chain.buffers(),
            &[
                Buffer {
                    addr: BASE + 0x800,
                    len: 16,
                    writable: false
                },
                Buffer {
                    addr: BASE + 0x900,
                    len: 32,
                    writable: true
                }
            ]
        );
        assert_eq!(q.pop(&mem), Ok(None));
        q.push_used(&mut mem, chain.head, 32).unwrap();
        let mut idx = [0u8; 2];
        assert!(mem.read(USED + 2, &mut idx));
        assert_eq!(u16::from_le_bytes(idx), 1);
    }

    #[test]
    fn looping_chain_is_an_error_not_a_hang() {
        let mut mem = memory();
        put_desc(&mut mem, 0, BASE + 0x800, 16, DESC_F_NEXT, 1);
        put_desc(&mut mem, 1, BASE + 0x800, 16, DESC_F_NEXT, 0);
        make_available(&mut mem, 0, 0, 1);
        assert_eq!(queue(&mem).pop(&mem), Err(QueueError::ChainTooLong));
    }

    #[test]
    fn rejects_bad_guest_input() {
        let mut mem = memory();
        put_desc(&mut mem, 0, 0xdead_0000, 16, 0, 0);
        make_available(&mut mem, 0, 0, 1);
        assert_eq!(queue(&mem).pop(&mem), Err(QueueError::BufferOutsideMemory));

        put_desc(&mut mem, 0, BASE, 16, DESC_F_NEXT, 9);
        assert_eq!(
            queue(&mem).pop(&mem),
            Err(QueueError::DescriptorIndexOutOfRange)
        );

        put_desc(&mut mem, 0, BASE, 16, DESC_F_WRITE | DESC_F_NEXT, 1);
        put_desc(&mut mem, 1, BASE, 16, 0, 0);
        assert_eq!(
            queue(&mem).pop(&mem),
            Err(QueueError::ReadableAfterWritable)
        );

        make_available(&mut mem, 0, 0, 9);
        assert_eq!(queue(&mem).pop(&mem), Err(QueueError::AvailIndexJump));

        let bad = QueueConfig {
            size: 3,
            desc_table: DESC,
            avail_ring: AVAIL,
            used_ring: USED,
        };
        assert_eq!(
            SplitQueue::new(bad, &mem),
            Err(QueueError::BadConfiguration)
        );
        let outside = QueueConfig {
            size: 4,
            desc_table: 0,
            avail_ring: AVAIL,
            used_ring: USED,
        };
        assert_eq!(
            SplitQueue::new(outside, &mem),
            Err(QueueError::RingOutsideMemory)
        );
    }

    #[test]
    fn follows_an_indirect_table() {
        let mut mem = memory();
        let table = BASE + 0x400;
        put_desc(&mut mem, 0, table, 32, DESC_F_INDIRECT, 0);
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&(BASE + 0x800).to_le_bytes());
        b[8..12].copy_from_slice(&8u32.to_le_bytes());
        b[12..14].copy_from_slice(&DESC_F_NEXT.to_le_bytes());
        b[14..16].copy_from_slice(&1u16.to_le_bytes());
        b[16..24].copy_from_slice(&(BASE + 0x900).to_le_bytes());
        b[24..28].copy_from_slice(&8u32.to_le_bytes());
        b[28..30].copy_from_slice(&DESC_F_WRITE.to_le_bytes());
        assert!(mem.write(table, &b));
        make_available(&mut mem, 0, 0, 1);
        let chain = queue(&mem).pop(&mem).unwrap().unwrap();
        assert_eq!(chain.buffers().len(), 2);
        assert!(chain.buffers()[1].writable);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    const BASE: u64 = 0x1000;
    /// A 2-entry ring: the parser takes the size as a parameter (up to 32768), and two
    /// descriptors already reach every case of the walk (a chain, a loop, an indirect table of
    /// two, a chain longer than the queue), in at most 5 steps of its loop.
    const SIZE: u16 = 2;
    /// Descriptors, then the available ring, then the used ring, then data.
    const AVAIL_AT: usize = 16 * SIZE as usize;
    const USED_AT: usize = AVAIL_AT + 16;
    const MEM_LEN: usize = USED_AT + 24 + 32;

    #[cfg(not(kani))]
    fn put<const N: usize>(bytes: &mut [u8], at: usize, value: [u8; N]) {
        bytes[at..at + N].copy_from_slice(&value);
    }

    /// Under test: a flat memory with random contents, steered towards valid chains.
    #[cfg(not(kani))]
    fn symbolic_memory(src: &mut crate::verify::Source) -> FlatMemory {
        // One symbolic array (no loop for Kani to unwind), then the fields that decide the
        // walk are steered towards values that make chains valid often enough.
        let mut bytes: [u8; MEM_LEN] = src.any();
        let size = u64::from(SIZE);
        for d in 0..usize::from(SIZE) {
            let addr = if src.any() {
                BASE + 16 * src.below(MEM_LEN as u64 / 16 + 2)
            } else {
                BASE + src.below(MEM_LEN as u64 + 32)
            };
            put(&mut bytes, d * 16, addr.to_le_bytes());
            let len = if src.any() {
                16 * src.below(size + 1)
            } else {
                src.below(48)
            } as u32;
            put(&mut bytes, d * 16 + 8, len.to_le_bytes());
            put(&mut bytes, d * 16 + 12, (src.below(8) as u16).to_le_bytes());
            put(
                &mut bytes,
                d * 16 + 14,
                (src.below(size + 2) as u16).to_le_bytes(),
            );
        }
        // Available ring: a small index and heads mostly in range.
        put(
            &mut bytes,
            AVAIL_AT + 2,
            (src.below(3) as u16).to_le_bytes(),
        );
        for slot in 0..usize::from(SIZE) {
            put(
                &mut bytes,
                AVAIL_AT + 4 + 2 * slot,
                (src.below(size + 1) as u16).to_le_bytes(),
            );
        }
        FlatMemory {
            base: BASE,
            bytes: bytes.to_vec(),
        }
    }

    /// Under Kani: guest memory whose every read returns fresh arbitrary bytes, as if the guest
    /// rewrote its rings between any two reads (it may: it runs on other CPUs). Its bounds are
    /// fixed. The properties must hold for any contents, so this covers every memory
    /// [`FlatMemory`] could hold, without an array for the checker to track.
    #[cfg(kani)]
    struct ChaoticMemory {
        /// Set once a descriptor was read outside the queue's own table (an indirect table).
        read_indirect: core::cell::Cell<bool>,
    }

    #[cfg(kani)]
    impl GuestMemory for ChaoticMemory {
        fn contains(&self, addr: u64, len: u64) -> bool {
            addr >= BASE
                && addr
                    .checked_add(len)
                    .is_some_and(|end| end <= BASE + MEM_LEN as u64)
        }
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            if !self.contains(addr, buf.len() as u64) || buf.len() > 16 {
                return false;
            }
            if buf.len() == 16 && addr >= BASE + AVAIL_AT as u64 {
                self.read_indirect.set(true);
            }
            let bytes: [u8; 16] = kani::any();
            buf.copy_from_slice(&bytes[..buf.len()]);
            true
        }
        fn write(&mut self, addr: u64, data: &[u8]) -> bool {
            self.contains(addr, data.len() as u64)
        }
    }

    proof! {
        /// For any ring and descriptor contents, pop terminates, never panics, yields at most
        /// queue-size buffers per chain, every buffer lies inside guest memory, and readable
        /// buffers come before writable ones.
        #[unwind(6)]
        fn pop_yields_only_buffers_inside_guest_memory(src) {
            #[cfg(kani)]
            let mem = ChaoticMemory { read_indirect: core::cell::Cell::new(false) };
            #[cfg(not(kani))]
            let mem = symbolic_memory(src);
            let config = QueueConfig {
                size: SIZE,
                desc_table: BASE,
                avail_ring: BASE + AVAIL_AT as u64,
                used_ring: BASE + USED_AT as u64,
            };
            let Ok(mut queue) = SplitQueue::new(config, &mem) else { return };
            let popped = queue.pop(&mem);
            // (matches!, not ==: comparing chains would compare 64 buffers, a loop to unroll.)
            cover!(matches!(popped, Ok(None)), "an empty queue");
            cover!(matches!(popped, Err(QueueError::ChainTooLong)), "a looping chain refused");
            cover!(matches!(popped, Err(QueueError::BufferOutsideMemory)), "a buffer outside memory refused");
            cover!(matches!(popped, Err(QueueError::BadIndirect)), "a bad indirect table refused");
            if let Ok(Some(chain)) = popped {
                let buffers = chain.buffers();
                cover!(buffers.len() >= 2, "a chain of several buffers popped");
                cover!(buffers.iter().any(|b| b.writable), "a chain with a device-writable buffer");
                #[cfg(kani)]
                let indirect = mem.read_indirect.get();
                #[cfg(not(kani))]
                let indirect = mem.bytes[usize::from(chain.head) * 16 + 12] & DESC_F_INDIRECT as u8 != 0;
                cover!(indirect, "a chain through an indirect table popped");
                assert!(buffers.len() <= usize::from(SIZE));
                for b in buffers {
                    assert!(mem.contains(b.addr, u64::from(b.len)));
                }
                let first_writable = buffers.iter().position(|b| b.writable).unwrap_or(buffers.len());
                assert!(buffers[first_writable..].iter().all(|b| b.writable));
            }
        }
    }
}
