//! Register writes deliver exactly what they changed (each write hints the
//! interrupts it touched instead of rescanning all 128), and register reads
//! that skip the list-register sync return what a synced model would.

use super::*;

const GICR_STRIDE: u64 = 0x2_0000;
const SGI: u64 = 0x1_0000;
const ISENABLER: u64 = 0x100;
const ISACTIVER: u64 = 0x300;
const ICACTIVER: u64 = 0x380;
const IPRIORITYR: u64 = 0x400;
const ICFGR1: u64 = 0xc04;
const GICD_IROUTER: u64 = 0x6000;

fn redist_write(v: &mut Vgic, cpu: usize, offset: u64, value: u64) {
    let result = v.redist_access(cpu as u64 * GICR_STRIDE + SGI + offset, 4, true, value);
    assert_eq!(result, MmioResult::Written, "GICR write at {offset:#x}");
}

fn dist_write(v: &mut Vgic, offset: u64, size: u8, value: u64) {
    assert_eq!(
        v.dist_access(0, offset, size, true, value),
        MmioResult::Written
    );
}

/// Two vCPUs, Group 1 everywhere and enabled, nothing else enabled; both
/// vCPUs have flushed once, so no full rescan is pending.
fn two_vcpus() -> (Vgic, [[u64; 4]; 2]) {
    let mut v = Vgic::new(2);
    for cpu in 0..2 {
        redist_write(&mut v, cpu, 0x80, 0xffff_ffff);
    }
    for word in 1..4 {
        dist_write(&mut v, 0x80 + 4 * word, 4, 0xffff_ffff);
    }
    dist_write(&mut v, 0x0, 4, 0b10);
    let mut lrs = [[0u64; 4]; 2];
    for (cpu, cpu_lrs) in lrs.iter_mut().enumerate() {
        v.flush_lrs(cpu, cpu_lrs);
    }
    (v, lrs)
}

fn loaded(lrs: &[u64], intid: u32) -> bool {
    lrs.iter().any(|lr| lr >> 62 != 0 && *lr as u32 == intid)
}

fn exit_and_enter(v: &mut Vgic, cpu: usize, lrs: &mut [u64; 4]) {
    v.sync_lrs(cpu, lrs);
    v.flush_lrs(cpu, lrs);
}

#[test]
fn a_pending_private_interrupt_is_delivered_once_its_vcpu_enables_it() {
    let (mut v, mut lrs) = two_vcpus();
    v.set_pending(5, 1);
    exit_and_enter(&mut v, 1, &mut lrs[1]);
    assert!(!loaded(&lrs[1], 5), "disabled");
    // A write that changes nothing delivers nothing and costs no rescan.
    redist_write(&mut v, 1, ISENABLER, 0);
    redist_write(&mut v, 1, ISENABLER, 1 << 5);
    exit_and_enter(&mut v, 1, &mut lrs[1]);
    assert!(loaded(&lrs[1], 5));
}

#[test]
fn a_pending_interrupt_is_delivered_once_its_active_state_is_cleared() {
    let (mut v, mut lrs) = two_vcpus();
    redist_write(&mut v, 0, ISENABLER, 1 << 3);
    redist_write(&mut v, 0, ISACTIVER, 1 << 3);
    v.set_pending(3, 0);
    exit_and_enter(&mut v, 0, &mut lrs[0]);
    assert!(!loaded(&lrs[0], 3), "active");
    redist_write(&mut v, 0, ICACTIVER, 1 << 3);
    exit_and_enter(&mut v, 0, &mut lrs[0]);
    assert!(loaded(&lrs[0], 3));
}

#[test]
fn a_pending_spi_is_delivered_where_it_is_routed_to() {
    let (mut v, mut lrs) = two_vcpus();
    dist_write(&mut v, 0x104, 4, 1 << (40 - 32));
    v.set_pending(40, 0);
    dist_write(&mut v, 0x0, 4, 0); // group 1 off: stays pending in the model
    exit_and_enter(&mut v, 0, &mut lrs[0]);
    exit_and_enter(&mut v, 1, &mut lrs[1]);
    dist_write(&mut v, GICD_IROUTER + 8 * 40, 8, 1); // to vCPU 1
    dist_write(&mut v, 0x0, 4, 0b10);
    exit_and_enter(&mut v, 0, &mut lrs[0]);
    exit_and_enter(&mut v, 1, &mut lrs[1]);
    assert!(!loaded(&lrs[0], 40));
    assert!(loaded(&lrs[1], 40));
}

#[test]
fn a_priority_write_reorders_what_waits() {
    let (mut v, mut lrs) = two_vcpus();
    // Five pending SGIs for four list registers: SGI 4 waits, then outranks SGI 0.
    redist_write(&mut v, 0, ISENABLER, 0x1f);
    redist_write(&mut v, 0, IPRIORITYR, 0x8080_8080);
    redist_write(&mut v, 0, IPRIORITYR + 4, 0x80);
    for sgi in 0..5 {
        v.set_pending(sgi, 0);
    }
    exit_and_enter(&mut v, 0, &mut lrs[0]);
    assert!(!loaded(&lrs[0], 4));
    redist_write(&mut v, 0, IPRIORITYR + 4, 0x10);
    exit_and_enter(&mut v, 0, &mut lrs[0]);
    assert!(
        loaded(&lrs[0], 4),
        "higher priority evicts a pending-only entry"
    );
}

#[test]
fn a_pending_spi_rerouted_is_delivered_to_its_new_vcpu() {
    let (mut v, mut lrs) = two_vcpus();
    dist_write(&mut v, 0x104, 4, 1 << (40 - 32));
    exit_and_enter(&mut v, 1, &mut lrs[1]);
    v.set_pending(40, 0); // for vCPU 0, which does not exit before the move
    dist_write(&mut v, GICD_IROUTER + 8 * 40, 8, 1);
    exit_and_enter(&mut v, 1, &mut lrs[1]);
    assert!(loaded(&lrs[1], 40));
}

#[test]
fn a_high_line_is_delivered_once_its_interrupt_is_made_level_sensitive() {
    let (mut v, mut lrs) = two_vcpus();
    redist_write(&mut v, 0, ISENABLER, 1 << 20);
    redist_write(&mut v, 0, ICFGR1, 2 << (2 * 4)); // PPI 20 edge
    v.set_level(20, 0, true);
    exit_and_enter(&mut v, 0, &mut lrs[0]);
    assert!(
        !loaded(&lrs[0], 20),
        "an edge interrupt ignores its line level"
    );
    redist_write(&mut v, 0, ICFGR1, 0);
    exit_and_enter(&mut v, 0, &mut lrs[0]);
    assert!(
        loaded(&lrs[0], 20),
        "level-sensitive, the line high: pending"
    );
}

/// A register write hints the interrupts it changed instead of asking every
/// vCPU's next flush to rescan all 128; only a change of the group enables
/// (which can make anything deliverable) does.
#[test]
fn only_a_group_enable_change_makes_the_next_flush_rescan_everything() {
    let (mut v, _) = two_vcpus();
    let writes: [(bool, u64, u64); 11] = [
        (false, 0x80, 0x7fff_ffff),   // IGROUPR0
        (false, ISENABLER, 1 << 5),   // ISENABLER0
        (false, 0x180, 1 << 5),       // ICENABLER0
        (false, 0x200, 1 << 6),       // ISPENDR0
        (false, 0x280, 1 << 6),       // ICPENDR0
        (false, ISACTIVER, 1 << 7),   // ISACTIVER0
        (false, ICACTIVER, 1 << 7),   // ICACTIVER0
        (false, IPRIORITYR, 0x80),    // IPRIORITYR0
        (false, ICFGR1, 0xaaaa_aaaa), // ICFGR1
        (true, 0x104, 1 << 8),        // GICD_ISENABLER1
        (true, 0x0, 0b10),            // GICD_CTLR, unchanged
    ];
    for (dist, offset, value) in writes {
        if dist {
            dist_write(&mut v, offset, 4, value);
        } else {
            redist_write(&mut v, 1, offset, value);
        }
        assert_eq!(v.full_scan[..2], [false; 2], "write at {offset:#x}");
    }
    dist_write(&mut v, GICD_IROUTER + 8 * 40, 8, 1);
    assert_eq!(v.full_scan[..2], [false; 2], "IROUTER write");
    // Private writes hint their own vCPU, SPI writes every vCPU.
    // IGROUPR bit 31, ISENABLER/ICENABLER 5, ISPENDR/ICPENDR 6,
    // ISACTIVER/ICACTIVER 7, priority of 0, PPIs 16-31 turned edge.
    assert_eq!(v.hint[1], (1 << 40) | 0xffff_00e1);
    assert_eq!(v.hint[0], 1 << 40);
    dist_write(&mut v, 0x0, 4, 0b11);
    assert_eq!(v.full_scan[..2], [true; 2], "group 0 enabled");
}

/// Whatever register writes come in (any register, any vCPU, HW-backed
/// interrupts among them), every flush still loads what is deliverable:
/// nothing waits while a list register is free, as a full rescan would find.
#[test]
fn written_interrupts_are_delivered_as_by_a_full_rescan() {
    // A few SGIs, a PPI and SPIs (one HW-backed of each), so that pending
    // interrupts and the writes that free them meet often.
    const INTIDS: [u32; 7] = [1, 2, 3, 17, 27, 40, 41];
    fn property(src: &mut crate::verify::Source) {
        let (mut v, mut lrs) = two_vcpus();
        v.set_hw(27, 0, Some(27));
        v.set_hw(41, 0, Some(73));
        for _ in 0..8 {
            let cpu = src.below(2) as usize;
            let intid = INTIDS[src.below(INTIDS.len() as u64) as usize];
            let spi = intid >= 32;
            let bit = 1u64 << (intid % 32);
            let word = u64::from(intid / 32) * 4;
            let write = |v: &mut Vgic, offset: u64, size: u8, value: u64| {
                if spi {
                    dist_write(v, offset, size, value);
                } else {
                    let result =
                        v.redist_access(cpu as u64 * GICR_STRIDE + SGI + offset, size, true, value);
                    assert_eq!(result, MmioResult::Written);
                }
            };
            match src.below(8) {
                0 | 1 => {
                    v.set_pending(intid, cpu);
                }
                2 => {
                    v.set_level(intid, cpu, src.any());
                }
                // IGROUPR (a whole word) .. ICACTIVER: the bit, or all others.
                3 => {
                    let value = if src.any() { bit } else { !bit & 0xffff_ffff };
                    write(&mut v, 0x80 * (1 + src.below(7)) + word, 4, value);
                }
                4 => write(&mut v, 0x100 + word, 4, bit), // ISENABLER: the common case
                5 => write(&mut v, IPRIORITYR + u64::from(intid), 1, src.below(4) << 6),
                6 => write(
                    &mut v,
                    0xc00 + u64::from(intid / 16) * 4,
                    4,
                    src.below(2) << (2 * (intid % 16) + 1),
                ),
                _ if spi => {
                    dist_write(&mut v, GICD_IROUTER + 8 * u64::from(intid), 8, src.below(2))
                }
                _ => dist_write(&mut v, 0x0, 4, src.below(4)),
            }
            // Either vCPU exits (its guest may have acknowledged or
            // completed anything) and re-enters.
            let cpu = src.below(2) as usize;
            for lr in lrs[cpu].iter_mut() {
                *lr = (*lr & !(3 << 62)) | (src.below(4) << 62);
            }
            exit_and_enter(&mut v, cpu, &mut lrs[cpu]);
            let waiting = v.best_candidate(cpu);
            if let Some(waiting) = waiting {
                assert!(
                    lrs[cpu].iter().all(|lr| lr >> 62 != 0),
                    "interrupt {waiting} waits while a list register of vCPU {cpu} is free"
                );
            }
            cover!(waiting.is_some(), "list registers overflow");
        }
    }
    crate::verify::reset_covers();
    for case in 0..crate::verify::case_count() {
        property(&mut crate::verify::Source::for_case(u64::from(case)));
    }
    crate::verify::check_covers("written_interrupts_are_delivered_as_by_a_full_rescan");
}

/// A register read for which `*_needs_lr_sync` asks for no sync returns the same value
/// whether or not the list registers were synced into the model first, whatever the
/// guest did to them; reads of pending and active state are the ones that need it.
/// A property test over the full-size vGIC (not a Kani harness: the register
/// decode over every offset of the real-size model is beyond the prover's budget).
#[test]
fn reads_without_sync_do_not_depend_on_list_registers() {
    fn property(src: &mut crate::verify::Source) {
        let (mut v, _) = two_vcpus();
        let cpu = src.below(2) as usize;
        redist_write(&mut v, cpu, ISENABLER, src.any::<u32>().into());
        dist_write(&mut v, 0x104, 4, src.any::<u32>().into());
        for _ in 0..3 {
            v.set_pending(src.below(48) as u32, cpu);
        }
        let mut lrs = [0u64; 4];
        v.flush_lrs(cpu, &mut lrs);
        // The guest acknowledges, completes or leaves each entry.
        for lr in lrs.iter_mut() {
            *lr = (*lr & !(3 << 62)) | (src.below(4) << 62);
        }
        let mut synced = v.clone();
        synced.sync_lrs(cpu, &lrs);
        let dist = src.any::<bool>();
        // Mostly the per-interrupt arrays (words 0-3 of each), sometimes anywhere.
        let offset = if src.any::<bool>() {
            0x80 * (1 + src.below(7)) + 4 * src.below(4)
        } else {
            src.below(0x1_0000) & !3
        };
        let offset = if dist {
            offset
        } else {
            cpu as u64 * GICR_STRIDE
                + if offset < 0x400 {
                    SGI + (offset & !0xc)
                } else {
                    offset
                }
        };
        let needs = if dist {
            dist_needs_lr_sync(offset, false)
        } else {
            redist_needs_lr_sync(offset, false)
        };
        crate::assume!(!needs);
        let (direct, after_sync) = if dist {
            (
                v.dist_access(cpu, offset, 4, false, 0),
                synced.dist_access(cpu, offset, 4, false, 0),
            )
        } else {
            (
                v.redist_access(offset, 4, false, 0),
                synced.redist_access(offset, 4, false, 0),
            )
        };
        assert_eq!(
            direct, after_sync,
            "read at {offset:#x} (distributor: {dist})"
        );
        cover!(
            direct != MmioResult::Read(0),
            "a non-zero register read without sync"
        );
    }
    crate::verify::reset_covers();
    for case in 0..crate::verify::case_count() {
        property(&mut crate::verify::Source::for_case(u64::from(case)));
    }
    crate::verify::check_covers("reads_without_sync_do_not_depend_on_list_registers");
}

/// The glue skips the refill after a GIC register access that leaves
/// [`Vgic::changes`] where it was (with no list register in use): that must
/// be exact. From any state reached by register writes and injections, with
/// the writer's list registers empty after a refill, any register access
/// that does not move the counter leaves a refill with nothing to do: no
/// register written, none in use, no physical-interrupt work queued.
#[test]
fn an_access_that_changes_nothing_needs_no_refill() {
    const INTIDS: [u32; 6] = [1, 2, 17, 27, 40, 41];
    fn property(src: &mut crate::verify::Source) {
        let (mut v, _) = two_vcpus();
        v.set_hw(27, 0, Some(27));
        v.set_hw(41, 0, Some(73));
        let mut skipped = 0;
        for _ in 0..10 {
            let cpu = src.below(2) as usize;
            let intid = INTIDS[src.below(INTIDS.len() as u64) as usize];
            if src.below(4) == 0 {
                v.set_pending(intid, cpu);
            }
            // The writer's list registers are empty (nothing in use), as on
            // the glue's fast path: deliver everything to the guest, which
            // completes it.
            let mut lrs = [0u64; 4];
            for _ in 0..4 {
                v.refill_lrs(cpu, &mut lrs);
                v.sync_lrs(cpu, &[0; 4]);
            }
            let mut lrs = [0u64; 4];
            let settled = v.refill_lrs(cpu, &mut lrs);
            if settled.changed != 0 || v.lrs_in_use(cpu) != 0 {
                continue;
            }
            while v.has_hw_active_changes() {
                let _ = v.take_hw_active_changes();
            }
            while v.has_hw_enable_changes() {
                let _ = v.take_hw_enable_changes();
            }
            // Any access, often one that changes nothing (a value the
            // register already holds, or zeros to a set/clear register).
            let offset = match src.below(4) {
                0 => 0x80 * src.below(8) + u64::from(intid / 32) * 4,
                1 => IPRIORITYR + u64::from(intid & !3),
                2 => 0xc00 + u64::from(intid / 16) * 4,
                _ => GICD_IROUTER + 8 * u64::from(intid.max(32)),
            };
            let value = match src.below(3) {
                0 => 0,
                1 => 1 << (intid % 32),
                _ => src.any::<u32>().into(),
            };
            let write = src.any();
            let size = if offset >= GICD_IROUTER { 8 } else { 4 };
            let before = v.changes();
            if intid >= 32 || offset >= GICD_IROUTER {
                v.dist_access(cpu, offset, size, write, value);
            } else {
                v.redist_access(cpu as u64 * GICR_STRIDE + SGI + offset, size, write, value);
            }
            if v.changes() != before {
                continue;
            }
            skipped += 1;
            assert!(!v.has_hw_active_changes(), "physical-twin work left behind");
            assert!(
                !v.has_hw_enable_changes(),
                "HW-backed SPI change left behind"
            );
            let refill = v.refill_lrs(cpu, &mut lrs);
            assert_eq!(
                (refill.changed, refill.hcr, v.lrs_in_use(cpu)),
                (0, ICH_HCR_EN, 0),
                "a refill after an unchanged access would have done something"
            );
        }
        cover!(skipped > 0, "an access that changes nothing");
    }
    crate::verify::reset_covers();
    for case in 0..crate::verify::case_count() {
        property(&mut crate::verify::Source::for_case(u64::from(case)));
    }
    crate::verify::check_covers("an_access_that_changes_nothing_needs_no_refill");
}
