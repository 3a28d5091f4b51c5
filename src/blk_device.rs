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
use crate::virtio_mmio::{config_bytes, VirtioBackend};
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
/// Requests the device hands the disk before it waits for their answers.
pub const MAX_IN_FLIGHT: usize = 16;

/// The disk behind the device. Requests are started, then waited for
/// together, so the disk can work on several at once. A disk that
/// [`Disk::interrupts`] lets a notification return with requests in
/// flight; they are answered when its interrupt says they are done
/// ([`VirtioBackend::poll`]). Otherwise a notification returns only when
/// every request it started is answered.
pub trait Disk {
    /// Size in 512-byte sectors.
    fn capacity(&self) -> u64;
    /// Writes are refused (the configuration said so, or the disk is).
    fn read_only(&self) -> bool;
    /// Start `op` (never [`BlkOp::GetId`]) with its data in `pieces` of
    /// host memory; `tag` (below [`MAX_IN_FLIGHT`], not in flight) names it
    /// in [`Disk::finish`]. `false`: no room for it until the requests in
    /// flight are finished.
    fn start(&mut self, tag: usize, op: BlkOp, pieces: &[Piece]) -> bool;
    /// Wait for every started request and report each as `(tag, status)`
    /// in `done` ([`S_OK`], or [`S_IOERR`] when the disk failed it);
    /// returns how many.
    fn finish(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize;
    /// Whether the disk signals finished requests with an interrupt.
    fn interrupts(&self) -> bool {
        false
    }
    /// Have the disk work on the requests started (interrupting disks).
    fn kick(&mut self) {}
    /// Report the requests already finished, as [`Disk::finish`], without
    /// waiting (interrupting disks).
    fn reap(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize {
        let _ = done;
        0
    }
    /// As [`Disk::reap`], after giving requests just kicked a short while
    /// to finish (a fast answer then costs no interrupt).
    fn settle(&mut self, done: &mut [(usize, u8); MAX_IN_FLIGHT]) -> usize {
        self.reap(done)
    }
}

/// A request the disk is working on.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    head: u16,
    status_addr: u64,
    op: BlkOp,
    data_len: u64,
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
    in_flight: [Option<InFlight>; MAX_IN_FLIGHT],
    /// A request was answered in the used ring during this notification.
    answered: bool,
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
            in_flight: [None; MAX_IN_FLIGHT],
            answered: false,
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

    /// Serve one chain: answer it now (returns the bytes written into its
    /// writable buffers, status included), or start it on the disk
    /// (returns `None`; [`BlkDevice::finish`] answers it).
    fn serve(
        &mut self,
        head: u16,
        buffers: &[Buffer],
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<Option<u32>, QueueError> {
        let parsed = parse_request::<MAX_CHAIN_BUFFERS>(
            buffers,
            mem,
            self.disk.capacity(),
            self.disk.read_only(),
        )
        // No byte for the status: the device cannot answer, it needs a
        // reset (virtio 2.1.2).
        .map_err(|NoStatusByte| QueueError::Unanswerable)?;
        let request = match parsed {
            Parsed::Refused {
                status,
                status_addr,
            } => {
                self.counters.refused += 1;
                self.failed(Failure::Request(status));
                return Ok(Some(answer(mem, status_addr, status, 0)));
            }
            Parsed::Request(request) => request,
        };
        let op = request.op;
        if op == BlkOp::GetId {
            let written = self.get_id(request.data(), mem);
            return Ok(Some(answer(mem, request.status_addr, S_OK, written)));
        }
        let mut pieces = [Piece::default(); MAX_PIECES];
        let Some(count) = guest_pieces(request.data(), mem, &mut pieces) else {
            let status = self.refuse(Failure::Buffers);
            return Ok(Some(answer(mem, request.status_addr, status, 0)));
        };
        // A flush covers the writes the guest saw completed: the ones in
        // flight are finished first.
        if op == BlkOp::Flush {
            self.finish(queue, mem)?;
        }
        let tag = match self.in_flight.iter().position(Option::is_none) {
            Some(tag) => tag,
            None => {
                self.finish(queue, mem)?;
                0
            }
        };
        if !self.disk.start(tag, op, &pieces[..count]) {
            self.finish(queue, mem)?;
            if !self.disk.start(tag, op, &pieces[..count]) {
                self.counters.disk_errors += 1;
                self.failed(Failure::Disk);
                return Ok(Some(answer(mem, request.status_addr, S_IOERR, 0)));
            }
        }
        self.in_flight[tag] = Some(InFlight {
            head,
            status_addr: request.status_addr,
            op,
            data_len: request.data_len,
        });
        Ok(None)
    }

    /// Wait for the requests in flight and answer each in the used ring.
    fn finish(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        if self.in_flight.iter().all(Option::is_none) {
            return Ok(());
        }
        let mut done = [(0usize, 0u8); MAX_IN_FLIGHT];
        let count = self.disk.finish(&mut done).min(MAX_IN_FLIGHT);
        let mut result = self.answer_done(&done[..count], queue, mem);
        // A disk that answered fewer than it was given broke its contract:
        // what it did not answer is failed, not left in flight for ever.
        for tag in 0..MAX_IN_FLIGHT {
            if self.in_flight[tag].is_some() {
                let failed = self.answer_done(&[(tag, S_IOERR)], queue, mem);
                if result.is_ok() {
                    result = failed;
                }
            }
        }
        result
    }

    /// Answer the requests the disk has finished, without waiting.
    fn reap(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        let mut done = [(0usize, 0u8); MAX_IN_FLIGHT];
        let count = self.disk.reap(&mut done).min(MAX_IN_FLIGHT);
        self.answer_done(&done[..count], queue, mem)
    }

    /// Answer the requests the disk reported `done` in the used ring. Every
    /// one is taken off the table even when the ring fails; the first error
    /// is reported.
    fn answer_done(
        &mut self,
        done: &[(usize, u8)],
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        let mut result = Ok(());
        for &(tag, status) in done {
            let Some(request) = self.in_flight.get_mut(tag).and_then(Option::take) else {
                continue;
            };
            let (status, data_written) = self.account(request.op, request.data_len, status);
            let written = answer(mem, request.status_addr, status, data_written);
            self.answered = true;
            if result.is_ok() {
                result = queue.push_used(mem, request.head, written);
            }
        }
        result
    }

    fn get_id(&mut self, data: &[Buffer], mem: &mut dyn GuestMemory) -> u32 {
        let mut at = 0usize;
        for piece in data {
            let take = (piece.len as usize).min(self.id.len() - at);
            mem.write(piece.addr, &self.id[at..at + take]);
            at += take;
        }
        at as u32
    }

    /// Count a request the disk answered; returns its status and the data
    /// bytes it wrote into the guest's buffers.
    fn account(&mut self, op: BlkOp, data_len: u64, status: u8) -> (u8, u32) {
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

/// Write a request's status byte; returns the bytes written into its
/// writable buffers (`data_written` and the status). The status lies inside
/// the VM's RAM (the queue parser checked every buffer), so the write
/// succeeds.
fn answer(mem: &mut dyn GuestMemory, status_addr: u64, status: u8, data_written: u32) -> u32 {
    mem.write(status_addr, &[status]);
    data_written + 1
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
        self.answered = false;
        // Each pop takes a chain the guest made available; the queue parser
        // bounds the loop (it refuses an index that claims more than the
        // queue holds). Requests in flight are answered before any error
        // is reported, so none is left behind by a reset.
        let served = loop {
            let chain = match queue.pop(mem) {
                Ok(Some(chain)) => chain,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            match self.serve(chain.head, chain.buffers(), queue, mem) {
                Ok(Some(written)) => {
                    if let Err(e) = queue.push_used(mem, chain.head, written) {
                        break Err(e);
                    }
                    self.answered = true;
                }
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        let finished = if self.disk.interrupts() && served.is_ok() {
            // The disk interrupts when it is done: let the guest run
            // (after a short while for quick answers).
            self.disk.kick();
            let mut done = [(0usize, 0u8); MAX_IN_FLIGHT];
            let count = self.disk.settle(&mut done).min(MAX_IN_FLIGHT);
            self.answer_done(&done[..count], queue, mem)
        } else {
            self.finish(queue, mem)
        };
        served?;
        finished?;
        Ok(self.answered)
    }

    fn poll(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<bool, QueueError> {
        if index != 0 {
            return Ok(false);
        }
        self.answered = false;
        self.reap(queue, mem)?;
        Ok(self.answered)
    }

    /// Requests in flight belong to the queue being dropped: wait for the
    /// disk to be done with the guest's pages, answer nothing.
    fn reset(&mut self) {
        if self.in_flight.iter().any(Option::is_some) {
            let mut done = [(0usize, 0u8); MAX_IN_FLIGHT];
            self.disk.finish(&mut done);
            self.in_flight = [None; MAX_IN_FLIGHT];
        }
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
