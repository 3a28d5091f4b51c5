//! The glue's list-register shortcuts are exact: an exit reads back only
//! the list registers [`Vgic::lrs_in_use`] names, an entry writes only the
//! ones [`Vgic::refill_lrs`] says changed, and the hardware still holds
//! exactly what the model was synced from and refilled into.

use super::*;

const VCPUS: usize = 2;
const SPIS: usize = 8;
const LRS: usize = 4;
type Small = Vgic<VCPUS, SPIS, LRS>;

/// SGIs 0..SGIS take part: more than there are list registers.
const SGIS: u32 = 6;
const LEVEL_SPI: u32 = 38;
/// A PPI backed by a physical one (list-register HW bit), like the timer.
const HW_PPI: u32 = 27;

fn lr_state(lr: u64) -> u64 {
    lr >> 62
}

/// Configured as a guest would: SGIs 0..SGIS and the level SPI and the
/// HW-backed PPI enabled, mixed priorities, Group 1 everywhere and enabled.
fn configured() -> Small {
    let mut v = Small::new(VCPUS);
    let enabled = ((1u32 << SGIS) - 1) | (1 << HW_PPI);
    for cpu in 0..VCPUS {
        v.priorities[cpu] = core::array::from_fn(|intid| [0x00, 0x10, 0x20, 0x10][intid % 4]);
        v.set_hw(HW_PPI, cpu, Some(HW_PPI));
    }
    v.rebuild_priority_planes();
    v.enabled = IrqBits::with(enabled, 0);
    v.group1 = IrqBits::with(u32::MAX, Small::SPI_BITS);
    v.enabled.set(0, LEVEL_SPI, true);
    v.ctlr = CTLR_ENABLE_GRP1;
    v
}

/// What the hardware lets a guest do to one list register between two
/// exits: acknowledge (pending -> active), deactivate (active -> invalid,
/// pending and active -> pending), or both. An invalid register stays so.
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

fn valid_mask(lrs: &[u64]) -> u32 {
    lrs.iter()
        .enumerate()
        .filter(|(_, lr)| lr_state(**lr) != 0)
        .fold(0, |mask, (slot, _)| mask | 1 << slot)
}

proof! {
    /// Whatever interrupts arrive and whatever the guest does to its list
    /// registers and GIC registers: after every refill the registers in use
    /// are exactly the valid ones, so reading back only those at the next
    /// exit gives the model the hardware's true contents; and writing only
    /// the registers the refill reports changed leaves the hardware holding
    /// exactly what the refill computed.
    #[unwind(33)]
    fn refill_and_partial_sync_keep_the_hardware_exact(src) {
        let mut v = configured();
        // What the hardware holds, and the glue's copy of it.
        let mut hardware = [[0u64; LRS]; VCPUS];
        let mut copy = [[0u64; LRS]; VCPUS];
        let mut in_use = [0u32; VCPUS];
        for _ in 0..5 {
            let cpu = src.below(VCPUS as u64) as usize;
            match src.below(5) {
                0 | 1 => {
                    v.set_pending(src.below(u64::from(SGIS)) as u32, cpu);
                }
                2 => {
                    v.set_level(LEVEL_SPI, cpu, src.any());
                }
                3 => {
                    for lr in hardware[cpu].iter_mut() {
                        *lr = guest_step(*lr, src.below(3));
                    }
                }
                _ => match src.below(5) {
                    0 => {
                        v.hw_fired(HW_PPI, cpu);
                    }
                    1 => {
                        v.set_level(HW_PPI, cpu, false);
                    }
                    2 => {
                        let bit = src.below(u64::from(SGIS));
                        let offset = [0x1_0100, 0x1_0180, 0x1_0280][src.below(3) as usize];
                        let base = cpu as u64 * 0x2_0000;
                        v.redist_access(base + offset, 4, true, 1 << bit);
                    }
                    3 => {
                        v.dist_access(cpu, 0, 4, true, src.below(4));
                    }
                    _ => {
                        v.forget_lrs(cpu);
                        hardware[cpu] = [0; LRS];
                        copy[cpu] = [0; LRS];
                        in_use[cpu] = 0;
                    }
                },
            }
            // `cpu` exits: the glue reads back only the registers in use.
            let cpu = src.below(VCPUS as u64) as usize;
            for slot in 0..LRS {
                if in_use[cpu] & (1 << slot) != 0 {
                    copy[cpu][slot] = hardware[cpu][slot];
                }
            }
            assert_eq!(copy[cpu], hardware[cpu], "a register not read back had changed");
            v.sync_lrs(cpu, &copy[cpu]);
            // ... and re-enters, writing only what changed.
            let before = copy[cpu];
            let refill = v.refill_lrs(cpu, &mut copy[cpu]);
            for slot in 0..LRS {
                let changed = refill.changed & (1 << slot) != 0;
                assert_eq!(changed, before[slot] != copy[cpu][slot], "change mask wrong");
                if changed {
                    hardware[cpu][slot] = copy[cpu][slot];
                }
            }
            in_use[cpu] = v.lrs_in_use(cpu);
            assert_eq!(in_use[cpu], valid_mask(&copy[cpu]), "registers in use are not the valid ones");
            assert!(!maintenance_asserted(refill.hcr, &copy[cpu]), "refill left maintenance asserted");
            cover!(refill.changed == 0 && in_use[cpu] != 0, "an entry that writes nothing keeps registers in use");
            cover!(refill.changed != 0 && before != [0; LRS], "a register rewritten while others stay");
            cover!(in_use[cpu].count_ones() == LRS as u32, "every list register in use");
        }
    }
}

#[test]
fn an_exit_with_nothing_in_the_list_registers_writes_nothing() {
    let mut v = configured();
    let mut lrs = [0u64; LRS];
    // Nothing pending: the first entry loads nothing and later ones skip the work.
    let first = v.refill_lrs(0, &mut lrs);
    assert_eq!((first.hcr, first.changed), (ICH_HCR_EN, 0));
    assert_eq!(v.lrs_in_use(0), 0);
    // A register write that changes nothing hints nothing.
    v.redist_access(0x1_0100, 4, true, 0);
    assert_eq!(v.hint[0], 0);
    assert!(!v.full_scan[0]);
    let again = v.refill_lrs(0, &mut lrs);
    assert_eq!((again.hcr, again.changed), (ICH_HCR_EN, 0));
    // An SGI arrives: exactly one register is written, and is then in use.
    v.set_pending(1, 0);
    let loaded = v.refill_lrs(0, &mut lrs);
    assert_eq!(loaded.changed, 1);
    assert_eq!(v.lrs_in_use(0), 1);
    assert_eq!(lrs[0] as u32, 1);
    // Nothing new: the next entry rewrites nothing.
    let same = v.refill_lrs(0, &mut lrs);
    assert_eq!(same.changed, 0);
}
