//! FP/SIMD register file save and restore, for switching vCPUs.
//!
//! The hypervisor is built soft-float and never touches V0-V31, FPCR or
//! FPSR itself, so these hold the running guest's values until a switch
//! stores them. CPTR_EL2.TFP is clear, so EL2 may execute these instructions.

/// V0-V31 as (low, high) 64-bit halves.
pub type VRegs = [[u64; 2]; 32];

extern "C" {
    fn hv_fp_save(v: *mut VRegs, fpcr: *mut u64, fpsr: *mut u64);
    fn hv_fp_restore(v: *const VRegs, fpcr: *const u64, fpsr: *const u64);
}

/// Store this CPU's FP/SIMD registers, straight into the caller's context.
pub fn save(v: &mut VRegs, fpcr: &mut u64, fpsr: &mut u64) {
    // SAFETY: the pointers come from live exclusive references to a 512-byte
    // array and two words, the only memory hv_fp_save writes (unaligned Q
    // stores are fine: EL2 runs with alignment checks off); it clobbers
    // only x0-x4 (caller-saved).
    unsafe { hv_fp_save(v, fpcr, fpsr) }
}

/// Load this CPU's FP/SIMD registers from the caller's context.
pub fn restore(v: &VRegs, fpcr: &u64, fpsr: &u64) {
    // SAFETY: the pointers come from live references, which hv_fp_restore
    // only reads; it clobbers only x0-x4 and V0-V31, which the soft-float
    // hypervisor does not use.
    unsafe { hv_fp_restore(v, fpcr, fpsr) }
}

core::arch::global_asm!(
    r#"
.arch_extension fp
.arch_extension simd
.section .text
.global hv_fp_save
hv_fp_save:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    mrs     x3, fpcr
    str     x3, [x1]
    mrs     x4, fpsr
    str     x4, [x2]
    ret

.global hv_fp_restore
hv_fp_restore:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    ldr     x3, [x1]
    msr     fpcr, x3
    ldr     x4, [x2]
    msr     fpsr, x4
    ret
"#
);
