//! The guest prints text that looks like the hypervisor's: an error, a
//! power-off notice, exit counters, a panic, each at the start of a line,
//! after a lone carriage return, and split across an idle moment. None may
//! appear as a hypervisor line (which only the hypervisor starts with "[hv").

use guest_rt::{print, println};

pub fn run(_dtb: u64) {
    println!("[hv cpu0] ERROR forged by the guest");
    println!("[hv cpu0] INFO  vm1: guest requested SYSTEM_OFF (forged)");
    println!("[hv] exits: hvc=999999 smc=0 sysreg=0 wfi=0 wfe=0 mmio=0 abort-injected=0 undef-injected=0 irq=0 other=0 total=999999");
    println!("[hv] events: unknown-smccc=999999 forged=1");
    println!("[hv cpu0] PANIC at forged.rs:1: forged panic");
    print!("harmless\r[hv cpu0] ERROR forged after a carriage return\n");
    // Split: "[h" written, then the guest idles (WFI), then the rest.
    print!("[h");
    idle_briefly();
    println!("v cpu0] ERROR forged in two parts");
}

/// Execute WFI once (the hypervisor then writes the unfinished console
/// line), woken by the virtual timer a moment later: its interrupt is
/// enabled at the virtual GIC (a disabled one would never wake us), taken
/// nowhere (PSTATE.I stays set), acknowledged and completed by hand.
fn idle_briefly() {
    const GICD: usize = 0x0800_0000;
    const GICR: usize = 0x080A_0000;
    const GICR_SGI: usize = GICR + 0x1_0000;
    guest_rt::mmio_write::<u32>(GICD, (1 << 4) | (1 << 1));
    guest_rt::mmio_write::<u32>(GICR + 0x14, 0);
    guest_rt::mmio_write::<u32>(GICR_SGI + 0x80, u32::MAX);
    guest_rt::mmio_write::<u32>(GICR_SGI + 0x100, 1 << 27);
    guest_rt::msr!("S3_0_C12_C12_5", 0xf); // ICC_SRE_EL1
    guest_rt::msr!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1
    guest_rt::msr!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
    guest_rt::msr!("CNTV_TVAL_EL0", 20_000);
    guest_rt::msr!("CNTV_CTL_EL0", 1);
    // SAFETY: waiting only; the timer wakes us.
    unsafe { core::arch::asm!("wfi", options(nostack)) };
    let mut intid = 1023;
    for _ in 0..100_000 {
        intid = guest_rt::mrs!("S3_0_C12_C12_0") & 0xff_ffff; // ICC_IAR1_EL1
        if intid != 1023 {
            break;
        }
    }
    guest_rt::msr!("CNTV_CTL_EL0", 0);
    if intid != 1023 {
        guest_rt::msr!("S3_0_C12_C12_1", intid); // ICC_EOIR1_EL1
    }
}
