//! The EL2 exception vector table and the guest exit/entry path.
//!
//! While a guest runs, SP_EL2 points at this CPU's [`GuestRegs`] save area
//! (see `boot.rs`), so an exit saves x0-x30 there, calls the Rust handler
//! with a pointer to them, restores them (possibly changed) and ERETs. The
//! guest's EL1 system registers stay live in hardware: each physical CPU runs
//! exactly one vCPU, so nothing else ever needs them.
//!
//! [`GuestRegs`]: crate::boot::GuestRegs

extern "C" {
    static hv_vectors: u8;
}

/// Install the vector table on this CPU.
pub fn install() {
    let base = core::ptr::addr_of!(hv_vectors) as u64;
    write_sysreg!("VBAR_EL2", base);
    crate::sysreg::isb();
}

core::arch::global_asm!(
    r#"
.macro SAVE_GUEST_AND_CALL handler
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mov     x0, sp
    bl      \handler
    b       hv_guest_return
.endm

.macro HV_FAULT kind
    mov     x0, #\kind
    b       hv_current_el_fault
.endm

.section .text.vectors, "ax"
.balign 0x800
.global hv_vectors
hv_vectors:
    // Current EL with SP_EL0: never used by the hypervisor.
    .balign 0x80
    HV_FAULT 0
    .balign 0x80
    HV_FAULT 1
    .balign 0x80
    HV_FAULT 2
    .balign 0x80
    HV_FAULT 3
    // Current EL with SP_EL2: a fault in the hypervisor itself.
    .balign 0x80
    HV_FAULT 4
    .balign 0x80
    HV_FAULT 5
    .balign 0x80
    HV_FAULT 6
    .balign 0x80
    HV_FAULT 7
    // Lower EL, AArch64: VM exits.
    .balign 0x80
    SAVE_GUEST_AND_CALL hv_lower_sync
    .balign 0x80
    SAVE_GUEST_AND_CALL hv_lower_irq
    .balign 0x80
    SAVE_GUEST_AND_CALL hv_lower_irq
    .balign 0x80
    SAVE_GUEST_AND_CALL hv_lower_serror
    // Lower EL, AArch32: only guest EL0 can be AArch32 (HCR_EL2.RW=1).
    .balign 0x80
    SAVE_GUEST_AND_CALL hv_lower_aarch32
    .balign 0x80
    SAVE_GUEST_AND_CALL hv_lower_irq
    .balign 0x80
    SAVE_GUEST_AND_CALL hv_lower_irq
    .balign 0x80
    SAVE_GUEST_AND_CALL hv_lower_serror

.section .text
.global hv_guest_return
hv_guest_return:
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    eret
"#
);
