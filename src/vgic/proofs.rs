//! Properties of the vGIC, proven by Kani on a small instance (the sizes
//! are type parameters; the code is the same as the hypervisor's) and run
//! as property tests under `cargo test`.
//!
//! Unwinding: the longest loop any harness reaches walks the 32 interrupts
//! of one register word or of one vCPU's private interrupts (bound 33; the
//! routing harness only meets the 7 bit-array register blocks, bound 8);
//! every other loop is bounded by the instance (vCPUs, 40 INTIDs, list
//! registers) or by the harness's own step count.

// Index loops on purpose: for Kani far cheaper than iterators (see `lrs`).
#![allow(clippy::needless_range_loop)]

use super::*;

/// The instance the proofs run on: 2 vCPUs, 8 SPIs (INTIDs 0..40), 4 list registers.
const VCPUS: usize = 2;
const SPIS: usize = 8;
const LRS: usize = 4;
type Small = Vgic<VCPUS, SPIS, LRS>;

/// SGIs 0..SGIS of each vCPU take part in the list-register harness.
const SGIS: u32 = 4;
const EDGE_SPI: u32 = 36;
const LEVEL_SPI: u32 = 38;
const VTIMER: u32 = 27;
const GICR_SGI_FRAME: u64 = 0x1_0000;
const GICR_STRIDE: u64 = 0x2_0000;
const LR_HW: u64 = 1 << 61;
const LR_EOI: u64 = 1 << 41;

fn lr_state(lr: u64) -> u64 {
    lr >> 62
}

fn lr_intid(lr: u64) -> u32 {
    lr as u32
}

fn dist_write<const V: usize>(v: &mut Vgic<V, SPIS, LRS>, offset: u64, value: u64) {
    assert_eq!(
        v.dist_access(0, offset, 4, true, value),
        MmioResult::Written
    );
}

fn redist_write<const V: usize>(v: &mut Vgic<V, SPIS, LRS>, vcpu: usize, offset: u64, value: u64) {
    let base = vcpu as u64 * GICR_STRIDE + GICR_SGI_FRAME;
    assert_eq!(
        v.redist_access(base + offset, 4, true, value),
        MmioResult::Written
    );
}

/// Configured as a guest would through its registers (the register paths
/// have their own harness; setting the state directly keeps the symbolic
/// execution small): SGIs 0..sgis enabled with mixed priorities, one edge
/// SPI and one level SPI enabled, Group 1 everywhere, Group 1 enabled.
fn configured<const V: usize>(sgis: u32) -> Vgic<V, SPIS, LRS> {
    let mut v = Vgic::<V, SPIS, LRS>::new(V);
    for cpu in 0..V {
        v.priorities[cpu] = core::array::from_fn(|intid| [0x00, 0x10, 0x20, 0x10][intid % 4]);
    }
    v.rebuild_priority_planes();
    v.group1 = IrqBits::with(u32::MAX, Vgic::<V, SPIS, LRS>::SPI_BITS);
    v.enabled = IrqBits::with((1u32 << sgis) - 1, bit(EDGE_SPI) | bit(LEVEL_SPI));
    v.edge = IrqBits::with(0xffff, bit(EDGE_SPI));
    v.ctlr = CTLR_ENABLE_GRP1;
    v
}

fn configured_vgic() -> Small {
    configured::<VCPUS>(SGIS)
}

/// INTIDs the list-register harness uses (SGIs on every vCPU).
fn tracked() -> impl Iterator<Item = u32> {
    (0..SGIS).chain([EDGE_SPI, LEVEL_SPI])
}

/// What the hardware lets a guest do to one list register between two
/// exits: acknowledge (pending -> active), deactivate (active -> invalid,
/// pending and active -> pending), or both.
fn guest_step(lr: u64, choice: u64) -> u64 {
    let state = match (lr_state(lr), choice % 3) {
        (0b01, 1) => 0b10,
        (0b01, 2) => 0b00,
        (0b10, 1 | 2) => 0b00,
        (0b11, 1 | 2) => 0b01,
        (s, _) => s,
    };
    (lr & !(3 << 62)) | (state << 62)
}

/// Ghost record of edges the guest has not yet acknowledged, and of
/// acknowledgements it has not yet completed.
struct Ghost<const V: usize> {
    /// Per vCPU, per SGI; the edge SPI is in the last slot of vCPU 0.
    pending: [[bool; 8]; V],
    /// (vCPU, INTID) acknowledged and not yet deactivated.
    active: [[bool; 8]; V],
}

impl<const V: usize> Ghost<V> {
    fn new() -> Self {
        Ghost {
            pending: [[false; 8]; V],
            active: [[false; 8]; V],
        }
    }

    /// Record what the guest did to vCPU `cpu`'s list register `old` -> `new`.
    fn guest_did(&mut self, cpu: usize, old: u64, new: u64) {
        let Some((gc, gi)) = ghost_slot(cpu, lr_intid(old)) else {
            return;
        };
        if lr_state(old) == 0b01 && lr_state(new) != 0b01 {
            self.pending[gc][gi] = false;
            self.active[gc][gi] = lr_state(new) == 0b10;
        }
        if lr_state(old) & 0b10 != 0 && lr_state(new) & 0b10 == 0 {
            self.active[gc][gi] = false;
        }
    }
}

fn ghost_slot(vcpu: usize, intid: u32) -> Option<(usize, usize)> {
    match intid {
        0..7 => Some((vcpu, intid as usize)),
        EDGE_SPI => Some((0, 7)),
        _ => None,
    }
}

proof! {
    /// Whatever the guest does to its list registers between exits, and
    /// whatever edges, line changes and register writes come in between, an
    /// interrupt is never in two list registers at once, the list-register
    /// bookkeeping agrees with the interrupts, an unacknowledged edge is
    /// never lost (it is pending in a list register or in the model), an
    /// acknowledged one stays active in a list register until the guest
    /// deactivates it, no deliverable interrupt waits while a list register
    /// is free, one that does not fit requests the underflow interrupt, and
    /// no flush leaves a maintenance condition asserted.
    #[unwind(33)]
    fn list_registers_never_duplicate_or_lose(src) {
        let mut v = configured_vgic();
        let mut lrs = [[0u64; LRS]; VCPUS];
        let mut ghost = Ghost::<VCPUS>::new();
        for _ in 0..6 {
            let cpu = src.below(VCPUS as u64) as usize;
            match src.below(6) {
                0 | 1 => {
                    let sgi = src.below(u64::from(SGIS)) as u32;
                    v.set_pending(sgi, cpu);
                    ghost.pending[cpu][sgi as usize] = true;
                }
                2 => {
                    v.set_pending(EDGE_SPI, cpu);
                    ghost.pending[0][7] = true;
                }
                3 => {
                    v.set_level(LEVEL_SPI, cpu, src.any());
                }
                4 => {
                    // The guest on `cpu` runs: any hardware transitions.
                    for lr in lrs[cpu].iter_mut() {
                        let old = *lr;
                        *lr = guest_step(old, src.below(3));
                        ghost.guest_did(cpu, old, *lr);
                    }
                }
                _ => {
                    // Another vCPU reprograms the GIC.
                    let bit = src.below(u64::from(SGIS)) as u32;
                    match src.below(6) {
                        0 => redist_write(&mut v, cpu, 0x180, 1 << bit), // ICENABLER0
                        1 => redist_write(&mut v, cpu, 0x100, 1 << bit), // ISENABLER0
                        2 => {
                            redist_write(&mut v, cpu, 0x280, 1 << bit); // ICPENDR0
                            ghost.pending[cpu][bit as usize] = false;
                        }
                        3 => redist_write(&mut v, cpu, 0x400, src.any::<u32>().into()),
                        4 => {
                            let router = src.below(3);
                            assert_eq!(
                                v.dist_access(0, 0x6000 + 8 * u64::from(EDGE_SPI), 8, true, router),
                                MmioResult::Written
                            );
                        }
                        _ => dist_write(&mut v, 0x0, src.below(4)), // GICD_CTLR
                    }
                }
            }
            // `cpu` exits and re-enters.
            let cpu = src.below(VCPUS as u64) as usize;
            v.sync_lrs(cpu, &lrs[cpu]);
            let hcr = v.flush_lrs(cpu, &mut lrs[cpu]);
            assert_eq!(hcr & 1, 1, "virtual CPU interface enabled");
            assert!(!maintenance_asserted(hcr, &lrs[cpu]), "flush left maintenance asserted");

            // Nothing deliverable waits while a list register is free; what
            // does not fit asks for a maintenance interrupt.
            let waiting = v.best_candidate(cpu);
            if let Some(waiting) = waiting {
                assert!(
                    lrs[cpu].iter().all(|l| lr_state(*l) != 0),
                    "interrupt {waiting} left out of a free list register"
                );
                assert_ne!(hcr & ICH_HCR_UIE, 0, "overflow without underflow interrupt");
            }
            cover!(waiting.is_some(), "list registers overflow");
            cover!(
                lrs[cpu].iter().any(|l| lr_state(*l) == 0b10),
                "an acknowledged interrupt stays active in a list register"
            );
            check_bookkeeping(&v, &lrs);
            for c in 0..VCPUS {
                for intid in tracked() {
                    check_not_lost(&v, &lrs, &ghost, c, intid);
                }
            }
        }
    }
}

/// No INTID in two list registers; the in-use masks, the owner tables,
/// `in_lr` and the SPI holders agree; valid entries hold their owner; the
/// priority planes are the priorities.
fn check_bookkeeping<const V: usize, const S: usize, const L: usize>(
    v: &Vgic<V, S, L>,
    lrs: &[[u64; L]; V],
) {
    check_lr_bookkeeping(v, lrs);
    check_priority_planes(v);
}

/// [`check_bookkeeping`] of the list registers. (Loops index their arrays:
/// for Kani an iterator into the `Vgic` is far slower, see `lrs`.)
fn check_lr_bookkeeping<const V: usize, const S: usize, const L: usize>(
    v: &Vgic<V, S, L>,
    lrs: &[[u64; L]; V],
) {
    let mut spis_owned = 0u128;
    for cpu in 0..V {
        let mut owned = 0u128;
        for slot in 0..L {
            let lr = lrs[cpu][slot];
            let owner = v.lr_owner[cpu][slot];
            // The in-use mask the exit path reads back by is the owner table.
            assert_eq!(
                v.lr_used[cpu] & (1 << slot) != 0,
                owner.is_some(),
                "in-use mask disagrees with the owner table"
            );
            if let Some(intid) = owner {
                assert!(intid < Vgic::<V, S, L>::INTIDS, "owned INTID exists");
                assert_eq!(owned & bit(intid), 0, "an interrupt in two list registers");
                owned |= bit(intid);
                if intid >= 32 {
                    assert_eq!(
                        usize::from(v.spi_holder[intid as usize - 32]),
                        cpu,
                        "holder disagrees"
                    );
                }
            }
            // Valid entries were written for their owner.
            if lr_state(lr) != 0 {
                assert_eq!(owner, Some(lr_intid(lr)));
            }
        }
        assert_eq!(
            u128::from(v.in_lr.word(cpu, 0)),
            owned & PRIVATE_BITS,
            "in_lr disagrees"
        );
        assert_eq!(
            spis_owned & owned & !PRIVATE_BITS,
            0,
            "an SPI in two vCPUs' list registers"
        );
        spis_owned |= owned & !PRIVATE_BITS;
    }
    assert_eq!(v.in_lr.spis_view(), spis_owned, "in_lr disagrees");
}

/// The priority planes a flush chooses by are the priorities.
fn check_priority_planes<const V: usize, const S: usize, const L: usize>(v: &Vgic<V, S, L>) {
    for cpu in 0..v.num_vcpus() {
        for intid in 0..Vgic::<V, S, L>::INTIDS {
            let priority = v.priority(cpu, intid);
            for k in 0..PRIORITY_PLANES {
                assert_eq!(
                    v.priority_planes[k].get(cpu, intid),
                    priority & (8 << k) != 0,
                    "priority planes disagree"
                );
            }
        }
    }
}

/// The list register (vCPU, slot) holding `intid` as seen from `cpu`.
fn lr_of<const V: usize, const S: usize, const L: usize>(
    v: &Vgic<V, S, L>,
    cpu: usize,
    intid: u32,
) -> Option<(usize, usize)> {
    if !v.in_lr.get(cpu, intid) {
        return None;
    }
    let holder = v.owner_of(cpu, intid);
    let slot = v.lr_owner[holder].iter().position(|o| *o == Some(intid))?;
    Some((holder, slot))
}

/// An edge the guest has not acknowledged is pending somewhere; an
/// acknowledgement it has not completed is still active in a list register.
fn check_not_lost<const V: usize>(
    v: &Vgic<V, SPIS, LRS>,
    lrs: &[[u64; LRS]; V],
    ghost: &Ghost<V>,
    cpu: usize,
    intid: u32,
) {
    let Some((gc, gi)) = ghost_slot(cpu, intid) else {
        return;
    };
    if gc != cpu {
        return;
    }
    let lr = lr_of(v, cpu, intid).map(|(c, s)| lrs[c][s]);
    let lr_pending = lr.is_some_and(|l| lr_state(l) & 0b01 != 0);
    let lr_active = lr.is_some_and(|l| lr_state(l) & 0b10 != 0);
    if ghost.pending[gc][gi] {
        assert!(
            lr_pending || v.latch.get(cpu, intid),
            "pending interrupt {intid} lost"
        );
    }
    if ghost.active[gc][gi] {
        assert!(
            lr_active,
            "active interrupt {intid} dropped from the list registers"
        );
    }
}

proof! {
    /// A HW-backed interrupt (the virtual timer) keeps its physical twin
    /// active exactly while it is pending or active: the twin fires, the
    /// line drops before the guest takes it, the guest acknowledges and
    /// completes it, or clears/sets pending and active state through the
    /// redistributor, in any order. The glue's view of the physical
    /// interrupt (changed by firing, by the guest completing a HW entry, and
    /// by the queued changes it applies) always ends equal to the model's,
    /// so the twin is never left active with nothing to deactivate it.
    #[unwind(33)]
    fn hw_twin_follows_the_virtual_interrupt(src) {
        let mut v = configured::<1>(SGIS);
        redist_write(&mut v, 0, 0x100, 1 << VTIMER); // ISENABLER0
        v.set_hw(VTIMER, 0, Some(VTIMER));
        let mut lrs = [0u64; LRS];
        let mut phys_active = false;
        let mut hcr = v.flush_lrs(0, &mut lrs);
        for _ in 0..5 {
            if src.any() {
                // The guest runs. Completing a HW entry deactivates the twin.
                for lr in lrs.iter_mut() {
                    let old = *lr;
                    *lr = guest_step(old, src.below(3));
                    if old & LR_HW != 0 && lr_state(old) != 0 && lr_state(*lr) == 0 {
                        phys_active = false;
                    }
                }
            }
            // An exit: sync, then what the exit was about.
            v.sync_lrs(0, &lrs);
            match src.below(4) {
                // The physical timer fires (it can only when inactive).
                0 if !phys_active => {
                    phys_active = true;
                    v.hw_fired(VTIMER, 0);
                }
                1 => {
                    // The timer's output was seen low.
                    v.set_level(VTIMER, 0, false);
                }
                2 => {
                    let reg = [0x200u64, 0x280, 0x300, 0x380][src.below(4) as usize];
                    redist_write(&mut v, 0, reg, 1 << VTIMER);
                }
                _ => {}
            }
            // Entry: flush, then the glue applies the queued changes.
            hcr = v.flush_lrs(0, &mut lrs);
            while v.has_hw_active_changes() {
                for change in v.take_hw_active_changes().into_iter().flatten() {
                    assert_eq!(change.pintid, VTIMER);
                    phys_active = change.active;
                }
            }
            let twin = v.phys_active.get(0, VTIMER);
            let active = v.active.get(0, VTIMER);
            assert_eq!(phys_active, twin, "glue and model disagree");
            assert_eq!(
                twin,
                active || v.pending_anywhere(0) & bit(VTIMER) != 0,
                "twin active without a virtual reason, or the reverse"
            );
            for lr in lrs {
                assert!(lr & LR_HW == 0 || lr_state(lr) != 0b11, "HW entry pending and active");
            }
            cover!(active && phys_active, "taken by the guest, twin active");
            cover!(
                !active && v.pending(0) & bit(VTIMER) == 0 && !phys_active && !v.in_lr.get(0, VTIMER),
                "all quiet again"
            );
        }
        assert!(!maintenance_asserted(hcr, &lrs));
    }
}

proof! {
    /// No distributor or redistributor access panics, whatever offset,
    /// width or value; unsupported widths and misaligned accesses are
    /// rejected; byte accesses are accepted only on IPRIORITYR and 64-bit
    /// ones only on GICD_IROUTER and GICR_TYPER; reads fit their width.
    #[unwind(33)]
    fn register_accesses_never_panic(src) {
        let mut v = Small::new(1 + src.below(2) as usize);
        let size = [1u8, 2, 4, 8, 3, 0, 16][src.below(7) as usize];
        let write: bool = src.any();
        let value: u64 = src.any();

        let offset = match src.below(3) {
            0 => src.below(0x1_0000),
            1 => 0x6100 + 8 * src.below(8), // IROUTER of an existing SPI
            _ => src.any(),
        };
        let result = v.dist_access(0, offset, size, write, value);
        let misaligned = !matches!(size, 1 | 2 | 4 | 8) || offset % u64::from(size) != 0;
        // Two words of interrupts: 0..64, of which 32..40 exist.
        let priority = (0x400..0x440).contains(&offset);
        let router = (0x6100..0x6140).contains(&offset);
        if misaligned || offset >= 0x1_0000 || size == 2 {
            assert_eq!(result, MmioResult::BadAccess);
        }
        if (size == 1 && !priority) || (size == 8 && !router) {
            assert_eq!(result, MmioResult::BadAccess);
        }
        check_read_fits(result, size);
        cover!(write && result == MmioResult::Written, "a distributor write");
        cover!(size == 8 && matches!(result, MmioResult::Read(_)), "a 64-bit IROUTER read");

        let offset = if src.any() { src.below(0x4_0000) } else { src.any() };
        let result = v.redist_access(offset, size, write, value);
        let misaligned = !matches!(size, 1 | 2 | 4 | 8) || offset % u64::from(size) != 0;
        let frame = offset % 0x2_0000;
        let beyond = offset / 0x2_0000 >= v.num_vcpus() as u64;
        if misaligned || beyond || size == 2 {
            assert_eq!(result, MmioResult::BadAccess);
        }
        if (size == 1 && !(0x1_0400..0x1_0420).contains(&frame)) || (size == 8 && frame != 8) {
            assert_eq!(result, MmioResult::BadAccess);
        }
        check_read_fits(result, size);
        cover!(!write && size == 4 && matches!(result, MmioResult::Read(_)), "a redistributor read");
        cover!(!beyond && offset >= 0x2_0000, "the second vCPU's redistributor");
    }
}

fn check_read_fits(result: MmioResult, size: u8) {
    if let MmioResult::Read(r) = result {
        if size < 8 {
            assert_eq!(r >> (8 * u32::from(size)), 0, "read wider than the access");
        }
    }
}

proof! {
    /// SGIs only ever target existing vCPUs, and a target list naming
    /// another cluster or range (Aff1..3 or RS non-zero) reaches nobody.
    /// Every SGI number in turn (a concrete INTID each, so the proof marks
    /// one interrupt pending rather than any of 16), any other fields.
    #[unwind(33)]
    fn sgi_targets_exist(src) {
        let n = VCPUS;
        let configured = configured_vgic();
        for sgi in 0..16u64 {
            let mut v = configured.clone();
            let sgi1r = (src.any::<u64>() & !(0xf << 24)) | (sgi << 24);
            let sender = src.below(4) as usize;
            let kick = v.send_sgi(sender, sgi1r);
            assert_eq!(kick >> n, 0);
            let other_cluster = sgi1r & 0x00ff_f0ff_00ff_0000 != 0;
            if sgi1r & (1 << 40) == 0 && other_cluster {
                assert_eq!(kick, 0);
                for cpu in 0..n {
                    assert!(!v.has_pending(cpu), "SGI delivered to a vCPU not named");
                }
            }
            cover!(kick == 0b11, "an SGI to both vCPUs");
            cover!(sgi1r & (1 << 40) != 0 && kick != 0, "a broadcast SGI");
        }
    }
}

proof! {
    /// Injection and list-register calls with any INTID, vCPU or
    /// list-register contents never panic, and only ever name existing vCPUs.
    #[unwind(33)]
    fn injection_never_panics(src) {
        let mut v = configured_vgic();
        if src.any() {
            // Two SGIs already wait, so a single list register overflows.
            v.set_pending(0, 0);
            v.set_pending(1, 0);
        }
        let intid: u32 = if src.any() { src.below(48) as u32 } else { src.any() };
        let cpu: usize = if src.any() { src.below(4) as usize } else { src.any() };
        let kick = match src.below(4) {
            0 => v.set_pending(intid, cpu),
            1 => v.set_level(intid, cpu, src.any()),
            2 => v.hw_fired(intid, cpu),
            _ => {
                v.set_hw(intid, cpu, Some(src.any()));
                v.set_pending(intid, cpu)
            }
        };
        assert!(kick.is_none_or(|k| k < VCPUS));
        if intid >= Small::INTIDS || (intid < 32 && cpu >= VCPUS) {
            assert_eq!(kick, None);
        }
        cover!(kick.is_some(), "an injection that kicks");
        let garbage: [u64; LRS] = src.any();
        let kicks = v.sync_lrs(cpu, &garbage);
        assert_eq!(kicks >> VCPUS, 0);
        let mut lrs: [u64; LRS] = src.any();
        // Any number of implemented list registers, down to none.
        let n = src.below(LRS as u64 + 1) as usize;
        let hcr = v.flush_lrs(cpu, &mut lrs[..n]);
        assert_eq!(hcr & !0b11, 0);
        assert!(!maintenance_asserted(hcr, &lrs[..n]));
        cover!(n == 1 && hcr & ICH_HCR_UIE == 0 && v.best_candidate(0).is_some(), "one list register, more waiting");
        for lr in lrs[..n].iter().copied() {
            assert!(lr_intid(lr) < Small::INTIDS || lr == 0);
            // The HW bit never comes with pending and active.
            assert!(lr & (1 << 61) == 0 || lr_state(lr) != 0b11);
        }
        cover!(lrs.iter().any(|l| lr_state(*l) != 0), "something loaded");
        let _ = v.has_pending(cpu);
        let _ = v.take_hw_enable_changes();
        let _ = v.take_hw_active_changes();
    }
}

proof! {
    /// Whatever the guest writes to GICD_IROUTER, the SPI is routed to an
    /// existing vCPU and the register reads back the writable fields. Every
    /// SPI in turn (a concrete register offset each, so the proof decodes
    /// the one register rather than every one the offset could name).
    #[unwind(9)]
    fn routing_targets_exist(src) {
        let mut v = Vgic::<4, SPIS, LRS>::new(1 + src.below(4) as usize);
        for intid in 32..32 + SPIS as u32 {
            let value: u64 = src.any();
            let offset = 0x6000 + 8 * u64::from(intid);
            assert_eq!(v.dist_access(0, offset, 8, true, value), MmioResult::Written);
            assert!(v.route_of(intid) < v.num_vcpus());
            assert_eq!(
                v.dist_access(0, offset, 8, false, 0),
                MmioResult::Read(value & 0xff_80ff_ffff)
            );
            cover!(v.route_of(intid) == 3, "routed to the last of 4 vCPUs");
            cover!(value & (1 << 31) != 0, "IRM = 1");
        }
    }
}

/// Any 1-bit field of one vCPU's interrupts.
/// Any 1-bit field of one vCPU's interrupts (of the [`live`] ones).
fn any_bits<const S: usize, const L: usize>(src: &mut crate::verify::Source) -> IrqBits {
    let live = live::<S, L>();
    let private = src.any::<u32>() & live as u32;
    IrqBits::with(private, (u128::from(src.any::<u64>()) << 32) & live)
}

/// The INTIDs whose state [`any_state`] draws under Kani: one of each kind
/// the code tells apart, at the edges of their ranges: SGI 0 (always edge,
/// the lowest INTID), PPI 27 (the virtual timer: edge or level, HW-backed
/// or not) and SPI 32 (the first SPI: routed, held by a vCPU), with any
/// priorities (ties included). Every other interrupt is at its reset state.
/// With two list registers, three interrupts already overflow. (The code
/// treats INTIDs of a kind alike: each is one bit of the same words.)
#[cfg(kani)]
const LIVE_INTIDS: [u32; 3] = [0, 27, 32];

/// The INTIDs [`any_state`] draws the state of (bit = INTID): under Kani
/// [`LIVE_INTIDS`], in the property test every one.
fn live<const S: usize, const L: usize>() -> u128 {
    #[cfg(kani)]
    {
        let mut live = 0;
        for i in 0..LIVE_INTIDS.len() {
            live |= bit(LIVE_INTIDS[i]);
        }
        live & (PRIVATE_BITS | Vgic::<1, S, L>::SPI_BITS)
    }
    #[cfg(not(kani))]
    {
        PRIVATE_BITS | Vgic::<1, S, L>::SPI_BITS
    }
}

/// A [`live`] INTID, or none.
fn any_live_intid<const S: usize, const L: usize>(src: &mut crate::verify::Source) -> Option<u32> {
    #[cfg(kani)]
    {
        let i = src.below(LIVE_INTIDS.len() as u64 + 1) as usize;
        (i < LIVE_INTIDS.len() && LIVE_INTIDS[i] < Vgic::<1, S, L>::INTIDS).then(|| LIVE_INTIDS[i])
    }
    #[cfg(not(kani))]
    {
        let intid = src.below(u64::from(Vgic::<1, S, L>::INTIDS) + 1) as u32;
        (intid < Vgic::<1, S, L>::INTIDS).then_some(intid)
    }
}

/// Any state of one vCPU's interrupts whose bookkeeping is consistent, as
/// after an exit's sync: every field of every interrupt arbitrary (SGIs
/// edge, priorities within the implemented bits), list registers holding
/// distinct interrupts that know where they are, and every interrupt that
/// could be loaded hinted (or a full scan due), which is what a flush
/// relies on to find it.
fn any_state<const S: usize, const L: usize>(src: &mut crate::verify::Source) -> Vgic<1, S, L> {
    let mut v = Vgic::<1, S, L>::new(1);
    v.ctlr = src.any::<u32>() & (CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1);
    v.enabled = any_bits::<S, L>(src);
    v.latch = any_bits::<S, L>(src);
    v.level = any_bits::<S, L>(src);
    v.active = any_bits::<S, L>(src);
    v.group1 = any_bits::<S, L>(src);
    v.edge = any_bits::<S, L>(src);
    v.edge.words[0] |= 0xffff;
    v.hw_backed = any_bits::<S, L>(src);
    v.phys_active = any_bits::<S, L>(src);
    // Any priorities: the planes drawn as words, the bytes derived from them
    // (cheaper for Kani than 33 symbolic bytes sliced bit by bit).
    for k in 0..PRIORITY_PLANES {
        v.priority_planes[k] = any_bits::<S, L>(src);
    }
    // Index loops (see `lrs`), over the live interrupts only (the others
    // keep priority 0, as their planes).
    let live = live::<S, L>();
    for word in [0, SPI_WORD0] {
        let (first, count) = if word == 0 { (0, 32) } else { (32, S.min(32)) };
        for i in 0..count {
            if live & bit(first + i as u32) == 0 {
                continue;
            }
            let mut priority = 0u8;
            for k in 0..PRIORITY_PLANES {
                priority |= (((v.priority_planes[k].words[word] >> i) & 1) as u8) << (k + 3);
            }
            v.priorities[word][i] = priority;
        }
    }
    for i in 0..32 {
        if live & bit(i) != 0 {
            v.pintids[0][i as usize] = src.below(u64::from(FIRST_SPECIAL_INTID)) as u16;
        }
    }
    for spi in 0..S {
        if live & bit(32 + spi as u32) != 0 {
            v.pintids[SPI_WORD0 + spi / 32][spi % 32] =
                src.below(u64::from(FIRST_SPECIAL_INTID)) as u16;
        }
    }
    for slot in 0..L {
        if let Some(intid) = any_live_intid::<S, L>(src) {
            if !v.in_lr.get(0, intid) {
                v.load(0, slot, intid);
                let latched = src.any();
                v.lr_latched.set(0, intid, latched);
            }
        }
    }
    v.full_scan[0] = src.any();
    v.hint[0] = (u128::from(src.any::<u64>()) & live) | v.candidates(0);
    v
}

/// The instance of the one-step maintenance proof: one vCPU, `M_SPIS` SPIs, `M_LRS` list registers.
const M_SPIS: usize = 1;
const M_LRS: usize = 2;

/// The INTIDs `lrs` show in a state with any of the bits of `state` (bit = INTID).
fn shown(lrs: &[u64], state: u64) -> u128 {
    let mut mask = 0;
    for slot in 0..lrs.len() {
        if lr_state(lrs[slot]) & state != 0 {
            mask |= bit(lr_intid(lrs[slot]));
        }
    }
    mask
}

/// The maintenance path (issue 8), one exit from any consistent state:
/// the list registers as the entry's flush wrote them (`ENTRY_FLUSH`: the
/// whole flush; otherwise its first step, every held entry rewritten from
/// the model or emptied, with any ICH_HCR_EL2: a superset of what a whole
/// flush leaves, and for Kani one refill less to execute), the guest
/// acknowledges and completes entries in any order, and if what it leaves asserts
/// the maintenance interrupt (underflow, or the EOI of a level entry),
/// the handler's sync and flush deassert it, so the hypervisor's loop
/// over physical interrupts ends. No edge that was pending and not
/// acknowledged is lost, an acknowledged one stays active in a list
/// register, nothing deliverable waits while a list register is free,
/// and the bookkeeping the next exit starts from is consistent again
/// (so the step covers every sequence of exits).
fn maintenance_step<const S: usize, const L: usize, const ENTRY_FLUSH: bool>(
    src: &mut crate::verify::Source,
) {
    let mut v = any_state::<S, L>(src);
    let (priorities, planes) = (v.priorities, v.priority_planes);
    let mut lrs = [0u64; L];
    // Edges waiting before the entry (in the latch or in a list register).
    let mut pending = v.latch.view(0) | v.lr_latched.view(0);
    let hcr = if ENTRY_FLUSH {
        let hcr = v.flush_lrs(0, &mut lrs);
        assert!(
            !maintenance_asserted(hcr, &lrs),
            "flush left maintenance asserted"
        );
        hcr
    } else {
        // The list registers as the entry's flush writes those it keeps
        // (its first step: rewritten from the model), any ICH_HCR_EL2.
        for slot in 0..L {
            if let Some(intid) = v.lr_owner[0][slot] {
                lrs[slot] = v.rewrite(0, slot, intid);
            }
        }
        ICH_HCR_EN | if src.any() { ICH_HCR_UIE } else { 0 }
    };
    // The guest runs: any acknowledgements and completions.
    let mut active = 0u128;
    let mut level_eoi = false;
    for slot in 0..L {
        let old = lrs[slot];
        let new = guest_step(old, src.below(3));
        lrs[slot] = new;
        level_eoi |= lr_state(new) == 0 && new & LR_EOI != 0 && new & LR_HW == 0;
        if lr_state(old) == 0 {
            continue;
        }
        let intid = bit(lr_intid(old));
        if lr_state(old) & 0b01 != 0 && lr_state(new) & 0b01 == 0 {
            // Acknowledged: the edge is consumed.
            pending &= !intid;
        }
        if lr_state(new) & 0b10 != 0 {
            active |= intid;
        }
    }
    let asserted = maintenance_asserted(hcr, &lrs);
    let underflow = hcr & ICH_HCR_UIE != 0;
    cover!(asserted && underflow, "underflow maintenance interrupt");
    cover!(
        asserted && level_eoi,
        "EOI maintenance interrupt of a level entry"
    );
    // The exit (the maintenance handler or any other): sync and flush.
    v.sync_lrs(0, &lrs);
    let hcr = v.flush_lrs(0, &mut lrs);
    assert!(
        !maintenance_asserted(hcr, &lrs),
        "maintenance interrupt fires again"
    );
    check_lr_bookkeeping(&v, &[lrs]);
    // Neither sync nor flush touches priorities, so the planes still
    // are the priorities (which `any_state` made them).
    for word in [0, SPI_WORD0] {
        for i in 0..32 {
            assert_eq!(
                v.priorities[word][i], priorities[word][i],
                "a priority changed"
            );
        }
        for k in 0..PRIORITY_PLANES {
            assert_eq!(
                v.priority_planes[k].words[word], planes[k].words[word],
                "a priority plane changed"
            );
        }
    }
    let lost = pending & !(v.latch.view(0) | shown(&lrs, 0b01));
    assert_eq!(lost, 0, "a pending interrupt lost");
    let dropped = active & !shown(&lrs, 0b10);
    assert_eq!(
        dropped, 0,
        "an active interrupt dropped from the list registers"
    );
    // What the next exit starts from: hinted if it can be loaded.
    let waiting = v.candidates(0);
    if !v.full_scan[0] {
        assert_eq!(waiting & !v.hint[0], 0, "a loadable interrupt not hinted");
    }
    if waiting != 0 {
        for slot in 0..L {
            assert!(
                lr_state(lrs[slot]) != 0,
                "an interrupt left out of a free list register"
            );
        }
        assert_ne!(hcr & ICH_HCR_UIE, 0, "overflow without underflow interrupt");
        // The list registers hold the best: nothing waiting beats a
        // pending-only entry (which a better one would have evicted).
        let best_waiting = v.best_of(0, waiting).map(|intid| v.priority(0, intid));
        for slot in 0..L {
            let l = lrs[slot];
            if lr_state(l) == 0b01 {
                assert!(
                    best_waiting.is_some_and(|p| v.priority(0, lr_intid(l)) <= p),
                    "a better interrupt waits behind a pending-only entry"
                );
            }
        }
    }
    let mut all_pending_only = true;
    for slot in 0..L {
        all_pending_only &= lr_state(lrs[slot]) == 0b01;
    }
    cover!(
        waiting != 0 && all_pending_only,
        "more waiting than list registers"
    );
}

proof! {
    /// [`maintenance_step`] on `Vgic<1, 1, 2>` (one vCPU, SPI 32, 2 list
    /// registers), from the list registers a flush's first step writes; under
    /// Kani the state of [`LIVE_INTIDS`], in the property test of every
    /// INTID, and also after a whole flush into 4 list registers.
    #[unwind(34)]
    fn maintenance_exit_ends_and_loses_nothing(src) {
        maintenance_step::<M_SPIS, M_LRS, false>(src);
        #[cfg(not(kani))]
        maintenance_step::<M_SPIS, 4, true>(src);
    }
}
