//! The virtio-blk device a VM sees (virtio 1.2, section 5.2): the backend
//! behind its virtio-mmio transport. It takes each request the guest makes
//! available, checks it with [`parse_request`], and has the disk behind it
//! (in the glue: a physical virtio-blk device of the machine, whose storage
//! is a file on the host) carry it out with the guest's own pages: the data
//! is not copied, only its guest addresses are translated, page by page,
//! into host-physical pieces ([`guest_pieces`]).
//!
//! What the guest controls is never trusted: the request header is read once
//! and the disk gets the backend's own copy of it (a guest that rewrites
//! its header after the check changes nothing), each data piece is
//! translated inside the VM's RAM or the request fails with IOERR, and the
//! status goes where the parser found it. A request is answered only after
//! the disk answered it, so a write the guest sees completed is on the
//! disk, and a flush it sees completed made earlier writes durable.

use crate::virtio_blk::{parse_request, BlkOp, NoStatusByte, Parsed, ID_BYTES, S_IOERR, S_OK};
use crate::virtio_mmio::VirtioBackend;
use crate::virtq_driver::Piece;
use crate::virtqueue::{Buffer, GuestMemory, QueueError, SplitQueue, MAX_CHAIN_BUFFERS};

/// Virtio device ID of a block device.
pub const DEVICE_ID: u32 = 2;
/// Feature bits (virtio 5.2.3).
pub const F_SIZE_MAX: u64 = 1 << 1;
pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_RO: u64 = 1 << 5;
pub const F_FLUSH: u64 = 1 << 9;

/// Guest pages are translated at this granule.
pub const PAGE_SIZE: u64 = 4096;
/// Data segments a guest request may have (advertised as `seg_max`); each
/// at most [`PAGE_SIZE`] bytes (`size_max`), so it meets at most two pages.
pub const SEG_MAX: u32 = (MAX_CHAIN_BUFFERS - 2) as u32;
/// Host pieces one request's data can need at most.
pub const MAX_PIECES: usize = 2 * SEG_MAX as usize;

/// The disk behind the device.
pub trait Disk {
    /// Size in 512-byte sectors.
    fn capacity(&self) -> u64;
    /// Writes are refused (the configuration said so, or the disk is).
    fn read_only(&self) -> bool;
    /// Carry out `op` (never [`BlkOp::GetId`]) with its data in `pieces` of
    /// host memory, and wait for the disk's answer: [`S_OK`], or
    /// [`S_IOERR`] when the disk failed it.
    fn transfer(&mut self, op: BlkOp, pieces: &[Piece]) -> u8;
}

/// What happened to requests, for the hypervisor's statistics and its
/// (rate-limited) log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkCounters {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Requests answered IOERR or UNSUPP without reaching the disk.
    pub refused: u64,
    /// Requests the disk failed.
    pub disk_errors: u64,
    /// Guest accesses to the device's registers (each one a VM exit) and
    /// interrupts raised (each one an exit to inject): counted by the glue.
    pub accesses: u64,
    pub interrupts: u64,
}

/// Why a request failed (for a log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Bad request: past the end, partial sectors, write to a read-only
    /// disk, short header (IOERR), unknown type (UNSUPP): the parser's answer.
    Request(u8),
    /// Data outside the VM's RAM, or more pieces than the disk takes.
    Buffers,
    /// The disk failed it.
    Disk,
}

/// Translate guest data buffers into host pieces, page by page, merging
/// pieces that turn out adjacent in host memory. `None` when a page is not
/// the VM's RAM or more than `out.len()` pieces would be needed.
pub fn guest_pieces(
    data: &[Buffer],
    mem: &mut (impl GuestMemory + ?Sized),
    out: &mut [Piece],
) -> Option<usize> {
    let mut count = 0usize;
    for buffer in data {
        let mut addr = buffer.addr;
        let mut left = u64::from(buffer.len);
        while left > 0 {
            let in_page = (PAGE_SIZE - addr % PAGE_SIZE).min(left);
            let host = mem.dma_address(addr)?;
            let merged = count > 0 && {
                let last = &mut out[count - 1];
                let adjacent = last.device_writes == buffer.writable
                    && last.addr.checked_add(u64::from(last.len)) == Some(host)
                    && u64::from(last.len) + in_page <= u64::from(u32::MAX);
                if adjacent {
                    last.len += in_page as u32;
                }
                adjacent
            };
            if !merged {
                *out.get_mut(count)? = Piece {
                    addr: host,
                    len: in_page as u32,
                    device_writes: buffer.writable,
                };
                count += 1;
            }
            addr = addr.checked_add(in_page)?;
            left -= in_page;
        }
    }
    Some(count)
}

/// The device backend: a disk, the ID the guest reads, and counters.
pub struct BlkDevice<D: Disk> {
    pub disk: D,
    id: [u8; ID_BYTES as usize],
    pub counters: BlkCounters,
    /// The last failure not yet reported (the glue logs it, rate-limited).
    pub last_failure: Option<Failure>,
    /// Failed requests since the glue last took the report.
    pub unreported_failures: u32,
}

impl<D: Disk> BlkDevice<D> {
    /// A device over `disk` whose GET_ID answer is `id` (cut to 20 bytes).
    pub fn new(disk: D, id: &str) -> Self {
        let mut bytes = [0u8; ID_BYTES as usize];
        let take = id.len().min(bytes.len());
        bytes[..take].copy_from_slice(&id.as_bytes()[..take]);
        BlkDevice {
            disk,
            id: bytes,
            counters: BlkCounters::default(),
            last_failure: None,
            unreported_failures: 0,
        }
    }

    /// The last failure and how many requests failed since the last call.
    pub fn take_failures(&mut self) -> Option<(Failure, u32)> {
        let count = core::mem::take(&mut self.unreported_failures);
        self.last_failure.take().map(|f| (f, count))
    }

    fn failed(&mut self, why: Failure) {
        self.last_failure = Some(why);
        self.unreported_failures = self.unreported_failures.saturating_add(1);
    }

    fn refuse(&mut self, why: Failure) -> u8 {
        self.counters.refused += 1;
        self.failed(why);
        S_IOERR
    }

    /// Serve one chain; returns the bytes written into its writable
    /// buffers (status included).
    fn serve(
        &mut self,
        buffers: &[Buffer],
        mem: &mut dyn GuestMemory,
    ) -> Result<u32, NoStatusByte> {
        let parsed = parse_request::<MAX_CHAIN_BUFFERS>(
            buffers,
            mem,
            self.disk.capacity(),
            self.disk.read_only(),
        )?;
        let (status, status_addr, data_written) = match parsed {
            Parsed::Refused {
                status,
                status_addr,
            } => {
                self.counters.refused += 1;
                self.failed(Failure::Request(status));
                (status, status_addr, 0)
            }
            Parsed::Request(request) => {
                let (status, written) = match request.op {
                    BlkOp::GetId => self.get_id(request.data(), mem),
                    op => self.transfer(op, request.data(), request.data_len, mem),
                };
                (status, request.status_addr, written)
            }
        };
        // The status lies inside the VM's RAM (the queue parser checked
        // every buffer), so this write succeeds.
        mem.write(status_addr, &[status]);
        Ok(data_written + 1)
    }

    fn get_id(&mut self, data: &[Buffer], mem: &mut dyn GuestMemory) -> (u8, u32) {
        let mut at = 0usize;
        for piece in data {
            let take = (piece.len as usize).min(self.id.len() - at);
            mem.write(piece.addr, &self.id[at..at + take]);
            at += take;
        }
        (S_OK, at as u32)
    }

    fn transfer(
        &mut self,
        op: BlkOp,
        data: &[Buffer],
        data_len: u64,
        mem: &mut dyn GuestMemory,
    ) -> (u8, u32) {
        let mut pieces = [Piece::default(); MAX_PIECES];
        let Some(count) = guest_pieces(data, mem, &mut pieces) else {
            return (self.refuse(Failure::Buffers), 0);
        };
        let status = self.disk.transfer(op, &pieces[..count]);
        if status != S_OK {
            self.counters.disk_errors += 1;
            self.failed(Failure::Disk);
            return (S_IOERR, 0);
        }
        match op {
            BlkOp::Read { .. } => {
                self.counters.reads += 1;
                self.counters.bytes_read += data_len;
                // A read fills its data: at most a chain's bytes, so it fits.
                (S_OK, data_len.min(u64::from(u32::MAX - 1)) as u32)
            }
            BlkOp::Write { .. } => {
                self.counters.writes += 1;
                self.counters.bytes_written += data_len;
                (S_OK, 0)
            }
            BlkOp::Flush | BlkOp::GetId => {
                self.counters.flushes += 1;
                (S_OK, 0)
            }
        }
    }
}

/// Reads of `size` bytes at `offset` of a little-endian field layout.
fn config_bytes(fields: &[u8], offset: u64, size: u8) -> u64 {
    let mut value = 0u64;
    for k in (0..u64::from(size)).rev() {
        let byte = offset
            .checked_add(k)
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| fields.get(at))
            .copied()
            .unwrap_or(0);
        value = value << 8 | u64::from(byte);
    }
    value
}

impl<D: Disk> VirtioBackend for BlkDevice<D> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        let ro = if self.disk.read_only() { F_RO } else { 0 };
        F_SIZE_MAX | F_SEG_MAX | F_FLUSH | ro
    }

    fn notify(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<bool, QueueError> {
        if index != 0 {
            return Ok(false);
        }
        let mut used = false;
        // Each pop takes a chain the guest made available; the queue parser
        // bounds the loop (it refuses an index that claims more than the
        // queue holds).
        while let Some(chain) = queue.pop(mem)? {
            // No byte for the status: the device cannot answer, it needs a
            // reset (virtio 2.1.2).
            let written = self
                .serve(chain.buffers(), mem)
                .map_err(|NoStatusByte| QueueError::Unanswerable)?;
            queue.push_used(mem, chain.head, written)?;
            used = true;
        }
        Ok(used)
    }

    /// `struct virtio_blk_config`: capacity, size_max, seg_max.
    fn config_read(&self, offset: u64, size: u8) -> u64 {
        let mut fields = [0u8; 16];
        fields[..8].copy_from_slice(&self.disk.capacity().to_le_bytes());
        fields[8..12].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
        fields[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        config_bytes(&fields, offset, size)
    }
}

#[cfg(test)]
mod tests;

#[cfg(any(test, kani))]
mod proofs;
