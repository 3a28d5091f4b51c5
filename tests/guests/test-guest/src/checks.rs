use guest_rt::exceptions::{ec, expect_exception, taken};
use guest_rt::smccc::{self, exit_cause, exit_count, hvc};
use guest_rt::{mmio_read, mmio_write, mrs, msr, println, virtio};

const SCRATCH: usize = 0x0B00_0000;
const SCRATCH_ID: u64 = 0x5343_5241_5443_4831;
const SCRATCH_REG: usize = SCRATCH + 8;
const UNMAPPED_IPA: usize = 0x2000_0000;
const GICD: usize = 0x0800_0000;
const GICR: usize = 0x080A_0000;
const GICR_SGI: usize = GICR + 0x10000;

const EC_UNKNOWN: u64 = 0x00;
const EC_DABT_CUR: u64 = 0x25;
const DFSC_SYNC_EXTERNAL: u64 = 0x10;

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, name: &str, result: Result<(), &'static str>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("CHECK {name}: ok");
            }
            Err(why) => {
                self.failed += 1;
                println!("CHECK {name}: FAIL {why}");
            }
        }
    }
}

fn ensure(cond: bool, why: &'static str) -> Result<(), &'static str> {
    if cond {
        Ok(())
    } else {
        Err(why)
    }
}

/// Whether the device tree (its command line) contains `word`.
fn device_tree_mentions(dtb: u64, word: &[u8]) -> bool {
    let size = u32::from_be(mmio_read::<u32>(dtb as usize + 4)) as usize;
    // SAFETY: the hypervisor placed a device tree of `size` bytes here, in our RAM.
    let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, size.min(64 * 1024)) };
    blob.windows(word.len()).any(|w| w == word)
}

#[no_mangle]
extern "C" fn guest_main(dtb: u64) -> ! {
    println!(
        "test-guest: running at EL{} with device tree at {dtb:#x}",
        (mrs!("CurrentEL") >> 2) & 3
    );
    if device_tree_mentions(dtb, b"hv-test-panic") {
        println!("test-guest: asking the hypervisor to panic");
        hvc(smccc::HV_CALL_TEST_PANIC, 0, 0, 0);
        println!("test-guest: the hypervisor did not panic");
        smccc::system_off();
    }
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
    t.check("hvc", check_hvc());
    t.check("psci-version", check_psci_version());
    t.check("smc-trapped", check_smc());
    t.check("hvc-unknown-function", check_unknown_hvc());
    t.check("sysreg-tvm-write", check_tvm());
    t.check("sysreg-res1-bits", check_res_bits());
    t.check("sysreg-id-tid3", check_tid3());
    t.check("wfi-and-virtual-timer", check_wfi_timer());
    t.check("stage2-abort-unmapped", check_unmapped_abort());
    t.check("mmio-decode", check_mmio());
    t.check("mmio-bad-width", check_mmio_bad_width());
    t.check("mmio-no-syndrome", check_mmio_no_syndrome());
    t.check("undef-unemulated-sysreg", check_undef_sysreg());
    t.check("readonly-register-write", check_readonly_write());
    t.check("virtio-mmio-transport", check_virtio());
    t.check("still-running-after-bad-input", check_hvc());
    println!("test-guest: {} passed, {} failed", t.passed, t.failed);
    println!("test-guest: powering off");
    smccc::system_off()
}

fn check_hvc() -> Result<(), &'static str> {
    let before = exit_count(exit_cause::HVC);
    let r = hvc(smccc::HV_CALL_PING, 0, 0, 0);
    ensure(
        r[0] == 0 && r[1] == smccc::HV_PING_MAGIC,
        "ping answer wrong",
    )?;
    // Two HVCs (ping, count) were made since `before` was read.
    ensure(
        exit_count(exit_cause::HVC) >= before + 2,
        "HVC exits not counted",
    )
}

fn check_psci_version() -> Result<(), &'static str> {
    ensure(
        hvc(smccc::PSCI_VERSION, 0, 0, 0)[0] == 0x1_0001,
        "PSCI version is not 1.1",
    )?;
    ensure(
        hvc(smccc::PSCI_FEATURES, smccc::PSCI_CPU_ON, 0, 0)[0] == 0,
        "CPU_ON not reported",
    )?;
    ensure(
        hvc(smccc::PSCI_FEATURES, 0x8400_00ff, 0, 0)[0] == smccc::NOT_SUPPORTED,
        "bogus feature reported",
    )?;
    // AFFINITY_INFO for ourselves: ON (0); for a vCPU that does not exist: INVALID_PARAMETERS (-2).
    ensure(
        hvc(smccc::PSCI_AFFINITY_INFO, 0, 0, 0)[0] == 0,
        "vcpu0 not ON",
    )?;
    ensure(
        hvc(smccc::PSCI_AFFINITY_INFO, 7, 0, 0)[0] == (-2i64) as u64,
        "missing vcpu not rejected",
    )
}

fn check_smc() -> Result<(), &'static str> {
    let before = exit_count(exit_cause::SMC);
    ensure(
        smccc::smc(smccc::PSCI_VERSION, 0, 0, 0)[0] == 0x1_0001,
        "SMC PSCI_VERSION wrong",
    )?;
    ensure(
        exit_count(exit_cause::SMC) == before + 1,
        "SMC not trapped to the hypervisor",
    )
}

fn check_unknown_hvc() -> Result<(), &'static str> {
    ensure(
        hvc(0xC200_1234, 1, 2, 3)[0] == smccc::NOT_SUPPORTED,
        "unknown call not NOT_SUPPORTED",
    )?;
    ensure(
        hvc(smccc::HV_CALL_EXIT_COUNT, 999, 0, 0)[0] == smccc::NOT_SUPPORTED,
        "bad counter index accepted",
    )
}

fn check_tvm() -> Result<(), &'static str> {
    let before = exit_count(exit_cause::SYSREG);
    msr!("TTBR0_EL1", 0x4123_4000);
    let ttbr = mrs!("TTBR0_EL1");
    msr!("CONTEXTIDR_EL1", 0x42);
    let ctx = mrs!("CONTEXTIDR_EL1");
    let sctlr = mrs!("SCTLR_EL1");
    // Toggle SCTLR_EL1.UCT (bit 15): harmless with the MMU off.
    msr!("SCTLR_EL1", sctlr ^ (1 << 15));
    let toggled = mrs!("SCTLR_EL1");
    msr!("SCTLR_EL1", sctlr);
    let after = exit_count(exit_cause::SYSREG);
    ensure(ttbr == 0x4123_4000, "TTBR0_EL1 read-back differs")?;
    ensure(ctx == 0x42, "CONTEXTIDR_EL1 read-back differs")?;
    ensure(toggled == sctlr ^ (1 << 15), "SCTLR_EL1 read-back differs")?;
    ensure(after >= before + 8, "TVM/TRVM accesses did not trap")
}

fn check_res_bits() -> Result<(), &'static str> {
    let sctlr = mrs!("SCTLR_EL1");
    // Clear RES1 bit 11 and set RES0 bit 6 (CP15BEN is RES0 without AArch32 EL0... use bit 10? keep to 11):
    msr!("SCTLR_EL1", sctlr & !(1 << 11));
    let back = mrs!("SCTLR_EL1");
    msr!("SCTLR_EL1", sctlr);
    ensure(
        back & (1 << 11) != 0,
        "RES1 bit 11 of SCTLR_EL1 was cleared",
    )
}

fn check_tid3() -> Result<(), &'static str> {
    let before = exit_count(exit_cause::SYSREG);
    let pfr0 = mrs!("ID_AA64PFR0_EL1");
    let dfr0 = mrs!("ID_AA64DFR0_EL1");
    ensure(
        exit_count(exit_cause::SYSREG) >= before + 2,
        "ID register reads did not trap",
    )?;
    ensure((pfr0 >> 8) & 0xf == 0, "EL2 visible to the guest")?;
    ensure((pfr0 >> 12) & 0xf == 0, "EL3 visible to the guest")?;
    ensure(
        (pfr0 >> 24) & 0xf == 1,
        "GICv3 system registers not advertised",
    )?;
    ensure((dfr0 >> 8) & 0xf == 0, "PMU visible to the guest")
}

fn check_wfi_timer() -> Result<(), &'static str> {
    // Wake the redistributor, enable PPI 27 and Group 1 at the virtual GIC.
    mmio_write::<u32>(GICD, (1 << 4) | (1 << 1));
    mmio_write::<u32>(GICR + 0x14, 0);
    mmio_write::<u32>(GICR_SGI + 0x80, u32::MAX);
    mmio_write::<u32>(GICR_SGI + 0x100, 1 << 27);
    msr!("S3_0_C12_C12_5", 0xf); // ICC_SRE_EL1: SRE (and DFB/DIB)
    msr!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1
    msr!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
    let wfi_before = exit_count(exit_cause::WFI);
    // 32 ms at 62.5 MHz: if the deadline passed before the WFI (the host
    // descheduled QEMU's thread for longer than that), QEMU would not trap
    // the WFI at all (it does not wait when an interrupt is already pending),
    // and the check would fail for the host's load, not the hypervisor.
    msr!("CNTV_TVAL_EL0", 2_000_000);
    msr!("CNTV_CTL_EL0", 1);
    // IRQs stay masked in PSTATE: WFI still wakes on a pending interrupt.
    // SAFETY: waiting only.
    unsafe { core::arch::asm!("wfi") };
    let mut intid = 1023;
    for _ in 0..100_000 {
        intid = mrs!("S3_0_C12_C12_0") & 0xff_ffff; // ICC_IAR1_EL1
        if intid != 1023 {
            break;
        }
    }
    let status = mrs!("CNTV_CTL_EL0");
    msr!("CNTV_CTL_EL0", 0);
    if intid != 1023 {
        msr!("S3_0_C12_C12_1", intid); // ICC_EOIR1_EL1
    }
    ensure(exit_count(exit_cause::WFI) > wfi_before, "WFI did not trap")?;
    ensure(status & 0b100 != 0, "timer condition not met after WFI")?;
    ensure(intid == 27, "virtual timer interrupt (27) not delivered")
}

fn check_unmapped_abort() -> Result<(), &'static str> {
    expect_exception();
    let _ = mmio_read::<u32>(UNMAPPED_IPA);
    let t = taken();
    ensure(t.count == 1, "no exception for unmapped IPA")?;
    ensure(ec(t.esr) == EC_DABT_CUR, "not a data abort from EL1")?;
    ensure(
        t.esr & 0x3f == DFSC_SYNC_EXTERNAL,
        "not a synchronous external abort",
    )?;
    ensure(t.far == UNMAPPED_IPA as u64, "FAR_EL1 wrong")
}

fn check_mmio() -> Result<(), &'static str> {
    ensure(
        mmio_read::<u64>(SCRATCH) == SCRATCH_ID,
        "64-bit read of ID wrong",
    )?;
    ensure(
        mmio_read::<u32>(SCRATCH + 4) == (SCRATCH_ID >> 32) as u32,
        "32-bit read of ID high half wrong",
    )?;
    mmio_write::<u64>(SCRATCH_REG, 0x8182_8384_8586_8788);
    ensure(
        mmio_read::<u64>(SCRATCH_REG) == 0x8182_8384_8586_8788,
        "64-bit write/read",
    )?;
    mmio_write::<u8>(SCRATCH_REG + 1, 0x7f);
    mmio_write::<u16>(SCRATCH_REG + 2, 0x1234);
    ensure(
        mmio_read::<u64>(SCRATCH_REG) == 0x8182_8384_1234_7f88,
        "byte/halfword lanes",
    )?;

    // Sign extension and register numbers, with explicit instructions.
    let (sb, sh, sw, wsb): (u64, u64, u64, u64);
    // SAFETY: loads from the emulated scratch device.
    unsafe {
        core::arch::asm!(
            "ldrsb x17, [{a}]",
            "ldrsh x28, [{a}, #6]",
            "ldrsw x3, [{a}, #4]",
            "ldrsb w5, [{a}]",
            "mov {sb}, x17", "mov {sh}, x28", "mov {sw}, x3", "mov {wsb}, x5",
            a = in(reg) SCRATCH_REG,
            sb = out(reg) sb, sh = out(reg) sh, sw = out(reg) sw, wsb = out(reg) wsb,
            out("x17") _, out("x28") _, out("x3") _, out("x5") _,
        );
    }
    ensure(
        sb == 0xffff_ffff_ffff_ff88,
        "LDRSB Xt not sign-extended to 64 bits",
    )?;
    ensure(sh == 0xffff_ffff_ffff_8182, "LDRSH X28 wrong")?;
    ensure(sw == 0xffff_ffff_8182_8384, "LDRSW wrong")?;
    ensure(
        wsb == 0x0000_0000_ffff_ff88,
        "LDRSB Wt must sign-extend to 32 bits and zero the top",
    )?;

    // STR XZR stores zero; a load into x30 lands in x30.
    let lr_loaded: u64;
    // SAFETY: stores/loads on the emulated scratch device; x30 is declared clobbered.
    unsafe {
        core::arch::asm!(
            "str xzr, [{a}]",
            "mov x30, #0x55",
            "strb w30, [{a}, #3]",
            "ldr x30, [{a}]",
            "mov {out}, x30",
            a = in(reg) SCRATCH_REG, out = out(reg) lr_loaded, out("x30") _,
        );
    }
    ensure(
        lr_loaded == 0x5500_0000,
        "STR XZR / STRB W30 / LDR X30 wrong",
    )?;
    ensure(exit_count(exit_cause::MMIO) > 10, "MMIO exits not counted")
}

fn check_mmio_bad_width() -> Result<(), &'static str> {
    // A halfword access that straddles the device's byte lanes: the device refuses it.
    expect_exception();
    let _ = mmio_read::<u16>(SCRATCH_REG + 1);
    let t = taken();
    ensure(
        t.count == 1 && ec(t.esr) == EC_DABT_CUR,
        "misaligned MMIO not aborted",
    )?;
    // A byte access to a 32-bit-only GIC register.
    expect_exception();
    let _ = mmio_read::<u8>(GICD + 4);
    let t = taken();
    ensure(
        t.count == 1 && ec(t.esr) == EC_DABT_CUR,
        "byte read of GICD_TYPER not aborted",
    )
}

fn check_mmio_no_syndrome() -> Result<(), &'static str> {
    // LDP gives no instruction syndrome (ISV=0): it cannot be emulated.
    expect_exception();
    // SAFETY: the load faults and is skipped by the exception handler.
    unsafe {
        core::arch::asm!("ldp x6, x7, [{a}]", a = in(reg) SCRATCH_REG, out("x6") _, out("x7") _)
    };
    let t = taken();
    ensure(
        t.count == 1 && ec(t.esr) == EC_DABT_CUR,
        "LDP to MMIO not aborted",
    )
}

fn check_undef_sysreg() -> Result<(), &'static str> {
    let before = exit_count(exit_cause::UNDEF_INJECTED);
    // The PMU is hidden (MDCR_EL2.TPM traps it) and not emulated.
    expect_exception();
    let _ = mrs!("PMCCNTR_EL0");
    let t = taken();
    ensure(
        t.count == 1 && ec(t.esr) == EC_UNKNOWN,
        "PMCCNTR_EL0 access not UNDEFINED",
    )?;
    ensure(
        exit_count(exit_cause::UNDEF_INJECTED) == before + 1,
        "UNDEF not injected by the hypervisor",
    )
}

const VIRTIO: usize = 0x0A00_0000;

/// Rings for the virtio check, in guest RAM.
static mut RINGS: virtio::Rings = virtio::Rings([0; 0x3000]);

fn check_virtio() -> Result<(), &'static str> {
    ensure(mmio_read::<u32>(VIRTIO) == 0x7472_6976, "virtio magic")?;
    ensure(mmio_read::<u32>(VIRTIO + 4) == 2, "virtio-mmio version 2")?;
    ensure(mmio_read::<u32>(VIRTIO + 8) != 0, "device ID")?;
    // A queue whose rings are not in guest RAM cannot go live: DEVICE_NEEDS_RESET.
    mmio_write::<u32>(VIRTIO + 0x70, 1 | 2 | 8);
    mmio_write::<u32>(VIRTIO + 0x38, 8);
    mmio_write::<u32>(VIRTIO + 0x80, 0x1000);
    mmio_write::<u32>(VIRTIO + 0x44, 1);
    ensure(
        mmio_read::<u32>(VIRTIO + 0x44) == 0,
        "queue with rings outside RAM went ready",
    )?;
    ensure(
        mmio_read::<u32>(VIRTIO + 0x70) & 0x40 != 0,
        "NEEDS_RESET not set",
    )?;
    // Reset, then a proper queue in RAM.
    mmio_write::<u32>(VIRTIO + 0x70, 0);
    ensure(
        mmio_read::<u32>(VIRTIO + 0x70) == 0,
        "reset did not clear status",
    )?;
    ensure(
        virtio::setup_queue(core::ptr::addr_of!(RINGS) as u64, 8),
        "valid queue not ready",
    )?;
    mmio_write::<u32>(VIRTIO + 0x50, 0);
    ensure(
        mmio_read::<u32>(VIRTIO + 0x70) & 0x40 == 0,
        "notify of an empty queue set NEEDS_RESET",
    )?;
    // Byte access to a 32-bit transport register aborts.
    expect_exception();
    let _ = mmio_read::<u8>(VIRTIO);
    ensure(
        taken().count == 1,
        "byte read of virtio register not aborted",
    )
}

fn check_readonly_write() -> Result<(), &'static str> {
    let typer = mmio_read::<u32>(GICD + 4);
    mmio_write::<u32>(GICD + 4, !typer);
    ensure(
        mmio_read::<u32>(GICD + 4) == typer,
        "GICD_TYPER changed by a write",
    )?;
    let before = mmio_read::<u64>(SCRATCH);
    mmio_write::<u64>(SCRATCH, 0);
    ensure(
        mmio_read::<u64>(SCRATCH) == before,
        "scratch ID register changed by a write",
    )
}

/// The test guest runs on one vCPU; a secondary started by mistake stops.
#[no_mangle]
extern "C" fn guest_secondary_main(_cpu: u64) -> ! {
    hvc(smccc::PSCI_CPU_OFF, 0, 0, 0);
    smccc::system_off()
}
