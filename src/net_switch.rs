//! The virtual switch inside the hypervisor (issue 11): an Ethernet
//! learning switch per network, whose ports are the VMs' virtual NICs.
//!
//! Every frame a VM sends comes here first, and the switch decides who gets
//! it, as a cloud virtual switch would:
//! - only ports of the sender's own network, never the sender itself;
//! - a frame whose source MAC is not the sending port's own (spoofing), or
//!   a group address, is dropped and counted;
//! - a frame shorter than an Ethernet header or longer than the largest
//!   frame is dropped and counted;
//! - unicast to a learned address goes to that port only; broadcast,
//!   multicast and unknown unicast go to the other ports of the network
//!   (flooding), within a per-port budget, so that a VM flooding
//!   broadcasts cannot starve the others;
//! - learned addresses age out.
//!
//! The decision only: the glue copies the frame into the receiving VMs.

/// An Ethernet address.
pub type Mac = [u8; 6];

/// Ports (virtual NICs) a switch has at most.
pub const MAX_PORTS: usize = 8;
/// Learned addresses a switch remembers at most (the oldest goes first).
pub const TABLE_SIZE: usize = 64;
/// Bytes of an Ethernet header: destination, source, type.
pub const ETH_HEADER: usize = 14;
/// Largest frame without its FCS: 1500 bytes of payload, a header and an
/// 802.1Q tag.
pub const MAX_FRAME: usize = 1518;

/// A set of ports, bit n for port n.
pub type PortSet = u16;
const _: () = assert!(MAX_PORTS <= 16);

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Shorter than an Ethernet header, or longer than [`MAX_FRAME`].
    BadLength,
    /// Its source is not the sending port's address.
    Spoofed,
    /// The port does not exist.
    NoPort,
    /// The sender used up its flooding budget.
    OverBudget,
}

/// What happens to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Copy it to these ports (possibly none: the destination is the
    /// sender's own side).
    Deliver(PortSet),
    Drop(Drop),
}

/// A port's counters, shown by the hypervisor console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub sent: u64,
    pub flooded: u64,
    pub received: u64,
    pub dropped_length: u64,
    pub dropped_spoofed: u64,
    pub dropped_budget: u64,
}

#[derive(Debug, Clone, Copy)]
struct Port {
    network: u8,
    mac: Mac,
    /// Flooded frames the port may still send in the current period.
    flood_tokens: u32,
    counters: PortCounters,
}

#[derive(Debug, Clone, Copy, Default)]
struct Learned {
    mac: Mac,
    port: u8,
    seen: u64,
    valid: bool,
}

/// The switch: its ports and what it learned.
#[derive(Debug, Clone)]
pub struct Switch<const P: usize = MAX_PORTS, const T: usize = TABLE_SIZE> {
    ports: [Option<Port>; P],
    table: [Learned; T],
    /// How long a learned address stays, and the flooding budget per port
    /// and period, in the caller's clock ticks.
    age_ticks: u64,
    flood_per_period: u32,
    period_ticks: u64,
    period_start: u64,
}

/// Whether `mac` is a group (broadcast or multicast) address.
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

impl<const P: usize, const T: usize> Switch<P, T> {
    /// A switch whose learned addresses last `age_ticks` and whose ports
    /// may flood `flood_per_period` frames per `period_ticks`.
    pub fn new(age_ticks: u64, flood_per_period: u32, period_ticks: u64) -> Self {
        Switch {
            ports: [None; P],
            table: [Learned::default(); T],
            age_ticks,
            flood_per_period,
            period_ticks,
            period_start: 0,
        }
    }

    /// Connect port `port` to network `network` with address `mac`.
    pub fn add_port(&mut self, port: usize, network: u8, mac: Mac) -> bool {
        let Some(slot) = self.ports.get_mut(port) else {
            return false;
        };
        *slot = Some(Port {
            network,
            mac,
            flood_tokens: self.flood_per_period,
            counters: PortCounters::default(),
        });
        true
    }

    pub fn counters(&self, port: usize) -> Option<PortCounters> {
        self.ports.get(port)?.map(|p| p.counters)
    }

    /// The ports of `network` other than `except`.
    fn network_ports(&self, network: u8, except: usize) -> PortSet {
        let mut set = 0;
        for (i, port) in self.ports.iter().enumerate() {
            if i != except && port.is_some_and(|p| p.network == network) {
                set |= 1 << i;
            }
        }
        set
    }

    /// Decide what happens to a frame of `len` bytes that port `from` sent,
    /// whose first bytes are `header`, at time `now`.
    pub fn forward(
        &mut self,
        from: usize,
        header: &[u8; ETH_HEADER],
        len: usize,
        now: u64,
    ) -> Verdict {
        if now.wrapping_sub(self.period_start) >= self.period_ticks {
            self.period_start = now;
            for port in self.ports.iter_mut().flatten() {
                port.flood_tokens = self.flood_per_period;
            }
        }
        let Some(Some(port)) = self.ports.get(from).copied() else {
            return Verdict::Drop(Drop::NoPort);
        };
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&header[..6]);
        let mut src = [0u8; 6];
        src.copy_from_slice(&header[6..12]);
        let verdict = if !(ETH_HEADER..=MAX_FRAME).contains(&len) {
            Verdict::Drop(Drop::BadLength)
        } else if src != port.mac || is_group(&src) {
            Verdict::Drop(Drop::Spoofed)
        } else {
            self.learn(src, from, now);
            // Addresses learned on another network are unknown here.
            let known = self.lookup(&dst, now).filter(|&to| {
                !is_group(&dst) && self.ports[to].is_some_and(|p| p.network == port.network)
            });
            match known {
                // Back to the sender's own side: filtered.
                Some(to) => Verdict::Deliver(if to != from { 1 << to } else { 0 }),
                None => self.flood(from, port.network),
            }
        };
        if let Some(Some(port)) = self.ports.get_mut(from) {
            let c = &mut port.counters;
            match verdict {
                Verdict::Deliver(_) => c.sent += 1,
                Verdict::Drop(Drop::BadLength) => c.dropped_length += 1,
                Verdict::Drop(Drop::Spoofed) => c.dropped_spoofed += 1,
                Verdict::Drop(Drop::OverBudget) => c.dropped_budget += 1,
                Verdict::Drop(Drop::NoPort) => {}
            }
        }
        if let Verdict::Deliver(set) = verdict {
            for (i, port) in self.ports.iter_mut().enumerate() {
                if set & (1 << i) != 0 {
                    if let Some(p) = port {
                        p.counters.received += 1;
                    }
                }
            }
        }
        verdict
    }

    fn flood(&mut self, from: usize, network: u8) -> Verdict {
        let set = self.network_ports(network, from);
        let Some(Some(port)) = self.ports.get_mut(from) else {
            return Verdict::Drop(Drop::NoPort);
        };
        if port.flood_tokens == 0 {
            return Verdict::Drop(Drop::OverBudget);
        }
        port.flood_tokens -= 1;
        port.counters.flooded += 1;
        Verdict::Deliver(set)
    }

    /// Remember that `mac` is behind `port`: in its own entry, else a free
    /// one, else the one seen longest ago.
    fn learn(&mut self, mac: Mac, port: usize, now: u64) {
        let slot = self
            .table
            .iter()
            .position(|e| e.valid && e.mac == mac)
            .or_else(|| self.table.iter().position(|e| !e.valid))
            .or_else(|| (0..T).max_by_key(|&i| now.wrapping_sub(self.table[i].seen)));
        if let Some(entry) = slot.and_then(|i| self.table.get_mut(i)) {
            *entry = Learned {
                mac,
                port: port as u8,
                seen: now,
                valid: true,
            };
        }
    }

    fn lookup(&self, mac: &Mac, now: u64) -> Option<usize> {
        self.table
            .iter()
            .find(|e| e.valid && e.mac == *mac && now.wrapping_sub(e.seen) <= self.age_ticks)
            .map(|e| usize::from(e.port))
            .filter(|&p| p < P)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [0x52, 0x54, 0, 0, 0, 1];
    const B: Mac = [0x52, 0x54, 0, 0, 0, 2];
    const C: Mac = [0x52, 0x54, 0, 0, 0, 3];
    const BROADCAST: Mac = [0xff; 6];

    fn header(dst: Mac, src: Mac) -> [u8; ETH_HEADER] {
        let mut h = [0u8; ETH_HEADER];
        h[..6].copy_from_slice(&dst);
        h[6..12].copy_from_slice(&src);
        h[12..].copy_from_slice(&0x0800u16.to_be_bytes());
        h
    }

    /// Ports 0 and 1 on network 0, port 2 on network 1 (another switch).
    fn switch() -> Switch {
        let mut s = Switch::new(1000, 3, 100);
        assert!(s.add_port(0, 0, A));
        assert!(s.add_port(1, 0, B));
        assert!(s.add_port(2, 1, C));
        s
    }

    #[test]
    fn unknown_unicast_floods_then_the_answer_goes_straight_back() {
        let mut s = switch();
        // A to B before anything is learned: flooded to the network's
        // other port only (not to port 2, another network).
        assert_eq!(s.forward(0, &header(B, A), 60, 1), Verdict::Deliver(0b010));
        // B answers A: A was learned on port 0.
        assert_eq!(s.forward(1, &header(A, B), 60, 2), Verdict::Deliver(0b001));
        // And now A to B is unicast too.
        assert_eq!(s.forward(0, &header(B, A), 60, 3), Verdict::Deliver(0b010));
        assert_eq!(s.counters(0).unwrap().sent, 2);
        assert_eq!(s.counters(0).unwrap().flooded, 1);
        assert_eq!(s.counters(1).unwrap().received, 2);
    }

    #[test]
    fn networks_are_isolated() {
        let mut s = switch();
        // C (network 1) broadcasts: nobody else is on its network.
        assert_eq!(
            s.forward(2, &header(BROADCAST, C), 60, 1),
            Verdict::Deliver(0)
        );
        // A learned on network 0 is not reachable from C even by address.
        s.forward(0, &header(BROADCAST, A), 60, 2);
        assert_eq!(s.forward(2, &header(A, C), 60, 3), Verdict::Deliver(0));
        assert_eq!(s.counters(0).unwrap().received, 0);
    }

    #[test]
    fn spoofed_and_malformed_frames_are_dropped_and_counted() {
        let mut s = switch();
        assert_eq!(
            s.forward(0, &header(B, C), 60, 1),
            Verdict::Drop(Drop::Spoofed)
        );
        assert_eq!(
            s.forward(0, &header(B, BROADCAST), 60, 1),
            Verdict::Drop(Drop::Spoofed)
        );
        assert_eq!(
            s.forward(0, &header(B, A), 13, 1),
            Verdict::Drop(Drop::BadLength)
        );
        assert_eq!(
            s.forward(0, &header(B, A), MAX_FRAME + 1, 1),
            Verdict::Drop(Drop::BadLength)
        );
        assert_eq!(
            s.forward(7, &header(B, A), 60, 1),
            Verdict::Drop(Drop::NoPort)
        );
        assert_eq!(
            s.forward(99, &header(B, A), 60, 1),
            Verdict::Drop(Drop::NoPort)
        );
        let c = s.counters(0).unwrap();
        assert_eq!((c.dropped_spoofed, c.dropped_length, c.sent), (2, 2, 0));
        // A spoofed frame taught the switch nothing: B to C still floods.
        assert_eq!(s.forward(1, &header(C, B), 60, 2), Verdict::Deliver(0b001));
    }

    #[test]
    fn a_broadcast_flood_is_limited_per_port_and_period() {
        let mut s = switch();
        for now in 1..=3 {
            assert_eq!(
                s.forward(0, &header(BROADCAST, A), 60, now),
                Verdict::Deliver(0b010)
            );
        }
        assert_eq!(
            s.forward(0, &header(BROADCAST, A), 60, 4),
            Verdict::Drop(Drop::OverBudget)
        );
        // The other port's budget is its own.
        assert_eq!(
            s.forward(1, &header(BROADCAST, B), 60, 5),
            Verdict::Deliver(0b001)
        );
        // Learned unicast is not flooding: not limited.
        assert_eq!(s.forward(0, &header(B, A), 60, 6), Verdict::Deliver(0b010));
        // A new period refills it.
        assert_eq!(
            s.forward(0, &header(BROADCAST, A), 60, 200),
            Verdict::Deliver(0b010)
        );
        assert_eq!(s.counters(0).unwrap().dropped_budget, 1);
    }

    #[test]
    fn learned_addresses_age_out_and_the_table_keeps_the_newest() {
        let mut s = Switch::<4, 2>::new(10, 100, 1000);
        s.add_port(0, 0, A);
        s.add_port(1, 0, B);
        s.add_port(2, 0, C);
        s.forward(1, &header(BROADCAST, B), 60, 1);
        assert_eq!(s.forward(0, &header(B, A), 60, 5), Verdict::Deliver(0b0010));
        // Too old: flooded again.
        assert_eq!(
            s.forward(0, &header(B, A), 60, 100),
            Verdict::Deliver(0b0110)
        );
        // A full table forgets the oldest entry.
        s.forward(1, &header(BROADCAST, B), 60, 200);
        s.forward(2, &header(BROADCAST, C), 60, 201);
        s.forward(0, &header(BROADCAST, A), 60, 202);
        assert_eq!(
            s.forward(2, &header(A, C), 60, 203),
            Verdict::Deliver(0b0001)
        );
        assert_eq!(
            s.forward(2, &header(B, C), 60, 204),
            Verdict::Deliver(0b0011)
        );
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// Whatever the switch learned and whatever a VM sends: a frame is
        /// delivered only to ports of the sender's own network, never back
        /// to the sender, and never when its source is not the sender's
        /// address or its length is not a frame's.
        // 7: comparing 6-byte addresses is a memcmp loop.
        #[unwind(7)]
        fn frames_reach_only_their_own_network_and_never_spoofed(src) {
            const PORTS: usize = 3;
            let mut s = Switch::<PORTS, 2>::new(src.below(100), src.below(3) as u32, 1 + src.below(100));
            let mut macs = [[0u8; 6]; PORTS];
            let mut networks = [0u8; PORTS];
            for (i, mac) in macs.iter_mut().enumerate() {
                mac[5] = i as u8;
                mac[0] = (src.below(2) as u8) << 1;
                networks[i] = src.below(2) as u8;
                if src.any() {
                    s.add_port(i, networks[i], *mac);
                }
            }
            // Whatever was learned before (any entries, any times).
            for entry in s.table.iter_mut() {
                *entry = Learned {
                    mac: macs[src.below(PORTS as u64) as usize],
                    port: src.below(PORTS as u64 + 1) as u8,
                    seen: src.below(200),
                    valid: src.any(),
                };
            }
            let from = src.below(PORTS as u64 + 1) as usize;
            let mut header = [0u8; ETH_HEADER];
            // Destinations: a port's address, broadcast, or anything.
            let dst = match src.below(3) {
                0 => macs[src.below(PORTS as u64) as usize],
                1 => [0xff; 6],
                _ => [src.any(), 0, 0, 0, 0, src.any()],
            };
            let source = if src.any() { macs[src.below(PORTS as u64) as usize] } else { [1, 0, 0, 0, 0, src.any()] };
            header[..6].copy_from_slice(&dst);
            header[6..12].copy_from_slice(&source);
            let len = src.below(MAX_FRAME as u64 + 2) as usize;
            let now = src.below(300);
            let registered = from < PORTS && s.ports[from].is_some();
            match s.forward(from, &header, len, now) {
                Verdict::Deliver(set) => {
                    assert!(registered);
                    assert!(source == macs[from]);
                    assert!((ETH_HEADER..=MAX_FRAME).contains(&len));
                    assert!(set & (1 << from) == 0);
                    for to in 0..PORTS {
                        if set & (1 << to) != 0 {
                            assert!(s.ports[to].is_some_and(|p| p.network == networks[from]));
                        }
                    }
                    assert!(set >> PORTS == 0);
                    cover!(set.count_ones() == 1 && !is_group(&dst), "unicast to one port");
                    cover!(set.count_ones() == 2, "flooded to two ports");
                }
                Verdict::Drop(why) => {
                    cover!(why == Drop::Spoofed && registered, "a spoofed frame dropped");
                    cover!(why == Drop::OverBudget, "a flood over budget dropped");
                }
            }
        }
    }
}
