use super::lrs::{maintenance_asserted, ICH_HCR_EN, ICH_HCR_UIE};
use super::*;
use alloc::vec::Vec;

const GICD_CTLR: u64 = 0x0;
const GICD_TYPER: u64 = 0x4;
const GICD_ISENABLER: u64 = 0x100;
const GICD_IROUTER: u64 = 0x6000;
const GICR_STRIDE: u64 = 0x2_0000;
const GICR_TYPER: u64 = 0x8;
const GICR_WAKER: u64 = 0x14;
const SGI: u64 = 0x1_0000;
const PIDR2: u64 = 0xffe8;
const LR_HW: u64 = 1 << 61;
const LR_GROUP1: u64 = 1 << 60;
const LR_EOI: u64 = 1 << 41;
const VTIMER: u32 = 27;
const UART: u32 = 33;
const VIRTIO: u32 = 48;

fn read(result: MmioResult) -> u64 {
    match result {
        MmioResult::Read(value) => value,
        other => panic!("expected a read, got {other:?}"),
    }
}

fn dist_read(v: &mut Vgic, offset: u64) -> u64 {
    read(v.dist_access(0, offset, 4, false, 0))
}

fn dist_write(v: &mut Vgic, offset: u64, value: u32) {
    let result = v.dist_access(0, offset, 4, true, u64::from(value));
    assert_eq!(result, MmioResult::Written, "GICD write at {offset:#x}");
}

fn redist_read(v: &mut Vgic, cpu: usize, offset: u64, size: u8) -> u64 {
    read(v.redist_access(cpu as u64 * GICR_STRIDE + offset, size, false, 0))
}

fn redist_write(v: &mut Vgic, cpu: usize, offset: u64, value: u32) {
    let result = v.redist_access(cpu as u64 * GICR_STRIDE + offset, 4, true, value.into());
    assert_eq!(result, MmioResult::Written, "GICR write at {offset:#x}");
}

fn state(lr: u64) -> u64 {
    lr >> 62
}

fn intid(lr: u64) -> u32 {
    lr as u32
}

/// The guest acknowledges the interrupt in `lr` (pending -> active).
fn acknowledge(lr: &mut u64) {
    assert_eq!(state(*lr), 0b01, "acknowledging a non-pending entry");
    *lr = (*lr & !(3 << 62)) | (0b10 << 62);
}

/// The guest deactivates the interrupt in `lr` (drops the active state).
fn deactivate(lr: &mut u64) {
    assert_ne!(state(*lr) & 0b10, 0, "deactivating an inactive entry");
    *lr &= !(1 << 63);
}

fn slot_of(lrs: &[u64], id: u32) -> Option<usize> {
    lrs.iter().position(|l| state(*l) != 0 && intid(*l) == id)
}

/// An exit and re-entry of `cpu`.
fn exit_and_enter(v: &mut Vgic, cpu: usize, lrs: &mut [u64]) -> u64 {
    v.sync_lrs(cpu, lrs);
    v.flush_lrs(cpu, lrs)
}

/// Linux 6.1's gic_dist_init, then gic_cpu_init on every CPU, in order
/// (drivers/irqchip/irq-gic-v3.c), then the interrupts a booted Linux
/// enables: its IPIs (SGIs 0-7) and the virtual timer (PPI 27, level).
fn linux_init(v: &mut Vgic) {
    // gic_of_init: the distributor must say GICv3.
    assert_eq!(dist_read(v, PIDR2) & 0xf0, 0x30);
    // gic_dist_init: disable, wait for RWP.
    dist_write(v, GICD_CTLR, 0);
    assert_eq!(dist_read(v, GICD_CTLR) & (1 << 31), 0);
    let typer = dist_read(v, GICD_TYPER);
    let lines = 32 * ((typer & 0x1f) + 1);
    assert_eq!(lines, 128);
    assert_eq!((typer >> 19) & 0x1f, 9, "IDbits: 10-bit INTIDs");
    assert_eq!(typer & (1 << 17), 0, "no LPIs");
    assert_eq!(typer & (1 << 16), 0, "no MBIS");
    assert_eq!(typer & (1 << 8), 0, "no extended SPIs");
    for i in (32..lines).step_by(32) {
        dist_write(v, 0x80 + i / 8, u32::MAX); // IGROUPR: Group 1
    }
    // gic_dist_config: level, default priority, inactive, disabled.
    for i in (32..lines).step_by(16) {
        dist_write(v, 0xc00 + i / 4, 0); // ICFGR
    }
    for i in (32..lines).step_by(4) {
        dist_write(v, 0x400 + i, 0xa0a0_a0a0); // IPRIORITYR, 32-bit
    }
    for i in (32..lines).step_by(32) {
        dist_write(v, 0x380 + i / 8, u32::MAX); // ICACTIVER
        dist_write(v, 0x180 + i / 8, u32::MAX); // ICENABLER
    }
    // ARE_NS | EnableGrp1A | EnableGrp1 in Linux's naming.
    dist_write(v, GICD_CTLR, (1 << 4) | 0b11);
    let ctlr = dist_read(v, GICD_CTLR);
    assert_ne!(ctlr & (1 << 4), 0, "affinity routing on");
    for i in 32..lines {
        let result = v.dist_access(0, GICD_IROUTER + 8 * i, 8, true, 0);
        assert_eq!(result, MmioResult::Written); // route to the boot CPU
    }
    for cpu in 0..v.num_vcpus() {
        // gic_populate_rdist: walk the frames until our affinity, check PIDR2.
        let found = (0..v.num_vcpus()).find(|&frame| {
            assert_eq!(redist_read(v, frame, PIDR2, 4) & 0xf0, 0x30);
            let typer = redist_read(v, frame, GICR_TYPER, 8);
            typer >> 32 == cpu as u64
        });
        assert_eq!(found, Some(cpu));
        // gic_enable_redist: clear ProcessorSleep, wait for ChildrenAsleep to clear.
        let waker = redist_read(v, cpu, GICR_WAKER, 4) as u32;
        redist_write(v, cpu, GICR_WAKER, waker & !(1 << 1));
        assert_eq!(redist_read(v, cpu, GICR_WAKER, 4) & (1 << 2), 0);
        // gic_cpu_init: SGIs/PPIs in Group 1, then gic_cpu_config.
        redist_write(v, cpu, SGI + 0x80, u32::MAX);
        redist_write(v, cpu, SGI + 0x380, u32::MAX); // ICACTIVER0
        redist_write(v, cpu, SGI + 0x180, u32::MAX); // ICENABLER0
        for i in (0..32).step_by(4) {
            redist_write(v, cpu, SGI + 0x400 + i, 0xa0a0_a0a0);
        }
        assert_eq!(redist_read(v, cpu, 0x0, 4) & (1 << 3), 0, "GICR_CTLR.RWP");
        // IPIs, and the timer: level-sensitive (ICFGR1 bit pair cleared).
        redist_write(v, cpu, SGI + 0x100, 0xff);
        let icfgr1 = redist_read(v, cpu, SGI + 0xc04, 4) as u32;
        redist_write(v, cpu, SGI + 0xc04, icfgr1 & !(3 << ((VTIMER - 16) * 2)));
        redist_write(v, cpu, SGI + 0x100, 1 << VTIMER);
    }
}

/// Linux's gic_send_sgi encoding of ICC_SGI1R_EL1 for CPUs in cluster 0.
fn sgi1r(sgi: u64, target_list: u64) -> u64 {
    (sgi << 24) | target_list
}

#[test]
fn registers_read_as_linux_expects() {
    let mut v = <Vgic>::new(2);
    assert_eq!(dist_read(&mut v, PIDR2), 0x3b);
    assert_eq!(dist_read(&mut v, 0x8), 0x43b, "IIDR: Arm");
    assert_eq!(dist_read(&mut v, 0xc), 0, "TYPER2");
    assert_eq!(dist_read(&mut v, 0x10), 0, "STATUSR");
    assert_eq!(dist_read(&mut v, 0xd04), 0, "IGRPMODR");
    // DS = 1, ARE = 1, nothing enabled yet.
    assert_eq!(dist_read(&mut v, GICD_CTLR), (1 << 6) | (1 << 4));
    // GICR_TYPER as one 64-bit or two 32-bit reads: vCPU 1 is last.
    let last = (1 << 32) | (1 << 8) | (1 << 4);
    assert_eq!(redist_read(&mut v, 1, GICR_TYPER, 8), last);
    assert_eq!(redist_read(&mut v, 1, GICR_TYPER, 4), last & 0xffff_ffff);
    assert_eq!(redist_read(&mut v, 1, GICR_TYPER + 4, 4), last >> 32);
    assert_eq!(redist_read(&mut v, 0, GICR_TYPER, 8), 0);
    // Redistributors start asleep.
    assert_eq!(redist_read(&mut v, 0, GICR_WAKER, 4), 0b110);
    assert_eq!(redist_read(&mut v, 0, PIDR2, 4), 0x3b);
    assert_eq!(redist_read(&mut v, 0, SGI + 0xe00, 4), 0, "NSACR");
    assert_eq!(
        redist_read(&mut v, 0, SGI + 0xc00, 4),
        0xaaaa_aaaa,
        "SGIs are edge"
    );
}

#[test]
fn bad_widths_offsets_and_frames_abort() {
    let mut v = <Vgic>::new(2);
    let bad = MmioResult::BadAccess;
    assert_eq!(v.dist_access(0, GICD_TYPER, 1, false, 0), bad);
    assert_eq!(v.dist_access(0, GICD_TYPER, 8, false, 0), bad);
    assert_eq!(v.dist_access(0, 0x2, 4, false, 0), bad, "misaligned");
    assert_eq!(v.dist_access(0, 0x100, 2, true, 1), bad);
    assert_eq!(
        v.dist_access(0, 0x1_0000, 4, false, 0),
        bad,
        "beyond the frame"
    );
    assert_eq!(v.dist_access(0, u64::MAX - 3, 4, false, 0), bad);
    assert_eq!(v.dist_access(0, 0x6108, 1, false, 0), bad, "IROUTER byte");
    assert_eq!(v.dist_access(0, 0x400, 3, false, 0), bad);
    assert_eq!(
        v.redist_access(2 * GICR_STRIDE, 4, false, 0),
        bad,
        "no vCPU 2"
    );
    assert_eq!(v.redist_access(!3, 4, false, 0), bad);
    assert_eq!(v.redist_access(GICR_TYPER + 4, 8, false, 0), bad);
    assert_eq!(v.redist_access(GICR_WAKER, 8, false, 0), bad);
    assert_eq!(v.redist_access(SGI + 0x100, 1, true, 1), bad);
    // Byte and word priorities are fine; reserved words are RAZ/WI.
    assert_eq!(v.dist_access(0, 0x421, 1, true, 0x80), MmioResult::Written);
    assert_eq!(
        v.dist_access(0, 0x420, 4, false, 0),
        MmioResult::Read(0x8000)
    );
    assert_eq!(v.dist_access(0, 0x5000, 4, true, 7), MmioResult::Written);
    assert_eq!(v.dist_access(0, 0x5000, 4, false, 0), MmioResult::Read(0));
    // Read-only registers ignore writes.
    let typer = dist_read(&mut v, GICD_TYPER);
    dist_write(&mut v, GICD_TYPER, !typer as u32);
    assert_eq!(dist_read(&mut v, GICD_TYPER), typer);
    redist_write(&mut v, 1, GICR_TYPER, 0);
    assert_eq!(redist_read(&mut v, 1, GICR_TYPER, 8) & (1 << 4), 1 << 4);
    // The distributor's words for SGIs and PPIs are RAZ/WI with affinity routing.
    dist_write(&mut v, GICD_ISENABLER, u32::MAX);
    assert_eq!(dist_read(&mut v, GICD_ISENABLER), 0);
    assert!(!v.is_enabled(0, 0));
}

#[test]
fn injection_with_bad_numbers_is_refused() {
    let mut v = <Vgic>::new(2);
    linux_init(&mut v);
    assert_eq!(v.set_pending(NUM_INTIDS, 0), None);
    assert_eq!(v.set_pending(u32::MAX, 0), None);
    assert_eq!(v.set_pending(3, 2), None, "no vCPU 2");
    assert_eq!(v.set_pending(3, usize::MAX), None);
    assert_eq!(v.set_level(1020, 0, true), None);
    v.set_hw(u32::MAX, 0, Some(27));
    v.set_hw(40, 0, Some(1023)); // special INTID: refused
    assert_eq!(v.hw(0, 40), None);
    assert!(!v.has_pending(7));
    let mut lrs = [u64::MAX; 4];
    assert_eq!(v.flush_lrs(5, &mut lrs), ICH_HCR_EN);
    assert_eq!(lrs, [0; 4]);
    assert_eq!(v.sync_lrs(5, &lrs), 0);
    assert_eq!(<Vgic>::new(0).num_vcpus(), 1);
    assert_eq!(<Vgic>::new(100).num_vcpus(), MAX_VCPUS);
}

#[test]
fn delivers_a_sgi_between_vcpus() {
    let mut v = <Vgic>::new(2);
    linux_init(&mut v);
    // vCPU 0 sends IPI 3 to vCPU 1 (TargetList bit 1).
    assert_eq!(v.send_sgi(0, sgi1r(3, 0b10)), 0b10);
    assert!(v.has_pending(1));
    assert!(!v.has_pending(0));
    let mut lrs = [0u64; 4];
    assert_eq!(v.flush_lrs(1, &mut lrs), ICH_HCR_EN);
    assert_eq!(intid(lrs[0]), 3);
    assert_eq!(state(lrs[0]), 0b01);
    assert_eq!(
        lrs[0] & (LR_HW | LR_EOI),
        0,
        "software edge: no HW, no EOI exit"
    );
    assert_eq!(lrs[0] & LR_GROUP1, LR_GROUP1);
    assert_eq!((lrs[0] >> 48) & 0xff, 0xa0);
    // The guest acknowledges (active), exits, then completes (invalid).
    acknowledge(&mut lrs[0]);
    exit_and_enter(&mut v, 1, &mut lrs);
    assert_eq!(state(lrs[0]), 0b10);
    assert!(!v.has_pending(1));
    deactivate(&mut lrs[0]);
    exit_and_enter(&mut v, 1, &mut lrs);
    assert_eq!(lrs, [0; 4]);
    // IRM broadcast reaches everyone but the sender.
    assert_eq!(v.send_sgi(1, (1 << 40) | (5 << 24)), 0b01);
    // A target list in another cluster matches nobody.
    assert_eq!(v.send_sgi(0, (1 << 16) | 0b11), 0);
    assert_eq!(v.send_sgi(0, (1 << 44) | 0b11), 0, "range selector 1");
    // A disabled SGI stays pending without a kick until enabled.
    redist_write(&mut v, 0, SGI + 0x180, 1 << 9);
    assert_eq!(v.send_sgi(1, sgi1r(9, 0b01)), 0);
}

#[test]
fn forwards_the_virtual_timer_with_the_hw_bit() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    v.set_hw(VTIMER, 0, Some(VTIMER));
    assert_eq!(v.set_pending(VTIMER, 0), Some(0));
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    let lr = lrs[0];
    assert_eq!(intid(lr), VTIMER);
    assert_eq!(lr & LR_HW, LR_HW);
    assert_eq!((lr >> 32) & 0x3ff, u64::from(VTIMER), "pINTID");
    assert_eq!(lr & LR_GROUP1, LR_GROUP1);
    assert_eq!((lr >> 48) & 0xff, 0xa0);
    assert_eq!(state(lr), 0b01);
    acknowledge(&mut lrs[0]);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(state(lrs[0]), 0b10);
    // Pending-and-active is not allowed with HW=1: a new expiry waits in the model.
    v.set_pending(VTIMER, 0);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(state(lrs[0]), 0b10);
    // The guest's deactivation (which deactivates the physical timer
    // interrupt) lets the next one in.
    deactivate(&mut lrs[0]);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(state(lrs[0]), 0b01);
    assert_eq!(intid(lrs[0]), VTIMER);
}

#[test]
fn delivers_an_assigned_spi_and_follows_enable_and_routing() {
    let mut v = <Vgic>::new(2);
    linux_init(&mut v);
    v.set_hw(UART, 0, Some(UART));
    dist_write(&mut v, GICD_ISENABLER + 4, 1 << (UART - 32));
    assert!(v.is_enabled(UART, 1));
    let changes: Vec<_> = v.take_hw_enable_changes().into_iter().flatten().collect();
    assert_eq!(changes, [(UART, true, 0)]);
    assert!(!v.has_hw_enable_changes());
    // irq_set_affinity to CPU 1: the glue hears about the new route.
    let router = GICD_IROUTER + 8 * u64::from(UART);
    assert_eq!(v.dist_access(0, router, 8, true, 1), MmioResult::Written);
    assert_eq!(v.dist_access(0, router, 8, false, 0), MmioResult::Read(1));
    let changes: Vec<_> = v.take_hw_enable_changes().into_iter().flatten().collect();
    assert_eq!(changes, [(UART, true, 1)]);
    // The physical SPI fires: vCPU 1 gets it.
    assert_eq!(v.set_pending(UART, 0), Some(1));
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    assert_eq!(lrs, [0; 4]);
    v.flush_lrs(1, &mut lrs);
    assert_eq!(intid(lrs[0]), UART);
    assert_eq!(lrs[0] & LR_HW, LR_HW);
    acknowledge(&mut lrs[0]);
    deactivate(&mut lrs[0]);
    exit_and_enter(&mut v, 1, &mut lrs);
    assert_eq!(lrs, [0; 4]);
    assert!(!v.has_pending(1));
    // Disabling is reported too.
    dist_write(&mut v, 0x180 + 4, 1 << (UART - 32));
    let changes: Vec<_> = v.take_hw_enable_changes().into_iter().flatten().collect();
    assert_eq!(changes, [(UART, false, 1)]);
}

#[test]
fn many_hw_enable_changes_are_handed_out_in_turns() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    for spi in 64..96 {
        v.set_hw(spi, 0, Some(spi));
    }
    dist_write(&mut v, GICD_ISENABLER + 8, u32::MAX);
    let mut seen = Vec::new();
    while v.has_hw_enable_changes() {
        seen.extend(v.take_hw_enable_changes().into_iter().flatten());
    }
    assert_eq!(seen.len(), 32);
    assert!(seen
        .iter()
        .all(|&(_, enabled, target)| enabled && target == 0));
}

#[test]
fn irouter_naming_no_vcpu_delivers_to_vcpu_0() {
    let mut v = <Vgic>::new(2);
    linux_init(&mut v);
    let router = GICD_IROUTER + 8 * 40;
    for value in [1 << 31, 5, 1 << 8, 1 << 32 | 1] {
        assert_eq!(
            v.dist_access(0, router, 8, true, value),
            MmioResult::Written
        );
        assert_eq!(v.route_of(40), 0);
        assert_eq!(
            v.dist_access(0, router, 8, false, 0),
            MmioResult::Read(value)
        );
    }
    // 32-bit halves.
    assert_eq!(v.dist_access(0, router, 4, true, 1), MmioResult::Written);
    assert_eq!(
        v.dist_access(0, router + 4, 4, true, 0),
        MmioResult::Written
    );
    assert_eq!(v.route_of(40), 1);
    assert_eq!(v.dist_access(0, router, 8, false, 0), MmioResult::Read(1));
}

#[test]
fn a_pending_spi_is_delivered_once_the_guest_enables_it() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    // The device interrupts before its driver enables the line.
    assert_eq!(v.set_pending(40, 0), None);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(lrs, [0; 4]);
    dist_write(&mut v, GICD_ISENABLER + 4, 1 << 8);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(intid(lrs[0]), 40);
    // Likewise when the group is enabled after the interrupt.
    acknowledge(&mut lrs[0]);
    deactivate(&mut lrs[0]);
    exit_and_enter(&mut v, 0, &mut lrs);
    dist_write(&mut v, GICD_CTLR, 0);
    v.set_pending(40, 0);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(lrs, [0; 4]);
    dist_write(&mut v, GICD_CTLR, 0b10);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(intid(lrs[0]), 40);
}

#[test]
fn group_enables_follow_the_single_security_state_layout() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    // Only EnableGrp0: Group 1 interrupts stay in the model.
    dist_write(&mut v, GICD_CTLR, 0b01);
    v.set_pending(2, 0);
    assert!(!v.has_pending(0));
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    assert_eq!(lrs, [0; 4]);
    // A Group 0 interrupt is delivered as such (LR Group bit clear).
    redist_write(&mut v, 0, SGI + 0x80, !(1 << 4));
    v.set_pending(4, 0);
    v.flush_lrs(0, &mut lrs);
    assert_eq!(intid(lrs[0]), 4);
    assert_eq!(lrs[0] & LR_GROUP1, 0);
    dist_write(&mut v, GICD_CTLR, 0b10);
    assert_eq!(dist_read(&mut v, GICD_CTLR), 0b101_0010);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(
        intid(lrs[0]),
        2,
        "Group 0 entry withdrawn, Group 1 delivered"
    );
}

#[test]
fn priorities_keep_five_bits() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    assert_eq!(
        v.dist_access(0, 0x400 + 40, 1, true, 0xa7),
        MmioResult::Written
    );
    assert_eq!(
        v.dist_access(0, 0x400 + 40, 1, false, 0),
        MmioResult::Read(0xa0)
    );
    redist_write(&mut v, 0, SGI + 0x400, 0xffff_ffff);
    assert_eq!(redist_read(&mut v, 0, SGI + 0x400, 4), 0xf8f8_f8f8);
    v.set_pending(1, 0);
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    assert_eq!((lrs[0] >> 48) & 0xff, 0xf8);
}

#[test]
fn level_line_dropped_before_acknowledge_leaves_nothing_behind() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    dist_write(&mut v, GICD_ISENABLER + 4, 1 << (VIRTIO - 32));
    assert_eq!(v.set_level(VIRTIO, 0, true), Some(0));
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    assert_eq!(intid(lrs[0]), VIRTIO);
    assert_eq!(
        lrs[0] & LR_EOI,
        LR_EOI,
        "deactivation exits to resample the line"
    );
    // The guest polls with interrupts masked: it exits (the list register
    // still pending), and its write to the device lowers the line.
    v.sync_lrs(0, &lrs);
    assert_eq!(v.set_level(VIRTIO, 0, false), None);
    v.flush_lrs(0, &mut lrs);
    assert_eq!(lrs, [0; 4], "no spurious interrupt");
    assert!(!v.has_pending(0));
}

#[test]
fn level_line_still_high_after_completion_is_delivered_again() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    dist_write(&mut v, GICD_ISENABLER + 4, 1 << (VIRTIO - 32));
    v.set_level(VIRTIO, 0, true);
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    acknowledge(&mut lrs[0]);
    // Exit while the handler runs: the line is still high, so the entry is
    // pending and active.
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(state(lrs[0]), 0b11);
    // The handler acknowledges the device: the line drops; active only.
    v.sync_lrs(0, &lrs);
    v.set_level(VIRTIO, 0, false);
    v.flush_lrs(0, &mut lrs);
    assert_eq!(state(lrs[0]), 0b10);
    // New work raises the line again before the EOI: on the maintenance
    // exit after deactivation, the interrupt comes back.
    assert_eq!(v.set_level(VIRTIO, 0, true), None, "the EOI exit resamples");
    deactivate(&mut lrs[0]);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(intid(lrs[0]), VIRTIO);
    assert_eq!(state(lrs[0]), 0b01);
    // ICPENDR cannot clear a level interrupt whose line is high.
    v.sync_lrs(0, &lrs);
    dist_write(&mut v, 0x280 + 4, 1 << (VIRTIO - 32));
    assert_ne!(dist_read(&mut v, 0x200 + 4) & (1 << (VIRTIO - 32)), 0);
}

#[test]
fn full_list_registers_keep_the_rest_pending() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    for sgi in 0..6 {
        v.set_pending(sgi, 0);
    }
    let mut lrs = [0u64; 4];
    let hcr = v.flush_lrs(0, &mut lrs);
    assert_eq!(
        hcr,
        ICH_HCR_EN | ICH_HCR_UIE,
        "underflow maintenance requested"
    );
    // The guest takes and completes all four; the underflow interrupt exits.
    for lr in lrs.iter_mut() {
        acknowledge(lr);
        deactivate(lr);
    }
    let hcr = exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(hcr, ICH_HCR_EN);
    let delivered: Vec<u32> = lrs
        .iter()
        .filter(|l| state(**l) == 1)
        .map(|l| intid(*l))
        .collect();
    assert_eq!(delivered, [4, 5]);
}

#[test]
fn higher_priority_evicts_a_pending_only_entry() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    for sgi in 0..4 {
        v.set_pending(sgi, 0);
    }
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    acknowledge(&mut lrs[0]); // active entries are never evicted
    v.sync_lrs(0, &lrs);
    assert_eq!(
        v.redist_access(SGI + 0x400 + 7, 1, true, 0x10),
        MmioResult::Written
    );
    v.set_pending(7, 0);
    v.flush_lrs(0, &mut lrs);
    assert!(slot_of(&lrs, 7).is_some());
    assert_eq!(state(lrs[0]), 0b10);
    // The evicted SGI is still pending in the model.
    let evicted = (1..4).find(|s| slot_of(&lrs, *s).is_none()).unwrap();
    assert!(v.pending(0) & bit(evicted) != 0);
    assert!(v.has_pending(0));
}

#[test]
fn edge_arriving_after_acknowledge_is_not_lost() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    v.set_pending(1, 0);
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    acknowledge(&mut lrs[0]);
    // A second edge from another vCPU, before this one exits.
    assert_eq!(v.set_pending(1, 0), Some(0));
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(state(lrs[0]), 0b11, "pending and active");
}

#[test]
fn a_second_flush_without_sync_loses_nothing() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    v.set_pending(1, 0);
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    let first = lrs;
    v.flush_lrs(0, &mut lrs);
    assert_eq!(lrs, first);
    v.forget_lrs(0);
    assert!(v.has_pending(0));
    v.flush_lrs(0, &mut lrs);
    assert_eq!(lrs, first);
}

#[test]
fn a_spi_rerouted_in_flight_finishes_where_it_started() {
    let mut v = <Vgic>::new(2);
    linux_init(&mut v);
    dist_write(&mut v, GICD_ISENABLER + 4, 1 << 8);
    v.set_pending(40, 0);
    let mut lrs0 = [0u64; 4];
    let mut lrs1 = [0u64; 4];
    v.flush_lrs(0, &mut lrs0);
    acknowledge(&mut lrs0[0]);
    // vCPU 1 moves the SPI to itself while vCPU 0 handles it.
    v.sync_lrs(1, &lrs1);
    let router = GICD_IROUTER + 8 * 40;
    assert_eq!(v.dist_access(1, router, 8, true, 1), MmioResult::Written);
    // A new edge goes to the holder, never into a second list register.
    assert_eq!(v.set_pending(40, 1), Some(0));
    v.flush_lrs(1, &mut lrs1);
    assert_eq!(lrs1, [0; 4]);
    // vCPU 0 completes it without exiting; its next exit hands the new edge
    // to vCPU 1.
    deactivate(&mut lrs0[0]);
    assert_eq!(v.sync_lrs(0, &lrs0), 0b10);
    v.flush_lrs(0, &mut lrs0);
    assert_eq!(lrs0, [0; 4]);
    v.flush_lrs(1, &mut lrs1);
    assert_eq!(intid(lrs1[0]), 40);
}

/// The changes to physical twins queued so far, as (pINTID, vCPU, active).
fn hw_active_changes(v: &mut Vgic) -> Vec<(u32, usize, bool)> {
    let mut out = Vec::new();
    while v.has_hw_active_changes() {
        for c in v.take_hw_active_changes().into_iter().flatten() {
            out.push((c.pintid, c.vcpu, c.active));
        }
    }
    out
}

#[test]
fn more_sgis_than_list_registers_end_every_maintenance_interrupt() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    let mut lrs = [0u64; 4];
    for sgi in 0..8 {
        v.send_sgi(0, sgi1r(sgi, 1));
    }
    let mut hcr = exit_and_enter(&mut v, 0, &mut lrs);
    let mut delivered = 0;
    for _ in 0..32 {
        // The guest takes and completes everything it sees.
        for lr in lrs.iter_mut().filter(|l| state(**l) == 0b01) {
            acknowledge(lr);
            deactivate(lr);
            delivered += 1;
        }
        if !maintenance_asserted(hcr, &lrs) {
            break;
        }
        // The maintenance handler: sync and refill end the interrupt.
        hcr = exit_and_enter(&mut v, 0, &mut lrs);
        assert!(!maintenance_asserted(hcr, &lrs), "maintenance fires again");
    }
    assert_eq!(delivered, 8);
    exit_and_enter(&mut v, 0, &mut lrs);
    assert!(!v.has_pending(0));
}

#[test]
fn a_single_list_register_never_asks_for_underflow() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    v.send_sgi(0, sgi1r(1, 1));
    v.send_sgi(0, sgi1r(2, 1));
    let mut lrs = [0u64; 1];
    let hcr = exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(
        hcr, ICH_HCR_EN,
        "UIE would hold at once with one list register"
    );
    assert!(!maintenance_asserted(hcr, &lrs));
}

#[test]
fn timer_line_dropping_before_acknowledge_deactivates_the_physical_ppi() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    v.set_hw(VTIMER, 0, Some(VTIMER));
    assert_eq!(v.hw_fired(VTIMER, 0), Some(0));
    let mut lrs = [0u64; 4];
    exit_and_enter(&mut v, 0, &mut lrs);
    assert_eq!(state(lrs[0]), 0b01);
    assert!(
        hw_active_changes(&mut v).is_empty(),
        "taken active by the glue"
    );
    // The guest clears CNTV_CTL.ENABLE; the next exit sees the output low.
    v.sync_lrs(0, &lrs);
    v.set_level(VTIMER, 0, false);
    v.flush_lrs(0, &mut lrs);
    assert_eq!(state(lrs[0]), 0, "no longer pending");
    assert_eq!(redist_read(&mut v, 0, SGI + 0x200, 4) & (1 << VTIMER), 0);
    assert_eq!(hw_active_changes(&mut v), [(VTIMER, 0, false)]);
}

#[test]
fn icactiver_on_the_forwarded_timer_deactivates_the_physical_ppi() {
    let mut v = <Vgic>::new(2);
    linux_init(&mut v);
    v.set_hw(VTIMER, 1, Some(VTIMER));
    v.hw_fired(VTIMER, 1);
    let mut lrs = [0u64; 4];
    exit_and_enter(&mut v, 1, &mut lrs);
    acknowledge(&mut lrs[0]);
    v.sync_lrs(1, &lrs);
    redist_write(&mut v, 1, SGI + 0x380, 1 << VTIMER); // ICACTIVER0
    v.flush_lrs(1, &mut lrs);
    assert_eq!(state(lrs[0]), 0);
    assert_eq!(hw_active_changes(&mut v), [(VTIMER, 1, false)]);
    // ISPENDR makes the twin active again (it is completed through the LR).
    redist_write(&mut v, 1, SGI + 0x200, 1 << VTIMER);
    assert_eq!(hw_active_changes(&mut v), [(VTIMER, 1, true)]);
}

/// Of more waiting interrupts than list registers, the best priorities are
/// loaded whatever their INTIDs: here the best one has the highest INTID of
/// six, behind five worse ones, and the priorities differ only in the most
/// significant implemented bit (the flush's bit-sliced choice must use
/// every priority bit).
#[test]
fn the_best_priority_is_loaded_first_whatever_its_intid() {
    let mut v = <Vgic>::new(1);
    linux_init(&mut v);
    // SGI 5 priority 0x00, SGIs 0-4 priority 0x80.
    redist_write(&mut v, 0, SGI + 0x400, 0x8080_8080);
    redist_write(&mut v, 0, SGI + 0x404, 0x0000_0080);
    for sgi in 0..6 {
        v.set_pending(sgi, 0);
    }
    let mut lrs = [0u64; 4];
    v.flush_lrs(0, &mut lrs);
    assert!(
        slot_of(&lrs, 5).is_some(),
        "the best interrupt waits: {lrs:x?}"
    );
}
