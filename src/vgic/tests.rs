use super::*;

const GICD_CTLR: u64 = 0x0;
const SGI: u64 = 0x1_0000;

fn write32(v: &mut Vgic, offset: u64, value: u32) {
    assert_eq!(
        v.dist_access(0, offset, 4, true, u64::from(value)),
        MmioResult::Written
    );
}

fn redist_write(v: &mut Vgic, cpu: u64, offset: u64, value: u32) {
    assert_eq!(
        v.redist_access(cpu * 0x2_0000 + offset, 4, true, u64::from(value)),
        MmioResult::Written
    );
}

fn lr_state(lr: u64) -> u64 {
    lr >> 62
}

/// Linux's gic_dist_init / gic_cpu_init, in order.
fn linux_init(v: &mut Vgic) {
    write32(v, GICD_CTLR, 0);
    assert!(matches!(v.dist_access(0, 0x4, 4, false, 0), MmioResult::Read(t) if t & 0x1f == 3));
    for word in 1..4 {
        write32(v, 0x80 + word * 4, u32::MAX); // IGROUPR: group 1
        write32(v, 0x180 + word * 4, u32::MAX); // ICENABLER
    }
    for intid in 32..128u64 {
        assert_eq!(
            v.dist_access(0, 0x400 + intid, 1, true, 0xa0),
            MmioResult::Written
        );
    }
    write32(v, GICD_CTLR, (1 << 4) | 0b11);
    for cpu in 0..v.num_vcpus() as u64 {
        redist_write(v, cpu, 0x14, 0); // wake
        assert_eq!(
            v.redist_access(cpu * 0x2_0000 + 0x14, 4, false, 0),
            MmioResult::Read(0)
        );
        redist_write(v, cpu, SGI + 0x80, u32::MAX);
        for intid in 0..32 {
            assert_eq!(
                v.redist_access(cpu * 0x2_0000 + SGI + 0x400 + intid, 1, true, 0xa0),
                MmioResult::Written
            );
        }
        redist_write(v, cpu, SGI + 0x100, 0xffff | (1 << 27)); // SGIs and the virtual timer
    }
}

#[test]
fn registers_read_as_linux_expects() {
    let mut v = Vgic::new(2);
    assert_eq!(
        v.dist_access(0, 0xffe8, 4, false, 0),
        MmioResult::Read(0x3b)
    );
    assert!(
        matches!(v.dist_access(0, 0x0, 4, false, 0), MmioResult::Read(c) if c & (1 << 4) != 0 && c & (1 << 31) == 0)
    );
    // GICR_TYPER: vCPU 1 is last, affinity 1.
    assert_eq!(
        v.redist_access(0x2_0000 + 8, 8, false, 0),
        MmioResult::Read((1 << 32) | (1 << 8) | (1 << 4))
    );
    assert_eq!(v.redist_access(8, 8, false, 0), MmioResult::Read(0));
    assert_eq!(v.redist_access(0x14, 4, false, 0), MmioResult::Read(0b110));
    // Wrong widths, misalignment and missing redistributors abort.
    assert_eq!(v.dist_access(0, 0x4, 1, false, 0), MmioResult::BadAccess);
    assert_eq!(v.dist_access(0, 0x2, 4, false, 0), MmioResult::BadAccess);
    assert_eq!(
        v.redist_access(2 * 0x2_0000, 4, false, 0),
        MmioResult::BadAccess
    );
    // Read-only registers ignore writes.
    let typer = v.dist_access(0, 0x4, 4, false, 0);
    write32(&mut v, 0x4, 0);
    assert_eq!(v.dist_access(0, 0x4, 4, false, 0), typer);
}

#[test]
fn delivers_a_sgi_between_vcpus() {
    let mut v = Vgic::new(2);
    linux_init(&mut v);
    // vCPU 0 sends SGI 3 to vCPU 1 (TargetList bit 1).
    assert_eq!(v.send_sgi(0, (3 << 24) | 0b10), 0b10);
    assert!(v.has_pending(1));
    assert!(!v.has_pending(0));
    let mut lrs = [0u64; 4];
    assert_eq!(v.flush_lrs(1, &mut lrs) & 1, 1);
    assert_eq!(lrs[0] & 0xffff_ffff, 3);
    assert_eq!(lr_state(lrs[0]), 0b01);
    // The guest acknowledges (active), then completes (invalid).
    lrs[0] = (lrs[0] & !(3 << 62)) | (0b10 << 62);
    v.sync_lrs(1, &lrs);
    v.flush_lrs(1, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 0b10);
    lrs[0] &= !(3 << 62);
    v.sync_lrs(1, &lrs);
    assert!(!v.has_pending(1));
    v.flush_lrs(1, &mut lrs);
    assert_eq!(lrs, [0; 4]);
    // IRM broadcast reaches everyone but the sender.
    assert_eq!(v.send_sgi(1, (1 << 40) | (5 << 24)), 0b01);
    // Targets with Aff1 != 0 match nobody.
    assert_eq!(v.send_sgi(0, (1 << 16) | 0b11), 0);
}

#[test]
fn forwards_the_virtual_timer_with_the_hw_bit() {
    let mut v = Vgic::new(1);
    linux_init(&mut v);
    v.set_hw(27, 0, Some(27));
    assert_eq!(v.set_pending(27, 0), Some(0));
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    assert_eq!(lrs[0] & (1 << 61), 1 << 61);
    assert_eq!((lrs[0] >> 32) & 0x3ff, 27);
    assert_eq!((lrs[0] >> 48) & 0xff, 0xa0);
    assert_eq!(lrs[0] & (1 << 60), 1 << 60);
}

#[test]
fn spi_routing_and_enable_changes() {
    let mut v = Vgic::new(2);
    linux_init(&mut v);
    v.set_hw(33, 0, Some(33));
    write32(&mut v, 0x100 + 4, 1 << 1); // enable SPI 33
    let changes: alloc::vec::Vec<_> = v.take_hw_enable_changes().into_iter().flatten().collect();
    assert_eq!(changes, [(33, true, 0)]);
    assert_eq!(
        v.dist_access(0, 0x6000 + 33 * 8, 8, true, 1),
        MmioResult::Written
    );
    assert_eq!(v.set_pending(33, 0), Some(1));
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    assert_eq!(lrs, [0; 4]);
    v.flush_lrs(1, &mut lrs);
    assert_eq!(lrs[0] & 0xffff_ffff, 33);
    assert_eq!(
        v.dist_access(0, 0x6000 + 33 * 8, 8, false, 0),
        MmioResult::Read(1)
    );
}

#[test]
fn full_list_registers_keep_the_rest_pending() {
    let mut v = Vgic::new(1);
    linux_init(&mut v);
    for sgi in 0..6 {
        v.set_pending(sgi, 0);
    }
    let mut lrs = [0u64; 4];
    let hcr = v.flush_lrs(0, &mut lrs);
    assert_eq!(hcr & 0b10, 0b10, "underflow maintenance requested");
    // The guest takes and completes all four.
    for lr in lrs.iter_mut() {
        *lr &= !(3 << 62);
    }
    v.sync_lrs(0, &lrs);
    let hcr = v.flush_lrs(0, &mut lrs);
    assert_eq!(hcr & 0b10, 0);
    let delivered: alloc::vec::Vec<u64> = lrs
        .iter()
        .filter(|l| lr_state(**l) == 1)
        .map(|l| l & 0xff)
        .collect();
    assert_eq!(delivered, [4, 5]);
}

#[test]
fn higher_priority_evicts_a_pending_only_entry() {
    let mut v = Vgic::new(1);
    linux_init(&mut v);
    for sgi in 0..4 {
        v.set_pending(sgi, 0);
    }
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    assert_eq!(
        v.redist_access(0x1_0000 + 0x400 + 9, 1, true, 0x10),
        MmioResult::Written
    );
    v.set_pending(9, 0);
    v.sync_lrs(0, &lrs);
    v.flush_lrs(0, &mut lrs);
    assert!(lrs.iter().any(|l| l & 0xff == 9));
    assert!(v.has_pending(0));
    // The evicted SGI is still pending in the model.
    let in_lrs: alloc::vec::Vec<u64> = lrs.iter().map(|l| l & 0xff).collect();
    let evicted = (0..4).find(|s| !in_lrs.contains(s)).unwrap();
    assert!(v.irq(0, evicted as u32).unwrap().pending());
}

#[test]
fn edge_arriving_after_acknowledge_is_not_lost() {
    let mut v = Vgic::new(1);
    linux_init(&mut v);
    v.set_pending(1, 0);
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    lrs[0] = (lrs[0] & !(3 << 62)) | (0b10 << 62); // acknowledged
    v.set_pending(1, 0); // a second edge, from another vCPU, before the exit
    v.sync_lrs(0, &lrs);
    v.flush_lrs(0, &mut lrs);
    assert_eq!(lr_state(lrs[0]), 0b11, "pending and active");
}
