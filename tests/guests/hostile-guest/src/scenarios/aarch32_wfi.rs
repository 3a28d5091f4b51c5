//! AArch32 EL0 in T32 state executes trapped 16-bit WFIs, one inside an IT
//! block, and a conditional WFI whose condition fails, then returns to EL1
//! with an SVC. The hypervisor must resume 2 bytes on (ESR_EL2.IL=0),
//! advance the IT state past the trapped instruction, never emulate an
//! instruction that failed its condition, and not turn any of it into an
//! UNDEFINED exception.
//!
//! The T32 code is a blob of halfwords (Rust cannot assemble T32 here); EL1
//! drops to it with ERET (SPSR_EL1: User mode, T bit, interrupts masked) and
//! a private vector table catches the SVC at VBAR_EL1 + 0x600 (lower EL,
//! AArch32, synchronous). With the stage-1 MMU off, EL0 fetches from the
//! flat physical map like EL1.

use guest_rt::smccc::{exit_cause, exit_count};
use guest_rt::{mmio_write, mrs, msr, println};

/// Byte offsets in the blob the checks refer to.
const PROGRAM_A: u64 = 0x00;
const A_MOV_R4_PC: u64 = 0x08;
const A_SVC: u64 = 0x0c;
const PROGRAM_B: u64 = 0x10;
const B_SVC: u64 = 0x2e;

/// The test VM's scratch register (hv.testdev=on) and what EL1 puts there.
const SCRATCH_REG: u64 = 0x0B00_0008;
const SCRATCH_VALUE: u32 = 0x1234_5678;

core::arch::global_asm!(
    r#"
.section .text.hostile_t32, "ax"
.balign 4
.global hostile_t32_blob
hostile_t32_blob:
    // Program A: a 16-bit WFI outside any IT block.
    .hword 0x2000   // 00 movs r0, #0
    .hword 0x2100   // 02 movs r1, #0
    .hword 0x2400   // 04 movs r4, #0
    .hword 0xbf30   // 06 wfi            (trapped, IL=0: resume at 08)
    .hword 0x467c   // 08 mov r4, pc     (r4 = blob + 0x0c)
    .hword 0x3101   // 0a adds r1, #1    (r1 = 1)
    .hword 0xdf00   // 0c svc #0         (to EL1, VBAR_EL1 + 0x600)
    .hword 0xe7fe   // 0e b .
    // Program B: an emulated MMIO load inside an IT block (r5 = scratch
    // register), then a WFI whose condition fails.
    .hword 0x2000   // 10 movs r0, #0
    .hword 0x2200   // 12 movs r2, #0
    .hword 0x2300   // 14 movs r3, #0
    .hword 0x2600   // 16 movs r6, #0
    .hword 0x2700   // 18 movs r7, #0
    .hword 0x2800   // 1a cmp r0, #0     (Z = 1)
    .hword 0xbf0c   // 1c ite eq
    .hword 0x682e   // 1e ldreq r6, [r5] (passes, stage-2 abort, emulated: IT must advance)
    .hword 0x3601   // 20 addne r6, #1   (fails: r6 stays the device value)
    .hword 0x3301   // 22 adds r3, #1    (after the block: r3 = 1, Z = 0)
    .hword 0x3701   // 24 adds r7, #1    (r7 = 1)
    .hword 0x2800   // 26 cmp r0, #0     (Z = 1)
    .hword 0xbf14   // 28 ite ne
    .hword 0xbf30   // 2a wfine          (fails: never a wait)
    .hword 0x3201   // 2c addeq r2, #1   (passes: r2 = 1)
    .hword 0xdf00   // 2e svc #0
    .hword 0xe7fe   // 30 b .

// Vector table while EL0 runs: lower-EL entries record their offset and
// return to hostile_enter_el0's caller; current-EL entries cannot happen.
.macro EL0_BACK offset
    .balign 0x80
    mov     x10, #\offset
    b       hostile_el0_back
.endm
.section .text.hostile_el0, "ax"
.balign 0x800
hostile_el0_vectors:
    .rept 8
    .balign 0x80
    b       .
    .endr
    EL0_BACK 0x400
    EL0_BACK 0x480
    EL0_BACK 0x500
    EL0_BACK 0x580
    EL0_BACK 0x600
    EL0_BACK 0x680
    EL0_BACK 0x700
    EL0_BACK 0x780

// hostile_enter_el0(entry, results: *mut [u64; 8], r5): run T32 code at EL0
// with r5 set until it takes an exception to EL1; results = r1, r2, r3, r4,
// r6, r7, ESR_EL1 and ELR_EL1 with the vector offset in ELR's top 32 bits.
.global hostile_enter_el0
hostile_enter_el0:
    stp     x29, x30, [sp, #-16]!
    stp     x27, x28, [sp, #-16]!
    stp     x25, x26, [sp, #-16]!
    stp     x23, x24, [sp, #-16]!
    stp     x21, x22, [sp, #-16]!
    stp     x19, x20, [sp, #-16]!
    stp     x18, x1, [sp, #-16]!
    mrs     x9, vbar_el1
    str     x9, [sp, #-16]!
    adr     x9, hostile_el0_vectors
    msr     vbar_el1, x9
    msr     elr_el1, x0
    mov     x9, #0x3f0          // AArch32 User mode, T32, D/A/I/F masked
    msr     spsr_el1, x9
    mov     x5, x2
    isb
    eret

hostile_el0_back:
    // SP_EL1 is as we left it; w1-w7 still hold the EL0 program's r1-r7.
    ldr     x9, [sp, #24]       // results
    stp     x1, x2, [x9, #0]
    stp     x3, x4, [x9, #16]
    stp     x6, x7, [x9, #32]
    mrs     x11, esr_el1
    mrs     x12, elr_el1
    orr     x12, x12, x10, lsl #32
    stp     x11, x12, [x9, #48]
    ldr     x9, [sp], #16
    msr     vbar_el1, x9
    isb
    ldp     x18, x1, [sp], #16
    ldp     x19, x20, [sp], #16
    ldp     x21, x22, [sp], #16
    ldp     x23, x24, [sp], #16
    ldp     x25, x26, [sp], #16
    ldp     x27, x28, [sp], #16
    ldp     x29, x30, [sp], #16
    ret
"#
);

extern "C" {
    static hostile_t32_blob: u8;
    fn hostile_enter_el0(entry: u64, results: *mut [u64; 8], r5: u64);
}

const GICD: usize = 0x0800_0000;
const GICR: usize = 0x080A_0000;
const GICR_SGI: usize = GICR + 0x1_0000;
const SCTLR_ITD: u64 = 1 << 7;
const SCTLR_NTWI: u64 = 1 << 16;
const EC_SVC32: u64 = 0x11;

/// What an EL0 program left behind.
struct El0Run {
    r1: u64,
    r2: u64,
    r3: u64,
    r4: u64,
    r6: u64,
    r7: u64,
    esr: u64,
    elr: u64,
    vector: u64,
}

/// Run the EL0 program at `entry` with r5 = `r5`, the virtual timer armed
/// to end the hypervisor's wait for a WFI, then quiesce the timer. QEMU
/// executes a WFI as a NOP, without trapping, while an interrupt is pending
/// (even a masked one), so the deadline lies well after the WFI is reached.
fn run_el0(entry: u64, r5: u64) -> El0Run {
    let mut r = [0u64; 8];
    msr!("CNTV_TVAL_EL0", mrs!("CNTFRQ_EL0") / 5); // 200 ms
    msr!("CNTV_CTL_EL0", 1);
    // SAFETY: the program ends in an SVC that returns here through the
    // private vectors; callee-saved registers and VBAR_EL1 are restored.
    unsafe { hostile_enter_el0(entry, &mut r, r5) };
    let fired = mrs!("CNTV_CTL_EL0") & 0b100 != 0;
    msr!("CNTV_CTL_EL0", 0);
    if fired {
        for _ in 0..100_000 {
            let intid = mrs!("S3_0_C12_C12_0") & 0xff_ffff; // ICC_IAR1_EL1
            if intid != 1023 {
                msr!("S3_0_C12_C12_1", intid); // ICC_EOIR1_EL1
                break;
            }
        }
    }
    let low = |v: u64| v & 0xffff_ffff;
    El0Run {
        r1: low(r[0]),
        r2: low(r[1]),
        r3: low(r[2]),
        r4: low(r[3]),
        r6: low(r[4]),
        r7: low(r[5]),
        esr: r[6],
        elr: low(r[7]),
        vector: r[7] >> 32,
    }
}

pub fn run(_dtb: u64) {
    // The virtual timer's interrupt ends the hypervisor's wait for a WFI.
    mmio_write::<u32>(GICD, (1 << 4) | (1 << 1));
    mmio_write::<u32>(GICR + 0x14, 0);
    mmio_write::<u32>(GICR_SGI + 0x80, u32::MAX);
    mmio_write::<u32>(GICR_SGI + 0x100, 1 << 27);
    msr!("S3_0_C12_C12_5", 0xf); // ICC_SRE_EL1
    msr!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1
    msr!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
                               // EL0 WFI goes to EL2 (not EL1) only with SCTLR_EL1.nTWI set; IT must not be disabled.
    let sctlr = mrs!("SCTLR_EL1");
    msr!("SCTLR_EL1", (sctlr | SCTLR_NTWI) & !SCTLR_ITD);
    mmio_write::<u32>(SCRATCH_REG as usize, SCRATCH_VALUE);

    let blob = core::ptr::addr_of!(hostile_t32_blob) as u64;
    let wfi_before = exit_count(exit_cause::WFI);
    let mmio_before = exit_count(exit_cause::MMIO);
    let undef_before = exit_count(exit_cause::UNDEF_INJECTED);
    let a = run_el0(blob + PROGRAM_A, 0);
    let b = run_el0(blob + PROGRAM_B, SCRATCH_REG);
    let wfi_exits = exit_count(exit_cause::WFI) - wfi_before;
    let mmio_exits = exit_count(exit_cause::MMIO) - mmio_before;
    let undef = exit_count(exit_cause::UNDEF_INJECTED) - undef_before;
    msr!("SCTLR_EL1", sctlr);

    let offset = |v: u64| v.wrapping_sub(blob) & 0xffff_ffff;
    println!(
        "aarch32-wfi: A: vector={:#x} esr={:#x} elr-offset={:#x} r1={} r4-offset={:#x}",
        a.vector,
        a.esr,
        offset(a.elr),
        a.r1,
        offset(a.r4)
    );
    println!(
        "aarch32-wfi: B: vector={:#x} esr={:#x} elr-offset={:#x} r2={} r3={} r6={:#x} r7={}",
        b.vector,
        b.esr,
        offset(b.elr),
        b.r2,
        b.r3,
        b.r6,
        b.r7
    );
    println!("aarch32-wfi: wfi-exits={wfi_exits} mmio-exits={mmio_exits} undef={undef}");
    let mut failures = 0;
    let mut check = |ok: bool, what: &str| {
        if !ok {
            println!("aarch32-wfi: FAIL {what}");
            failures += 1;
        }
    };
    for r in [&a, &b] {
        check(
            r.vector == 0x600,
            "EL0 did not come back through the AArch32 sync vector",
        );
        check(
            (r.esr >> 26) & 0x3f == EC_SVC32,
            "exception back at EL1 is not the SVC",
        );
    }
    check(
        offset(a.elr) == A_SVC + 2,
        "program A did not reach its SVC",
    );
    check(
        a.r1 == 1,
        "the instruction after a 16-bit WFI did not run exactly once",
    );
    check(
        offset(a.r4) == A_MOV_R4_PC + 4,
        "resume PC after the 16-bit WFI wrong",
    );
    check(
        offset(b.elr) == B_SVC + 2,
        "program B did not reach its SVC",
    );
    check(
        b.r6 == u64::from(SCRATCH_VALUE),
        "16-bit MMIO load in an IT block not emulated",
    );
    check(
        b.r3 == 1 && b.r7 == 1,
        "IT state not advanced past an emulated load",
    );
    check(
        b.r2 == 1,
        "IT block after a failed-condition WFI went wrong",
    );
    check(
        wfi_exits == 1,
        "a WFI that failed its condition waited, or a WFI did not trap",
    );
    check(mmio_exits == 1, "the MMIO load did not trap exactly once");
    check(undef == 0, "an UNDEFINED exception was injected");
    if failures == 0 {
        println!("aarch32-wfi: PASS");
    }
}
