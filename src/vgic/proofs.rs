use super::lrs::ICH_HCR_UIE;
use super::*;

const LRS: usize = 4;
const VCPUS: usize = 2;
/// SGIs 0..SGIS of each vCPU take part in the list-register harness.
const SGIS: u32 = 4;
const EDGE_SPI: u32 = 40;
const LEVEL_SPI: u32 = 48;
const GICR_SGI_FRAME: u64 = 0x1_0000;
const GICR_STRIDE: u64 = 0x2_0000;

fn lr_state(lr: u64) -> u64 {
    lr >> 62
}

fn lr_intid(lr: u64) -> u32 {
    lr as u32
}

fn dist_write(v: &mut Vgic, offset: u64, value: u64) {
    assert_eq!(
        v.dist_access(0, offset, 4, true, value),
        MmioResult::Written
    );
}

fn redist_write(v: &mut Vgic, vcpu: usize, offset: u64, value: u64) {
    let base = vcpu as u64 * GICR_STRIDE + GICR_SGI_FRAME;
    assert_eq!(
        v.redist_access(base + offset, 4, true, value),
        MmioResult::Written
    );
}

/// Two vCPUs, configured through their registers as a guest would: SGIs
/// 0..SGIS enabled with mixed priorities, one edge SPI and one level SPI
/// enabled, Group 1 everywhere, Group 1 enabled.
fn configured_vgic() -> Vgic {
    let mut v = Vgic::new(VCPUS);
    for cpu in 0..VCPUS {
        redist_write(&mut v, cpu, 0x80, 0xffff_ffff); // IGROUPR0
        redist_write(&mut v, cpu, 0x100, (1 << SGIS) - 1); // ISENABLER0
        redist_write(&mut v, cpu, 0x400, 0x1020_1000); // IPRIORITYR: SGIs 0-3
    }
    dist_write(&mut v, 0x84, 0xffff_ffff); // IGROUPR1: SPIs 32-63
    dist_write(&mut v, 0xc04, 1 << ((EDGE_SPI - 32) * 2 + 1)); // ICFGR2: SPI 40 edge
    dist_write(
        &mut v,
        0x104,
        (1 << (EDGE_SPI - 32)) | (1 << (LEVEL_SPI - 32)),
    );
    dist_write(&mut v, 0x0, 0b10); // GICD_CTLR.EnableGrp1
    v
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
#[derive(Default)]
struct Ghost {
    /// Per vCPU, per SGI; the edge SPI is in slot SGIS of vCPU 0.
    pending: [[bool; SGIS as usize + 1]; VCPUS],
    /// (vCPU, INTID) acknowledged and not yet deactivated.
    active: [[bool; SGIS as usize + 1]; VCPUS],
}

fn ghost_slot(vcpu: usize, intid: u32) -> Option<(usize, usize)> {
    match intid {
        0..SGIS => Some((vcpu, intid as usize)),
        EDGE_SPI => Some((0, SGIS as usize)),
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
    /// is free, and one that does not fit requests the underflow interrupt.
    #[unwind(12)]
    fn list_registers_never_duplicate_or_lose(src) {
        let mut v = configured_vgic();
        let mut lrs = [[0u64; LRS]; VCPUS];
        let mut ghost = Ghost::default();
        for _ in 0..10 {
            let cpu = src.below(VCPUS as u64) as usize;
            match src.below(6) {
                0 | 1 => {
                    let sgi = src.below(u64::from(SGIS)) as u32;
                    v.set_pending(sgi, cpu);
                    ghost.pending[cpu][sgi as usize] = true;
                }
                2 => {
                    v.set_pending(EDGE_SPI, cpu);
                    ghost.pending[0][SGIS as usize] = true;
                }
                3 => {
                    v.set_level(LEVEL_SPI, cpu, src.any());
                }
                4 => {
                    // The guest on `cpu` runs: any hardware transitions.
                    for lr in lrs[cpu].iter_mut() {
                        let old = *lr;
                        let new = guest_step(old, src.below(3));
                        *lr = new;
                        let Some((gc, gi)) = ghost_slot(cpu, lr_intid(old)) else { continue };
                        if lr_state(old) == 0b01 && lr_state(new) != 0b01 {
                            ghost.pending[gc][gi] = false;
                            ghost.active[gc][gi] = lr_state(new) == 0b10;
                        }
                        if lr_state(old) & 0b10 != 0 && lr_state(new) & 0b10 == 0 {
                            ghost.active[gc][gi] = false;
                        }
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

            // Nothing deliverable waits while a list register is free; what
            // does not fit asks for a maintenance interrupt.
            if let Some(waiting) = v.best_candidate(cpu) {
                assert!(
                    lrs[cpu].iter().all(|l| lr_state(*l) != 0),
                    "interrupt {waiting} left out of a free list register"
                );
                assert_ne!(hcr & ICH_HCR_UIE, 0, "overflow without underflow interrupt");
            }
            check_bookkeeping(&v, &lrs);
            for c in 0..VCPUS {
                for intid in tracked() {
                    check_not_lost(&v, &lrs, &ghost, c, intid);
                }
            }
        }
    }
}

/// No INTID in two list registers; `lr_owner` and `Irq::lr` agree.
fn check_bookkeeping(v: &Vgic, lrs: &[[u64; LRS]; VCPUS]) {
    for (cpu, cpu_lrs) in lrs.iter().enumerate() {
        for (slot, lr) in cpu_lrs.iter().enumerate() {
            if let Some(intid) = v.lr_owner[cpu][slot] {
                let irq = v.irq(cpu, intid).expect("owned INTID exists");
                assert_eq!(
                    irq.lr,
                    Some((cpu as u8, slot as u8)),
                    "owner table disagrees"
                );
            }
            // Valid entries were written for their owner.
            if lr_state(*lr) != 0 {
                assert_eq!(v.lr_owner[cpu][slot], Some(lr_intid(*lr)));
            }
        }
        for intid in tracked() {
            let irq = v.irq(cpu, intid).expect("tracked INTID exists");
            if let Some((c, s)) = irq.lr {
                assert_eq!(v.lr_owner[usize::from(c)][usize::from(s)], Some(intid));
            }
        }
    }
    // An SPI is held by at most one vCPU; a private interrupt at most once per vCPU.
    for intid in tracked() {
        let mut holders = 0;
        for cpu in 0..VCPUS {
            let here = v.lr_owner[cpu]
                .iter()
                .filter(|o| **o == Some(intid))
                .count();
            assert!(
                here <= 1,
                "interrupt {intid} in two list registers of vCPU {cpu}"
            );
            holders += here;
        }
        if intid >= 32 {
            assert!(holders <= 1, "SPI {intid} in list registers of two vCPUs");
        }
    }
}

/// An edge the guest has not acknowledged is pending somewhere; an
/// acknowledgement it has not completed is still active in a list register.
fn check_not_lost(v: &Vgic, lrs: &[[u64; LRS]; VCPUS], ghost: &Ghost, cpu: usize, intid: u32) {
    let Some((gc, gi)) = ghost_slot(cpu, intid) else {
        return;
    };
    if gc != cpu {
        return;
    }
    let irq = v.irq(cpu, intid).expect("tracked INTID exists");
    let lr = irq.lr.map(|(c, s)| lrs[usize::from(c)][usize::from(s)]);
    let lr_pending = lr.is_some_and(|l| lr_state(l) & 0b01 != 0);
    let lr_active = lr.is_some_and(|l| lr_state(l) & 0b10 != 0);
    if ghost.pending[gc][gi] {
        assert!(lr_pending || irq.latch, "pending interrupt {intid} lost");
    }
    if ghost.active[gc][gi] {
        assert!(
            lr_active,
            "active interrupt {intid} dropped from the list registers"
        );
    }
}

proof! {
    /// No distributor or redistributor access panics, whatever offset,
    /// width or value; unsupported widths and misaligned accesses are
    /// rejected; byte accesses are accepted only on IPRIORITYR and 64-bit
    /// ones only on GICD_IROUTER and GICR_TYPER; reads fit their width.
    #[unwind(40)]
    fn register_accesses_never_panic(src) {
        let mut v = Vgic::new(1 + src.below(2) as usize);
        let size = [1u8, 2, 4, 8, 3, 0, 16][src.below(7) as usize];
        let write: bool = src.any();
        let value: u64 = src.any();

        let offset = if src.any() { src.below(0x1_0000) } else { src.any() };
        let result = v.dist_access(0, offset, size, write, value);
        let misaligned = !matches!(size, 1 | 2 | 4 | 8) || offset % u64::from(size) != 0;
        let priority = (0x400..0x480).contains(&offset);
        let router = (0x6100..0x6400).contains(&offset);
        if misaligned || offset >= 0x1_0000 || size == 2 {
            assert_eq!(result, MmioResult::BadAccess);
        }
        if (size == 1 && !priority) || (size == 8 && !router) {
            assert_eq!(result, MmioResult::BadAccess);
        }
        check_read_fits(result, size);

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
    #[unwind(9)]
    fn sgi_targets_exist(src) {
        let mut v = configured_vgic();
        let n = v.num_vcpus();
        let sgi1r: u64 = src.any();
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
    }
}

proof! {
    /// Injection and list-register calls with any INTID, vCPU or
    /// list-register contents never panic, and only ever name existing vCPUs.
    #[unwind(20)]
    fn injection_never_panics(src) {
        let mut v = configured_vgic();
        let intid: u32 = if src.any() { src.below(140) as u32 } else { src.any() };
        let cpu: usize = if src.any() { src.below(4) as usize } else { src.any() };
        let kick = match src.below(3) {
            0 => v.set_pending(intid, cpu),
            1 => v.set_level(intid, cpu, src.any()),
            _ => {
                v.set_hw(intid, cpu, Some(src.any()));
                v.set_pending(intid, cpu)
            }
        };
        assert!(kick.is_none_or(|k| k < VCPUS));
        if intid >= NUM_INTIDS || (intid < 32 && cpu >= VCPUS) {
            assert_eq!(kick, None);
        }
        let garbage: [u64; LRS] = src.any();
        let kicks = v.sync_lrs(cpu, &garbage);
        assert_eq!(kicks >> VCPUS, 0);
        let mut lrs: [u64; LRS] = src.any();
        let hcr = v.flush_lrs(cpu, &mut lrs);
        assert_eq!(hcr & !0b11, 0);
        for lr in lrs {
            assert!(lr_intid(lr) < NUM_INTIDS || lr == 0);
            // The HW bit never comes with pending and active.
            assert!(lr & (1 << 61) == 0 || lr_state(lr) != 0b11);
        }
        let _ = v.has_pending(cpu);
        let _ = v.take_hw_enable_changes();
    }
}

proof! {
    /// Whatever the guest writes to GICD_IROUTER, the SPI is routed to an
    /// existing vCPU and the register reads back the writable fields.
    #[unwind(3)]
    fn routing_targets_exist(src) {
        let mut v = Vgic::new(1 + src.below(MAX_VCPUS as u64) as usize);
        let intid = 32 + src.below(u64::from(NUM_INTIDS) - 32) as u32;
        let value: u64 = src.any();
        let offset = 0x6000 + 8 * u64::from(intid);
        assume!(v.dist_access(0, offset, 8, true, value) == MmioResult::Written);
        assert!(v.route_of(intid) < v.num_vcpus());
        assert_eq!(
            v.dist_access(0, offset, 8, false, 0),
            MmioResult::Read(value & 0xff_80ff_ffff)
        );
    }
}
