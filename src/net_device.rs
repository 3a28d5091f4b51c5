//! The virtio-net device a VM sees (virtio 1.2, section 5.1): queue 0
//! receives, queue 1 transmits, each frame preceded by a 12-byte
//! `virtio_net_hdr` (VIRTIO_F_VERSION_1 layout). No offloads are offered,
//! so the header carries nothing the device must act on.
//!
//! Transmit: each chain the guest makes available is read once (header and
//! frame, in any framing) into a frame the device owns: the frame goes to
//! other VMs, so it is copied out of the sender's memory before anyone
//! sees it, and a sender rewriting its buffer afterwards changes nothing.
//! A chain whose frame is not a frame's length is returned and counted, not
//! forwarded. Receive: a frame for this VM is written into the next chain
//! the guest made available, or dropped and counted when there is none or
//! it is too small.

use crate::net_switch::{Mac, ETH_HEADER, MAX_FRAME};
use crate::virtio_mmio::{config_bytes, VirtioBackend};
use crate::virtqueue::{GuestMemory, QueueError, SplitQueue};

/// Virtio device ID of a network card.
pub const DEVICE_ID: u32 = 1;
/// The device has a MAC address in its configuration space.
pub const F_MAC: u64 = 1 << 5;
/// Bytes of `struct virtio_net_hdr` with VIRTIO_F_VERSION_1.
pub const NET_HDR_LEN: usize = 12;
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
/// Frames one transmit notification hands to the switch at most before
/// the glue forwards them (the rest wait for the next round).
pub const TX_BURST: usize = 16;

/// A frame on its way through the switch.
#[derive(Clone)]
pub struct Frame {
    pub bytes: [u8; MAX_FRAME],
    pub len: usize,
}

impl Frame {
    pub fn header(&self) -> [u8; ETH_HEADER] {
        let mut h = [0u8; ETH_HEADER];
        h.copy_from_slice(&self.bytes[..ETH_HEADER]);
        h
    }
    pub fn data(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the device did, for the hypervisor console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub tx_frames: u64,
    pub tx_bad: u64,
    pub rx_frames: u64,
    /// Frames for this VM dropped: no receive buffer, or one too small.
    pub rx_dropped: u64,
}

/// The device backend: its address and the frames it took from the guest
/// that the switch has not seen yet.
pub struct NetDevice {
    mac: Mac,
    outbox: alloc::vec::Vec<Frame>,
    /// The guest made more frames available than one burst takes.
    pub tx_pending: bool,
    pub counters: NetCounters,
}

impl NetDevice {
    pub fn new(mac: Mac) -> Self {
        NetDevice {
            mac,
            outbox: alloc::vec::Vec::new(),
            tx_pending: false,
            counters: NetCounters::default(),
        }
    }

    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The frames taken from the guest since the last call.
    pub fn take_outbox(&mut self) -> alloc::vec::Vec<Frame> {
        // An empty vector does not allocate: accesses that send nothing
        // cost nothing here.
        core::mem::take(&mut self.outbox)
    }

    /// Read the frames the guest made available on the transmit queue, up
    /// to one burst. Returns whether the used ring changed.
    fn transmit(
        &mut self,
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        self.tx_pending = false;
        while self.outbox.len() < TX_BURST {
            let Some(chain) = queue.pop(mem)? else {
                return Ok(used);
            };
            let mut frame = Frame {
                bytes: [0; MAX_FRAME],
                len: 0,
            };
            // Skip the header, gather the frame; anything writable or too
            // long makes it a bad frame.
            let mut skip = NET_HDR_LEN;
            let mut bad = false;
            for b in chain.buffers() {
                if b.writable {
                    bad = true;
                    break;
                }
                let len = b.len as usize;
                let header_part = skip.min(len);
                skip -= header_part;
                let body = len - header_part;
                if frame.len + body > MAX_FRAME {
                    bad = true;
                    break;
                }
                let at = b.addr + header_part as u64;
                if !mem.read(at, &mut frame.bytes[frame.len..frame.len + body]) {
                    bad = true;
                    break;
                }
                frame.len += body;
            }
            if bad || skip > 0 || frame.len < ETH_HEADER {
                self.counters.tx_bad += 1;
            } else {
                self.counters.tx_frames += 1;
                self.outbox.push(frame);
            }
            queue.push_used(mem, chain.head, 0)?;
            used = true;
        }
        self.tx_pending = true;
        Ok(used)
    }

    /// Give `frame` to the guest through its receive queue. Returns whether
    /// the used ring changed (false: dropped and counted).
    pub fn receive(
        &mut self,
        frame: &[u8],
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<bool, QueueError> {
        let Some(chain) = queue.pop(mem)? else {
            self.counters.rx_dropped += 1;
            return Ok(false);
        };
        let mut header = [0u8; NET_HDR_LEN];
        // num_buffers = 1 (VERSION_1 layout).
        header[10] = 1;
        let room: u64 = chain
            .buffers()
            .iter()
            .filter(|b| b.writable)
            .map(|b| u64::from(b.len))
            .sum();
        let total = NET_HDR_LEN + frame.len();
        if chain.buffers().iter().any(|b| !b.writable) || room < total as u64 {
            self.counters.rx_dropped += 1;
            queue.push_used(mem, chain.head, 0)?;
            return Ok(true);
        }
        // Header then frame, across the buffers in order.
        let mut at = 0usize;
        for b in chain.buffers() {
            if at == total {
                break;
            }
            let take = (b.len as usize).min(total - at);
            let mut written = 0;
            while written < take {
                let source_at = at + written;
                let (chunk, len) = if source_at < NET_HDR_LEN {
                    let len = (NET_HDR_LEN - source_at).min(take - written);
                    (&header[source_at..source_at + len], len)
                } else {
                    let from = source_at - NET_HDR_LEN;
                    let len = take - written;
                    (&frame[from..from + len], len)
                };
                mem.write(b.addr + written as u64, chunk);
                written += len;
            }
            at += take;
        }
        self.counters.rx_frames += 1;
        queue.push_used(mem, chain.head, total as u32)?;
        Ok(true)
    }
}

impl VirtioBackend for NetDevice {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        F_MAC
    }

    fn notify(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        mem: &mut dyn GuestMemory,
    ) -> Result<bool, QueueError> {
        match index {
            TX_QUEUE => self.transmit(queue, mem),
            // New receive buffers: frames are dropped when there are none,
            // never queued, so there is nothing to do.
            _ => Ok(false),
        }
    }

    /// `struct virtio_net_config`: the MAC address.
    fn config_read(&self, offset: u64, size: u8) -> u64 {
        config_bytes(&self.mac, offset, size)
    }
}

#[cfg(test)]
mod tests;

#[cfg(any(test, kani))]
mod proofs {
    use super::*;
    use crate::virtqueue::{Buffer, QueueConfig};

    /// Guest memory whose byte at `addr` is `addr as u8` (no storage: the
    /// prover need not model an array), with the rings of a 4-entry queue
    /// that offers one chain of the drawn buffers.
    struct PatternMemory {
        chain: [Buffer; 3],
        count: usize,
    }

    const RAM: u64 = 0x1_0000;
    const DESC: u64 = 0x100;
    const AVAIL: u64 = 0x200;
    const USED: u64 = 0x300;

    impl GuestMemory for PatternMemory {
        fn contains(&self, addr: u64, len: u64) -> bool {
            addr.checked_add(len).is_some_and(|end| end <= RAM)
        }
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            if !self.contains(addr, buf.len() as u64) {
                return false;
            }
            // The rings: descriptors 0..count chained, avail idx 1 head 0.
            if (DESC..DESC + 48).contains(&addr) && buf.len() == 16 {
                let i = ((addr - DESC) / 16) as usize;
                let b = self.chain[i.min(2)];
                let mut flags = if b.writable { 2u16 } else { 0 };
                if i + 1 < self.count {
                    flags |= 1;
                }
                buf[..8].copy_from_slice(&b.addr.to_le_bytes());
                buf[8..12].copy_from_slice(&b.len.to_le_bytes());
                buf[12..14].copy_from_slice(&flags.to_le_bytes());
                buf[14..].copy_from_slice(&((i + 1) as u16).to_le_bytes());
                return true;
            }
            if addr == AVAIL + 2 && buf.len() == 2 {
                buf.copy_from_slice(&1u16.to_le_bytes());
                return true;
            }
            if addr == AVAIL + 4 && buf.len() == 2 {
                buf.copy_from_slice(&0u16.to_le_bytes());
                return true;
            }
            for (i, byte) in buf.iter_mut().enumerate() {
                *byte = (addr + i as u64) as u8;
            }
            true
        }
        fn write(&mut self, addr: u64, data: &[u8]) -> bool {
            self.contains(addr, data.len() as u64)
        }
    }

    proof! {
        /// Whatever the framing of a transmitted chain (up to three
        /// buffers, any lengths, any direction): the frame taken is the
        /// chain's bytes after the 12-byte header, in order, and it is taken
        /// exactly when it is a frame's length and every buffer is
        /// device-readable.
        #[unwind(70)]
        fn transmitted_frames_are_the_bytes_after_the_header(src) {
            let count = 1 + src.below(3) as usize;
            let mut chain = [Buffer { addr: 0, len: 0, writable: false }; 3];
            for b in chain.iter_mut().take(count) {
                *b = Buffer { addr: 0x1000 + src.below(0x1000), len: src.below(40) as u32, writable: src.below(8) == 0 };
            }
            let mut mem = PatternMemory { chain, count };
            let mut queue = SplitQueue::new(
                QueueConfig { size: 4, desc_table: DESC, avail_ring: AVAIL, used_ring: USED },
                &mem,
            )
            .unwrap();
            let mut nic = NetDevice::new([2, 0, 0, 0, 0, 1]);
            let result = nic.notify(TX_QUEUE, &mut queue, &mut mem);
            // A readable buffer after a writable one is a malformed chain
            // (the queue parser's error: the device needs a reset).
            let misordered = (1..count).any(|i| chain[i - 1].writable && !chain[i].writable);
            if misordered {
                assert!(result == Err(QueueError::ReadableAfterWritable));
                cover!(true, "a misordered chain refused");
                return;
            }
            assert!(result == Ok(true));
            let total: u64 = chain[..count].iter().map(|b| u64::from(b.len)).sum();
            let any_writable = chain[..count].iter().any(|b| b.writable);
            let out = nic.take_outbox();
            let good = !any_writable && total >= (NET_HDR_LEN + ETH_HEADER) as u64;
            assert!(out.len() == usize::from(good));
            if let Some(frame) = out.first() {
                assert!(frame.len as u64 == total - NET_HDR_LEN as u64);
                // Byte k of the frame is byte 12 + k of the chain.
                let k = src.below(frame.len as u64);
                let mut at = NET_HDR_LEN as u64 + k;
                let mut addr = 0;
                for b in &chain[..count] {
                    if at < u64::from(b.len) {
                        addr = b.addr + at;
                        break;
                    }
                    at -= u64::from(b.len);
                }
                assert!(frame.bytes[k as usize] == addr as u8);
                cover!(count == 3 && chain[0].len < 12, "header split across buffers");
            } else {
                cover!(any_writable, "a writable buffer refused");
                cover!(!any_writable, "a runt refused");
            }
        }
    }
}
