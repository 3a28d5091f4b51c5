//! Proofs for the virtio-blk device backend.

use super::*;

const BASE: u64 = 0x4000_0000;

/// Guest RAM of `size` bytes at `base` whose pages lie in host memory in
/// reverse order (page n of the guest is host page 100 - n): no two guest
/// pages are adjacent in host memory. Only translation is modelled.
struct ScatteredPages {
    base: u64,
    size: u64,
}

impl GuestMemory for ScatteredPages {
    fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.size)
    }
    fn read(&self, _: u64, _: &mut [u8]) -> bool {
        false
    }
    fn write(&mut self, _: u64, _: &[u8]) -> bool {
        false
    }
    fn dma_address(&mut self, addr: u64) -> Option<u64> {
        if !self.contains(addr, 1) {
            return None;
        }
        let page = (addr - self.base) / PAGE_SIZE;
        Some((100 - page) * PAGE_SIZE + addr % PAGE_SIZE)
    }
}

proof! {
    /// Every data byte of a request reaches the host address its own guest
    /// page translates to, in order, whatever the framing: pieces never
    /// lose, reorder or shift a byte, and a page outside the RAM fails the
    /// whole request.
    #[unwind(6)]
    fn each_data_byte_goes_to_its_own_page(src) {
        let mut mem = ScatteredPages { base: BASE, size: 0x4000 };
        let mut data = [Buffer { addr: 0, len: 0, writable: false }; 2];
        for b in data.iter_mut() {
            b.addr = BASE + src.below(0x4800);
            b.len = src.below(0x1800) as u32;
            b.writable = src.any();
        }
        let mut out = [Piece::default(); 4];
        let result = guest_pieces(&data, &mut mem, &mut out);
        let total: u64 = data.iter().map(|b| u64::from(b.len)).sum();
        // One byte, anywhere in the data.
        assume!(total > 0);
        let k = src.below(total);
        let (buffer, offset) = if k < u64::from(data[0].len) {
            (data[0], k)
        } else {
            (data[1], k - u64::from(data[0].len))
        };
        let guest = buffer.addr + offset;
        match result {
            Some(count) => {
                let pieces = &out[..count];
                let sum: u64 = pieces.iter().map(|p| u64::from(p.len)).sum();
                assert!(sum == total);
                // Find byte k among the pieces.
                let mut at = k;
                let mut host = None;
                for p in pieces {
                    if at < u64::from(p.len) {
                        host = Some((p.addr + at, p.device_writes));
                        break;
                    }
                    at -= u64::from(p.len);
                }
                assert!(host == Some((mem.dma_address(guest).unwrap(), buffer.writable)));
                cover!(count == 2 && data[0].len > 0 && data[1].len > 0, "two buffers");
                cover!(
                    (data[0].addr % PAGE_SIZE) + u64::from(data[0].len) > PAGE_SIZE,
                    "a buffer split at a page boundary"
                );
            }
            None => {
                let outside = data.iter().any(|b| !mem.contains(b.addr, u64::from(b.len)));
                let pages_met: u64 = data
                    .iter()
                    .filter(|b| b.len > 0)
                    .map(|b| (b.addr + u64::from(b.len) - 1) / PAGE_SIZE - b.addr / PAGE_SIZE + 1)
                    .sum();
                assert!(outside || pages_met > out.len() as u64);
                cover!(outside, "a page outside the RAM refuses the request");
                cover!(!outside, "too many pieces refuses the request");
            }
        }
    }
}
