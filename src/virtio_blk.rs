//! virtio-blk requests (virtio 1.2, section 5.2.6): what a descriptor chain
//! asks the disk to do, checked before anything touches the disk.
//!
//! A request is a 16-byte header the device reads (type, reserved, sector),
//! the data (read by the device for a write, filled by it for a read or
//! GET_ID), and one status byte the device writes last. The guest chooses
//! every part: the framing across buffers (the device must accept any
//! layout: the header may be split, data and header may share a buffer),
//! lengths, sectors, types. [`parse_request`] turns a chain the virtqueue
//! parser already checked (buffers inside the VM's RAM, readable ones
//! first) into either a request to serve, with its data as guest memory
//! pieces, or a status to answer at once:
//! - the request ends past the disk, data not a whole number of sectors, a
//!   write to a read-only disk, a header cut short: VIRTIO_BLK_S_IOERR;
//! - a type this device does not offer: VIRTIO_BLK_S_UNSUPP;
//! - no writable byte for the status: the device cannot answer at all, an
//!   error on which it sets DEVICE_NEEDS_RESET (virtio 2.1.2).

use crate::virtqueue::{Buffer, GuestMemory, MAX_CHAIN_BUFFERS};

/// Bytes per sector (virtio-blk's unit, whatever the backing block size).
pub const SECTOR_SIZE: u64 = 512;
/// Bytes of the request header.
pub const HEADER_LEN: u64 = 16;
/// Bytes of the GET_ID answer.
pub const ID_BYTES: u64 = 20;

pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;

pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// What the disk is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkOp {
    /// Fill the data from the disk, starting at `sector`.
    Read { sector: u64 },
    /// Write the data to the disk, starting at `sector`.
    Write { sector: u64 },
    /// Make every completed write durable.
    Flush,
    /// Write the device's ID string (up to [`ID_BYTES`]) into the data.
    GetId,
}

/// A request to serve: the operation, its data as pieces of guest memory
/// in order (at most `N`, the chain's buffer cap; smaller in proofs), and
/// where its status byte goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlkRequest<const N: usize = MAX_CHAIN_BUFFERS> {
    pub op: BlkOp,
    data: [Buffer; N],
    count: usize,
    /// Total bytes of data.
    pub data_len: u64,
    /// Guest address of the status byte.
    pub status_addr: u64,
}

impl<const N: usize> BlkRequest<N> {
    /// The data, as guest memory pieces in order (device-readable for a
    /// write, device-writable otherwise).
    pub fn data(&self) -> &[Buffer] {
        &self.data[..self.count]
    }
}

/// What a chain turned out to be.
// The request carries its pieces inline, as a `Chain` does: no allocation
// on the exit path that serves it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<const N: usize = MAX_CHAIN_BUFFERS> {
    Request(BlkRequest<N>),
    /// Answer `status` at `status_addr` at once, touching nothing else.
    Refused {
        status: u8,
        status_addr: u64,
    },
}

/// A chain the device cannot answer: no byte to put the status in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoStatusByte;

/// The part of `buffers` that starts `skip_front` bytes in and ends
/// `skip_back` bytes before their end, as pieces; with its length.
fn carve<const N: usize>(
    buffers: &[Buffer],
    skip_front: u64,
    skip_back: u64,
) -> ([Buffer; N], usize, u64) {
    let mut out = [Buffer {
        addr: 0,
        len: 0,
        writable: false,
    }; N];
    let mut count = 0;
    let total: u64 = buffers.iter().map(|b| u64::from(b.len)).sum();
    let end = total.saturating_sub(skip_back);
    let mut at = 0u64;
    for b in buffers {
        let (start, stop) = (at, at + u64::from(b.len));
        at = stop;
        let from = start.max(skip_front);
        let to = stop.min(end);
        if from >= to || count >= N {
            continue;
        }
        out[count] = Buffer {
            addr: b.addr.wrapping_add(from - start),
            // A part of a buffer, so it fits its u32 length.
            len: (to - from) as u32,
            writable: b.writable,
        };
        count += 1;
    }
    (out, count, end.saturating_sub(skip_front))
}

/// Read the header: the first [`HEADER_LEN`] bytes of the readable buffers,
/// however they are split. `None` when there are fewer or memory fails.
fn read_header(readable: &[Buffer], mem: &(impl GuestMemory + ?Sized)) -> Option<[u8; 16]> {
    let mut header = [0u8; 16];
    let mut filled = 0usize;
    for b in readable {
        if filled == header.len() {
            break;
        }
        let take = (header.len() - filled).min(b.len as usize);
        if !mem.read(b.addr, &mut header[filled..filled + take]) {
            return None;
        }
        filled += take;
    }
    (filled == header.len()).then_some(header)
}

/// Whether `len` bytes from `sector` are whole sectors inside a disk of
/// `capacity` sectors (without overflowing, whatever the guest wrote).
fn whole_sectors_inside(sector: u64, len: u64, capacity: u64) -> bool {
    len.is_multiple_of(SECTOR_SIZE)
        && sector
            .checked_add(len / SECTOR_SIZE)
            .is_some_and(|end| end <= capacity)
}

/// Check a request chain for a disk of `capacity` sectors. `buffers` come
/// from the virtqueue parser: inside guest memory, readable ones first.
pub fn parse_request<const N: usize>(
    buffers: &[Buffer],
    mem: &(impl GuestMemory + ?Sized),
    capacity: u64,
    read_only: bool,
) -> Result<Parsed<N>, NoStatusByte> {
    let split = buffers
        .iter()
        .position(|b| b.writable)
        .unwrap_or(buffers.len());
    let (readable, writable) = buffers.split_at(split);
    // The status is the last writable byte.
    let status_buffer = writable
        .iter()
        .rev()
        .find(|b| b.len > 0)
        .ok_or(NoStatusByte)?;
    // Buffers lie inside guest memory, so this does not wrap; wrapping
    // arithmetic keeps a broken caller from panicking here all the same.
    let status_addr = status_buffer
        .addr
        .wrapping_add(u64::from(status_buffer.len) - 1);
    let refuse = |status| {
        Ok(Parsed::Refused {
            status,
            status_addr,
        })
    };

    let Some(header) = read_header(readable, mem) else {
        return refuse(S_IOERR);
    };
    let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let sector = u64::from_le_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14],
        header[15],
    ]);
    let (readable_data, readable_count, readable_len) = carve(readable, HEADER_LEN, 0);
    let (writable_data, writable_count, writable_len) = carve(writable, 0, 1);
    let request = |op, (data, count, data_len)| {
        Ok(Parsed::Request(BlkRequest {
            op,
            data,
            count,
            data_len,
            status_addr,
        }))
    };
    let inside = |len: u64| whole_sectors_inside(sector, len, capacity);
    match kind {
        T_IN if readable_len == 0 && inside(writable_len) => request(
            BlkOp::Read { sector },
            (writable_data, writable_count, writable_len),
        ),
        T_OUT if !read_only && writable_len == 0 && inside(readable_len) => request(
            BlkOp::Write { sector },
            (readable_data, readable_count, readable_len),
        ),
        T_FLUSH if readable_len == 0 && writable_len == 0 => {
            request(BlkOp::Flush, (writable_data, 0, 0))
        }
        T_GET_ID if readable_len == 0 && writable_len > 0 => {
            // The answer is at most ID_BYTES; a longer buffer gets that many.
            let (data, count, len) = carve(writable, 0, 1 + writable_len.saturating_sub(ID_BYTES));
            request(BlkOp::GetId, (data, count, len))
        }
        T_IN | T_OUT | T_FLUSH | T_GET_ID => refuse(S_IOERR),
        _ => refuse(S_UNSUPP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtqueue::FlatMemory;

    const BASE: u64 = 0x4000_0000;

    fn parse(
        buffers: &[Buffer],
        mem: &FlatMemory,
        capacity: u64,
        read_only: bool,
    ) -> Result<Parsed, NoStatusByte> {
        parse_request::<MAX_CHAIN_BUFFERS>(buffers, mem, capacity, read_only)
    }

    fn r(addr: u64, len: u32) -> Buffer {
        Buffer {
            addr: BASE + addr,
            len,
            writable: false,
        }
    }

    fn w(addr: u64, len: u32) -> Buffer {
        Buffer {
            addr: BASE + addr,
            len,
            writable: true,
        }
    }

    fn memory_with_header(kind: u32, sector: u64) -> FlatMemory {
        let mut mem = FlatMemory {
            base: BASE,
            bytes: alloc::vec![0; 0x10000],
        };
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        mem.write(BASE, &header);
        mem
    }

    fn request(parsed: Result<Parsed, NoStatusByte>) -> BlkRequest {
        match parsed {
            Ok(Parsed::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn linux_style_read_and_write_chains() {
        let mem = memory_with_header(T_IN, 8);
        let chain = [r(0, 16), w(0x1000, 4096), w(0x3000, 1)];
        let req = request(parse(&chain, &mem, 16, false));
        assert_eq!(req.op, BlkOp::Read { sector: 8 });
        assert_eq!(req.data(), &[w(0x1000, 4096)]);
        assert_eq!((req.data_len, req.status_addr), (4096, BASE + 0x3000));

        let mem = memory_with_header(T_OUT, 0);
        let chain = [r(0, 16), r(0x1000, 512), r(0x2000, 1024), w(0x3000, 1)];
        let req = request(parse(&chain, &mem, 3, false));
        assert_eq!(req.op, BlkOp::Write { sector: 0 });
        assert_eq!(req.data(), &[r(0x1000, 512), r(0x2000, 1024)]);
        assert_eq!(req.data_len, 1536);
    }

    #[test]
    fn any_framing_is_accepted() {
        // Header split in two, header and data in one buffer, data and status in one.
        let mem = memory_with_header(T_OUT, 1);
        let chain = [r(0, 10), r(10, 6 + 512), w(0x3000, 1)];
        let req = request(parse(&chain, &mem, 2, false));
        assert_eq!(req.data(), &[r(16, 512)]);
        let mem = memory_with_header(T_IN, 1);
        let chain = [r(0, 16), w(0x1000, 513)];
        let req = request(parse(&chain, &mem, 2, false));
        assert_eq!(req.data(), &[w(0x1000, 512)]);
        assert_eq!(req.status_addr, BASE + 0x1000 + 512);
    }

    #[test]
    fn bad_requests_get_the_status_the_spec_says() {
        let refused = |status| -> Result<Parsed, NoStatusByte> {
            Ok(Parsed::Refused {
                status,
                status_addr: BASE + 0x3000,
            })
        };
        // Past the end, not whole sectors, sector arithmetic overflowing.
        let mem = memory_with_header(T_IN, 15);
        assert_eq!(
            parse(&[r(0, 16), w(0x1000, 1024), w(0x3000, 1)], &mem, 16, false),
            refused(S_IOERR)
        );
        assert_eq!(
            parse(&[r(0, 16), w(0x1000, 100), w(0x3000, 1)], &mem, 16, false),
            refused(S_IOERR)
        );
        let mem = memory_with_header(T_IN, u64::MAX);
        assert_eq!(
            parse(
                &[r(0, 16), w(0x1000, 512), w(0x3000, 1)],
                &mem,
                u64::MAX,
                false
            ),
            refused(S_IOERR)
        );
        // A write to a read-only disk; a header cut short; an unknown type.
        let mem = memory_with_header(T_OUT, 0);
        assert_eq!(
            parse(&[r(0, 16), r(0x1000, 512), w(0x3000, 1)], &mem, 16, true),
            refused(S_IOERR)
        );
        assert_eq!(
            parse(&[r(0, 15), w(0x3000, 1)], &mem, 16, false),
            refused(S_IOERR)
        );
        let mem = memory_with_header(11, 0);
        assert_eq!(
            parse(&[r(0, 16), w(0x3000, 1)], &mem, 16, false),
            refused(S_UNSUPP)
        );
        // No byte for the status: the device cannot answer.
        assert_eq!(
            parse(&[r(0, 16), r(0x1000, 512)], &mem, 16, false),
            Err(NoStatusByte)
        );
        assert_eq!(
            parse(&[r(0, 16), w(0x1000, 0)], &mem, 16, false),
            Err(NoStatusByte)
        );
    }

    #[test]
    fn flush_and_get_id() {
        let mem = memory_with_header(T_FLUSH, 0);
        let req = request(parse(&[r(0, 16), w(0x3000, 1)], &mem, 0, true));
        assert_eq!((req.op, req.data_len), (BlkOp::Flush, 0));
        let mem = memory_with_header(T_GET_ID, 0);
        let req = request(parse(
            &[r(0, 16), w(0x1000, 64), w(0x3000, 1)],
            &mem,
            0,
            false,
        ));
        assert_eq!(req.op, BlkOp::GetId);
        assert_eq!(req.data(), &[w(0x1000, 20)]);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;
    use crate::verify::Source;

    /// Guest memory of `MEM` bytes at `BASE` whose first 16 bytes are the
    /// header and the rest zero: all the parser reads is the header, and a
    /// byte array this small keeps the prover's memory model small.
    struct HeaderMemory([u8; 16]);

    impl GuestMemory for HeaderMemory {
        fn contains(&self, addr: u64, len: u64) -> bool {
            addr >= BASE && addr.checked_add(len).is_some_and(|end| end <= BASE + MEM)
        }
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            if !self.contains(addr, buf.len() as u64) {
                return false;
            }
            for (i, byte) in buf.iter_mut().enumerate() {
                let at = addr - BASE + i as u64;
                *byte = if at < 16 { self.0[at as usize] } else { 0 };
            }
            true
        }
        fn write(&mut self, _addr: u64, _data: &[u8]) -> bool {
            false
        }
    }

    const BASE: u64 = 0x1000;
    const MEM: u64 = 0x1000;
    const BUFFERS: usize = 3;

    /// A length that is often a whole number of sectors (plus the status
    /// byte or a header), which random values rarely are.
    fn any_len(src: &mut Source, room: u64) -> u32 {
        let len = match src.below(3) {
            0 => SECTOR_SIZE * src.below(3) + src.below(2),
            1 => HEADER_LEN + SECTOR_SIZE * src.below(2) - src.below(7),
            _ => src.below(room + 1),
        };
        len.min(room) as u32
    }

    proof! {
        /// Whatever chain the guest builds (any framing, lengths, header
        /// contents) for any disk size: the parser never panics; a request
        /// it accepts has its data inside the chain's buffers of the right
        /// direction, not overlapping the status byte, whole sectors inside
        /// the disk for reads and writes, no write to a read-only disk; the
        /// status byte is the chain's last writable byte; and a chain with
        /// no writable byte is the only one it cannot answer.
        #[unwind(17)]
        fn requests_stay_inside_the_chain_and_the_disk(src) {
            // Any header, with the four known types and small sectors common.
            let kind: u32 = if src.any() {
                [T_IN, T_OUT, T_FLUSH, T_GET_ID, 11][src.below(5) as usize]
            } else {
                src.any()
            };
            let sector: u64 = if src.any() { src.below(4) } else { src.any() };
            let mut header = [0u8; 16];
            header[..4].copy_from_slice(&kind.to_le_bytes());
            header[8..].copy_from_slice(&sector.to_le_bytes());
            let mem = HeaderMemory(header);
            let mut chain = [Buffer { addr: 0, len: 0, writable: false }; BUFFERS];
            let count;
            if src.any() {
                // Shaped as drivers build requests (header, data, status), so
                // the accepted cases come up in the property test too.
                // Layouts: header alone; header split in two with the data
                // after its second part; header and a sector in one buffer.
                count = BUFFERS;
                let data_writable = kind != T_OUT;
                let (first, second_at) = match src.below(3) {
                    0 => (HEADER_LEN, 0x200),
                    1 => (10, 10),
                    _ => (HEADER_LEN + SECTOR_SIZE, 0x400),
                };
                let data_len = if src.any() { (SECTOR_SIZE * (1 + src.below(2))) as u32 } else { any_len(src, 0x400) };
                let second_len = if second_at == 10 { 6 + data_len } else { data_len };
                chain[0] = Buffer { addr: BASE, len: first as u32, writable: false };
                chain[1] = Buffer { addr: BASE + second_at, len: second_len, writable: data_writable && second_at != 10 };
                chain[2] = Buffer { addr: BASE + 0x800, len: 1 + src.below(2) as u32, writable: true };
            } else {
                count = src.below(BUFFERS as u64 + 1) as usize;
                let first_writable = src.below(count as u64 + 1) as usize;
                for (i, b) in chain.iter_mut().enumerate().take(count) {
                    // The first buffer usually starts at the header.
                    let addr = if i == 0 && src.any() { BASE } else { BASE + src.below(MEM) };
                    let len = any_len(src, MEM - (addr - BASE));
                    *b = Buffer { addr, len, writable: i >= first_writable };
                }
            }
            let chain = &chain[..count];
            let capacity: u64 = if src.any() { src.below(8) } else { src.any() };
            let read_only: bool = src.any();
            let result = parse_request::<BUFFERS>(chain, &mem, capacity, read_only);
            let writable_bytes: u64 = chain.iter().filter(|b| b.writable).map(|b| u64::from(b.len)).sum();
            assert!(result.is_err() == (writable_bytes == 0));
            let status_addr = match &result {
                Ok(Parsed::Request(r)) => r.status_addr,
                Ok(Parsed::Refused { status_addr, status }) => {
                    assert!(*status == S_IOERR || *status == S_UNSUPP);
                    *status_addr
                }
                Err(_) => return,
            };
            let last = chain.iter().rev().find(|b| b.writable && b.len > 0);
            assert!(last.is_some_and(|b| status_addr == b.addr + u64::from(b.len) - 1));
            if let Ok(Parsed::Request(r)) = &result {
                let mut total = 0u64;
                for piece in r.data() {
                    total += u64::from(piece.len);
                    assert!(piece.len > 0);
                    assert!(chain.iter().any(|b| b.writable == piece.writable
                        && piece.addr >= b.addr
                        && piece.addr + u64::from(piece.len) <= b.addr + u64::from(b.len)));
                    assert!(status_addr < piece.addr || status_addr >= piece.addr + u64::from(piece.len)
                        || !piece.writable);
                    let wants_writable = !matches!(r.op, BlkOp::Write { .. });
                    assert!(piece.writable == wants_writable);
                }
                assert!(total == r.data_len);
                match r.op {
                    BlkOp::Read { sector } | BlkOp::Write { sector } => {
                        assert!(r.data_len.is_multiple_of(SECTOR_SIZE));
                        assert!(sector <= capacity && r.data_len / SECTOR_SIZE <= capacity - sector);
                        cover!(r.data_len > 0 && r.data().len() > 1, "data in two pieces");
                    }
                    BlkOp::GetId => assert!(r.data_len <= ID_BYTES && r.data_len > 0),
                    BlkOp::Flush => assert!(r.data_len == 0),
                }
                assert!(!(read_only && matches!(r.op, BlkOp::Write { .. })));
                cover!(matches!(r.op, BlkOp::Read { .. }) && r.data_len > 0, "a read accepted");
                cover!(matches!(r.op, BlkOp::Write { .. }) && r.data_len > 0, "a write accepted");
            }
            cover!(matches!(result, Ok(Parsed::Refused { status: S_UNSUPP, .. })), "an unknown type");
            cover!(matches!(result, Ok(Parsed::Refused { status: S_IOERR, .. })), "a request refused");
            cover!(count >= 2 && chain[0].len < 16 && matches!(result, Ok(Parsed::Request(_))), "a header split across buffers");
        }
    }

    proof! {
        /// The sector arithmetic, for any header and disk: a request fits
        /// exactly when it is whole sectors ending at or before the disk's
        /// end (computed without overflow).
        #[unwind(1)]
        fn sector_bounds_never_overflow(src) {
            let sector: u64 = src.any();
            let len: u64 = src.any();
            let capacity: u64 = src.any();
            let fits = whole_sectors_inside(sector, len, capacity);
            let exact = len.is_multiple_of(SECTOR_SIZE)
                && u128::from(sector) + u128::from(len / SECTOR_SIZE) <= u128::from(capacity);
            assert!(fits == exact);
            cover!(fits && sector > 0 && len > 0, "a request inside the disk");
            cover!(!fits && len.is_multiple_of(SECTOR_SIZE) && sector > capacity, "past the end");
            cover!(!fits && sector.checked_add(len / SECTOR_SIZE).is_none(), "the end overflows");
        }
    }

    proof! {
        /// Cutting `skip_front` bytes off the front and `skip_back` off the
        /// back of up to three buffers: the pieces lie inside their buffers,
        /// keep their direction, are never empty, and add up to what is left.
        #[unwind(4)]
        fn carved_pieces_stay_inside_their_buffers(src) {
            let mut buffers = [Buffer { addr: 0, len: 0, writable: false }; 3];
            let count = src.below(4) as usize;
            // Buffers at fixed, separate places with any lengths below 2 KiB
            // (the carving is arithmetic on lengths and offsets).
            for (i, b) in buffers.iter_mut().enumerate().take(count) {
                *b = Buffer { addr: 0x1000 + 0x1000 * i as u64, len: src.below(0x800) as u32, writable: src.any() };
            }
            let buffers = &buffers[..count];
            let total: u64 = buffers.iter().map(|b| u64::from(b.len)).sum();
            let skip_front = src.below(total + 1);
            let skip_back = src.below(total + 1);
            let (pieces, n, len) = carve::<3>(buffers, skip_front, skip_back);
            assert!(n <= 3);
            assert!(len == total.saturating_sub(skip_back).saturating_sub(skip_front));
            let mut sum = 0u64;
            for piece in &pieces[..n] {
                assert!(piece.len > 0);
                sum += u64::from(piece.len);
                assert!(buffers.iter().any(|b| b.writable == piece.writable
                    && piece.addr >= b.addr
                    && piece.addr + u64::from(piece.len) <= b.addr + u64::from(b.len)));
            }
            assert!(sum == len);
            cover!(n == 3 && skip_front > 0 && skip_back > 0, "three pieces, both ends cut");
            cover!(n == 0 && total > 0, "everything cut away");
        }
    }

    proof! {
        /// The answer to a request framed as drivers frame it (header,
        /// data, status), for any header, data length and direction, disk
        /// size and read-only flag, is the one virtio 5.2.6 gives: reads
        /// and writes only of whole sectors inside the disk, no write to a
        /// read-only disk, a flush without data, GET_ID into a writable
        /// buffer, UNSUPP for an unknown type, IOERR otherwise.
        #[unwind(17)]
        fn answers_follow_the_spec(src) {
            let kind: u32 = [T_IN, T_OUT, T_FLUSH, T_GET_ID, 11][src.below(5) as usize];
            let sector: u64 = if src.any() { src.below(4) } else { src.any() };
            let mut header = [0u8; 16];
            header[..4].copy_from_slice(&kind.to_le_bytes());
            header[8..].copy_from_slice(&sector.to_le_bytes());
            let mem = HeaderMemory(header);
            // Lengths from a small set (none, partial, one to three sectors,
            // an odd one): the sector arithmetic for every length is
            // `sector_bounds_never_overflow`'s.
            let data_len = [0, 100, SECTOR_SIZE, 2 * SECTOR_SIZE, 3 * SECTOR_SIZE, 0x3ff][src.below(6) as usize];
            let data_writable: bool = src.any();
            let chain = [
                Buffer { addr: BASE, len: HEADER_LEN as u32, writable: false },
                Buffer { addr: BASE + 0x100, len: data_len as u32, writable: data_writable },
                Buffer { addr: BASE + 0x800, len: 1, writable: true },
            ];
            let capacity: u64 = if src.any() { src.below(8) } else { src.any() };
            let read_only: bool = src.any();
            let result = parse_request::<3>(&chain, &mem, capacity, read_only);
            let fits = whole_sectors_inside(sector, data_len, capacity);
            let no_data = data_len == 0;
            let expected = match kind {
                T_IN if (data_writable || no_data) && fits => Some(BlkOp::Read { sector }),
                T_OUT if (!data_writable || no_data) && fits && !read_only => Some(BlkOp::Write { sector }),
                T_FLUSH if no_data => Some(BlkOp::Flush),
                T_GET_ID if data_writable && !no_data => Some(BlkOp::GetId),
                _ => None,
            };
            match (result, expected) {
                (Ok(Parsed::Request(r)), Some(op)) => {
                    assert!(r.op == op);
                    assert!(r.status_addr == BASE + 0x800);
                    let want = if op == BlkOp::GetId { data_len.min(ID_BYTES) } else { data_len };
                    assert!(r.data_len == want);
                    cover!(matches!(op, BlkOp::Write { .. }) && data_len > 0, "a write accepted");
                    cover!(matches!(op, BlkOp::Read { .. }) && data_len > 0, "a read accepted");
                }
                (Ok(Parsed::Refused { status, status_addr }), None) => {
                    assert!(status_addr == BASE + 0x800);
                    let known = matches!(kind, T_IN | T_OUT | T_FLUSH | T_GET_ID);
                    assert!(status == if known { S_IOERR } else { S_UNSUPP });
                    cover!(known && kind == T_OUT && read_only && fits, "a write to a read-only disk refused");
                    cover!(!known, "an unknown type");
                }
                _ => panic!("the parser's answer differs from the specification's"),
            }
        }
    }
}
