//! Interrupt attacks on the virtual GIC (issue 8): more interrupts than list
//! registers, an unbacked level SPI, timer outputs that deassert while their
//! interrupt is pending, active state cleared through GICR_ICACTIVER0, and
//! the EL1 physical timer. IRQs stay masked in PSTATE throughout: the guest
//! polls ICC_IAR1_EL1, which the virtual CPU interface answers without an exit.
//!
//! Each scenario prints one result line the test checks; a hypervisor that
//! livelocks never lets it print.

use guest_rt::{mmio_read, mmio_write, mrs, msr, println};

const GICD: usize = 0x0800_0000;
const GICR_SGI: usize = 0x080A_0000 + 0x1_0000;
const SPURIOUS: u64 = 1023;
const VTIMER: u64 = 27;
const PTIMER: u64 = 30;
/// An SPI no physical interrupt backs (QEMU virt wires nothing to it).
const UNBACKED_SPI: u32 = 50;

fn iar() -> u64 {
    mrs!("S3_0_C12_C12_0") & 0xff_ffff // ICC_IAR1_EL1
}

fn eoi(intid: u64) {
    msr!("S3_0_C12_C12_1", intid); // ICC_EOIR1_EL1
}

fn ispendr0() -> u32 {
    mmio_read::<u32>(GICR_SGI + 0x200)
}

/// Group 1 on, this vCPU's redistributor awake, every private interrupt in
/// Group 1, the CPU interface on with nothing masked by priority.
fn gic_on() {
    mmio_write::<u32>(GICD, (1 << 4) | (1 << 1));
    mmio_write::<u32>(0x080A_0000 + 0x14, 0);
    mmio_write::<u32>(GICR_SGI + 0x80, u32::MAX);
    msr!("S3_0_C12_C12_5", 0xf); // ICC_SRE_EL1
    msr!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1
    msr!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
}

/// Poll the CPU interface for up to `tries` reads; the first INTID, or 1023.
fn poll(tries: u32) -> u64 {
    for _ in 0..tries {
        let intid = iar();
        if intid != SPURIOUS {
            return intid;
        }
    }
    SPURIOUS
}

/// 8 SGIs to itself with 4 list registers, acknowledged and completed in
/// turn: the interrupts that did not fit must follow through the underflow
/// maintenance interrupt without the hypervisor spinning on it.
pub fn sgi_overflow(_dtb: u64) {
    gic_on();
    mmio_write::<u32>(GICR_SGI + 0x100, 0xff); // ISENABLER0: SGIs 0-7
    for sgi in 0..8u64 {
        msr!("S3_0_C12_C11_5", (sgi << 24) | 1); // ICC_SGI1R_EL1: to Aff0 = 0
    }
    let mut seen = 0u32;
    for _ in 0..64 {
        let intid = poll(10_000);
        if intid == SPURIOUS {
            break;
        }
        seen |= 1 << intid;
        eoi(intid);
    }
    println!("sgi-overflow: 8 SGIs sent, delivered mask {seen:#x}");
}

/// A level SPI nothing backs, made pending by ISPENDR, acknowledged and
/// completed: the EOI maintenance interrupt of its list register must not
/// keep the hypervisor busy.
pub fn spi_unbacked(_dtb: u64) {
    gic_on();
    let word = (UNBACKED_SPI / 32) as usize * 4;
    let bit = 1u32 << (UNBACKED_SPI % 32);
    mmio_write::<u32>(GICD + 0x80 + word, u32::MAX); // IGROUPR
    mmio_write::<u32>(GICD + 0x100 + word, bit); // ISENABLER
    let mut delivered = 0;
    for _ in 0..3 {
        mmio_write::<u32>(GICD + 0x200 + word, bit); // ISPENDR
        let intid = poll(10_000);
        if intid == u64::from(UNBACKED_SPI) {
            delivered += 1;
        }
        if intid != SPURIOUS {
            eoi(intid);
        }
    }
    let after = poll(10_000);
    println!("spi-unbacked: delivered {delivered} of 3, then {after}");
}

/// Start the virtual timer with its deadline in the past and wait until the
/// vGIC shows its interrupt pending (the physical interrupt was taken).
fn fire_vtimer() -> bool {
    msr!("CNTV_CVAL_EL0", 0);
    msr!("CNTV_CTL_EL0", 1);
    (0..1000).any(|_| ispendr0() & (1 << VTIMER) != 0)
}

/// The virtual timer's output deasserts in three ways while its interrupt
/// is pending and not acknowledged: the interrupt must stop being pending.
pub fn vtimer_deassert(_dtb: u64) {
    gic_on();
    mmio_write::<u32>(GICR_SGI + 0x100, 1 << VTIMER);
    let cases: [(&str, fn()); 3] = [
        ("disable", || msr!("CNTV_CTL_EL0", 0)),
        ("mask", || msr!("CNTV_CTL_EL0", 0b11)),
        ("future", || {
            msr!("CNTV_CVAL_EL0", guest_rt::counter() + (1 << 40))
        }),
    ];
    for (name, deassert) in cases {
        let fired = fire_vtimer();
        deassert();
        let pending = ispendr0() & (1 << VTIMER) != 0;
        let intid = poll(10_000);
        if intid != SPURIOUS {
            eoi(intid);
        }
        msr!("CNTV_CTL_EL0", 0);
        println!(
            "vtimer-deassert {name}: fired {fired}, pending after {pending}, delivered {intid}"
        );
    }
}

/// The guest takes the forwarded timer interrupt, drops its priority
/// (EOImode = 1) and deactivates it through GICR_ICACTIVER0 instead of
/// ICC_DIR_EL1: the timer must keep working.
pub fn vtimer_icactive(_dtb: u64) {
    gic_on();
    mmio_write::<u32>(GICR_SGI + 0x100, 1 << VTIMER);
    msr!("S3_0_C12_C12_4", 1 << 1); // ICC_CTLR_EL1.EOImode = 1
    let mut rounds = 0;
    for _ in 0..3 {
        msr!("CNTV_CVAL_EL0", 0);
        msr!("CNTV_CTL_EL0", 1);
        let intid = poll(100_000);
        msr!("CNTV_CTL_EL0", 0);
        if intid == SPURIOUS {
            break;
        }
        eoi(intid); // priority drop only
        mmio_write::<u32>(GICR_SGI + 0x380, 1 << intid); // ICACTIVER0
        if intid == VTIMER {
            rounds += 1;
        }
    }
    let active = mmio_read::<u32>(GICR_SGI + 0x300) & (1 << VTIMER) != 0;
    msr!("S3_0_C12_C12_4", 0);
    println!("vtimer-icactive: {rounds} of 3 timer interrupts, active after {active}");
}

/// The EL1 physical timer: its registers work, it interrupts on PPI 30 and
/// stops being pending when its output deasserts.
pub fn ptimer(_dtb: u64) {
    gic_on();
    mmio_write::<u32>(GICR_SGI + 0x100, 1 << PTIMER);
    msr!("CNTP_CTL_EL0", 0);
    msr!("CNTP_TVAL_EL0", 1 << 30);
    let now = mrs!("CNTPCT_EL0");
    let cval = mrs!("CNTP_CVAL_EL0");
    let tval = mrs!("CNTP_TVAL_EL0") as u32;
    let tval_ok = cval > now && cval <= now + (1 << 30) && tval <= 1 << 30 && tval > 0;
    msr!("CNTP_CVAL_EL0", 0);
    msr!("CNTP_CTL_EL0", 1);
    let intid = poll(100_000);
    let status = mrs!("CNTP_CTL_EL0");
    if intid != SPURIOUS {
        eoi(intid);
    }
    // Still asserted after the EOI, so pending again; then deasserted.
    msr!("CNTP_CTL_EL0", 0);
    let pending = ispendr0() & (1 << PTIMER) != 0;
    let after = poll(10_000);
    if after != SPURIOUS {
        eoi(after);
    }
    println!(
        "ptimer: tval ok {tval_ok}, delivered {intid}, status {status:#x}, pending after {pending}, then {after}"
    );
}

/// A 32-bit store with a plain register address, so the trap carries a
/// syndrome the hypervisor can emulate (a post-indexed store, which the
/// compiler picks in loops, has none and is refused as an external abort).
fn store32(addr: usize, value: u32) {
    // SAFETY: a store to a GIC register of this VM.
    unsafe {
        core::arch::asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack))
    };
}

/// How long `gic-storm` storms, in counter ticks (QEMU virt: 62.5 MHz, so
/// 100 ms); `irq-quiet` listens twice as long, so the storm falls inside.
const WINDOW_TICKS: u64 = 6_250_000;

/// Everything a guest can do to interrupts, as fast as it can, for the
/// window: SGIs 0-15 to every other vCPU (IRM broadcast) and to a target
/// list naming 16 vCPUs it does not have; every SPI enabled, routed to
/// vCPU 0 and 1, set pending and active; every private interrupt set
/// pending on its own redistributor (the frames of vCPUs it does not have
/// are not there: an external abort, see `probe-ipa`). None of it may reach
/// another VM (tests: `irq-quiet`).
pub fn gic_storm(_dtb: u64) {
    gic_on();
    store32(GICR_SGI + 0x100, u32::MAX);
    for word in 1..4 {
        store32(GICD + 0x100 + word * 4, u32::MAX); // ISENABLER
    }
    for spi in 32..128usize {
        store32(GICD + 0x6000 + spi * 8, (spi % 2) as u32); // IROUTER, Aff0
    }
    let start = guest_rt::counter();
    let (mut rounds, mut taken) = (0u64, 0u64);
    while guest_rt::counter() - start < WINDOW_TICKS {
        for sgi in 0..16u64 {
            msr!("S3_0_C12_C11_5", (sgi << 24) | (1 << 40)); // ICC_SGI1R_EL1, IRM: all but self
            msr!("S3_0_C12_C11_5", (sgi << 24) | 0xffff); // target list Aff0 0-15
        }
        for word in 1..4 {
            store32(GICD + 0x200 + word * 4, u32::MAX); // ISPENDR
            store32(GICD + 0x300 + word * 4, u32::MAX); // ISACTIVER
            store32(GICD + 0x380 + word * 4, u32::MAX); // ICACTIVER
        }
        store32(GICR_SGI + 0x200, u32::MAX); // ISPENDR0 of its own redistributor
        loop {
            let intid = iar();
            if intid == SPURIOUS {
                break;
            }
            eoi(intid);
            taken += 1;
        }
        rounds += 1;
    }
    println!("gic-storm: {rounds} rounds, took {taken} of its own interrupts");
}

/// Every interrupt enabled and unmasked at the CPU interface, no timer
/// armed, nothing sent: for the window, count what arrives. Another VM's
/// SGIs, SPI or redistributor writes must never show up here: 0.
pub fn irq_quiet(_dtb: u64) {
    gic_on();
    mmio_write::<u32>(GICR_SGI + 0x100, u32::MAX);
    for word in 1..4 {
        mmio_write::<u32>(GICD + 0x100 + word * 4, u32::MAX);
    }
    let start = guest_rt::counter();
    let mut received = 0u64;
    let mut first = SPURIOUS;
    while guest_rt::counter() - start < 2 * WINDOW_TICKS {
        let intid = iar();
        if intid != SPURIOUS {
            if received == 0 {
                first = intid;
            }
            received += 1;
            eoi(intid);
        }
    }
    println!("irq-quiet: received {received} interrupts in 200 ms (first {first})");
}
