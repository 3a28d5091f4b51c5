use super::*;

const LRS: usize = 4;
const SGIS: u32 = 6;

fn enabled_vgic() -> Vgic {
    let mut v = Vgic::new(2);
    v.ctlr = 0b10;
    for cpu in 0..2 {
        for sgi in 0..SGIS as usize {
            v.private[cpu][sgi].enabled = true;
            v.private[cpu][sgi].group1 = true;
            v.private[cpu][sgi].priority = (sgi as u8 % 3) * 0x10;
        }
    }
    v
}

fn state(lr: u64) -> u64 {
    lr >> LR_STATE_SHIFT
}

proof! {
    /// Whatever the guest does to its list registers between exits, an interrupt is never in two
    /// list registers at once, an unacknowledged edge is never lost (it is pending in a list
    /// register or in the model), an acknowledged one stays active in a list register, and no
    /// deliverable interrupt waits while a list register is free.
    #[unwind(12)]
    fn list_registers_never_duplicate_or_lose(src) {
        let mut v = enabled_vgic();
        let mut lrs = [0u64; LRS];
        let mut pending_ghost = [false; SGIS as usize];
        let mut active_ghost = [false; SGIS as usize];
        for _ in 0..10 {
            match src.below(4) {
                0 | 1 => {
                    let sgi = src.below(u64::from(SGIS)) as u32;
                    v.set_pending(sgi, 0);
                    pending_ghost[sgi as usize] = true;
                }
                2 => {
                    // The guest acknowledges the pending entry in one list register.
                    let slot = src.below(LRS as u64) as usize;
                    if state(lrs[slot]) == 0b01 {
                        let sgi = (lrs[slot] & 0xffff_ffff) as usize;
                        lrs[slot] = (lrs[slot] & !(3 << 62)) | (0b10 << 62);
                        pending_ghost[sgi] = false;
                        active_ghost[sgi] = true;
                    }
                }
                _ => {
                    // The guest completes an active entry (P+A becomes P).
                    let slot = src.below(LRS as u64) as usize;
                    if state(lrs[slot]) & 0b10 != 0 {
                        let sgi = (lrs[slot] & 0xffff_ffff) as usize;
                        lrs[slot] &= !(1 << 63);
                        active_ghost[sgi] = false;
                    }
                }
            }
            v.sync_lrs(0, &lrs);
            v.flush_lrs(0, &mut lrs);
            // Nothing deliverable waits while a list register is free.
            if lrs.iter().any(|l| state(*l) == 0) {
                assert!(v.best_candidate(0).is_none(), "deliverable interrupt left out of a free list register");
            }
            for sgi in 0..SGIS {
                let holders = lrs.iter().filter(|l| state(**l) != 0 && (**l & 0xffff_ffff) as u32 == sgi).count();
                assert!(holders <= 1, "interrupt in two list registers");
                let in_lr_pending = lrs.iter().any(|l| state(*l) & 1 != 0 && (*l & 0xffff_ffff) as u32 == sgi);
                let in_lr_active = lrs.iter().any(|l| state(*l) & 2 != 0 && (*l & 0xffff_ffff) as u32 == sgi);
                if pending_ghost[sgi as usize] {
                    assert!(in_lr_pending || v.private[0][sgi as usize].latch, "pending interrupt lost");
                }
                if active_ghost[sgi as usize] {
                    assert!(in_lr_active, "active interrupt dropped from the list registers");
                }
            }
        }
    }
}

proof! {
    /// No distributor or redistributor access, whatever offset, width or value, panics, and
    /// reads of 32-bit registers fit in 32 bits.
    #[unwind(40)]
    fn register_accesses_never_panic(src) {
        let mut v = Vgic::new(1 + src.below(2) as usize);
        let offset = if src.any() { src.below(0x1_0000) } else { src.any() };
        let size = [1u8, 2, 4, 8, 3][src.below(5) as usize];
        let write: bool = src.any();
        let value: u64 = src.any();
        if let MmioResult::Read(r) = v.dist_access(0, offset, size, write, value) {
            if size <= 4 {
                assert!(r >> (8 * u32::from(size)) == 0);
            }
        }
        let _ = v.redist_access(if src.any() { src.below(0x4_0000) } else { offset }, size, write, value);
    }
}

proof! {
    /// SGIs only ever target existing vCPUs.
    #[unwind(9)]
    fn sgi_targets_exist(src) {
        let mut v = enabled_vgic();
        let n = v.num_vcpus();
        let kick = v.send_sgi(src.below(2) as usize, src.any());
        assert_eq!(kick >> n, 0);
    }
}
