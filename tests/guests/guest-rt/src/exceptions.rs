//! The guest's EL1 exception vector. A test arms [`expect_exception`], runs
//! an instruction that should fault, and reads back what was delivered.
//! Synchronous exceptions skip the faulting instruction; IRQs are counted.

/// What the last synchronous exception looked like.
#[derive(Clone, Copy, Debug, Default)]
pub struct Taken {
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
    pub count: u64,
}

static mut LAST: Taken = Taken {
    esr: 0,
    far: 0,
    elr: 0,
    count: 0,
};
static mut EXPECTING: bool = false;

/// Arm the handler for one expected synchronous exception.
pub fn expect_exception() {
    // SAFETY: single-CPU guest; handler and caller never run concurrently.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!(EXPECTING), true);
        let last = core::ptr::addr_of_mut!(LAST);
        core::ptr::write_volatile(
            last,
            Taken {
                count: 0,
                ..Taken::default()
            },
        );
    }
}

/// The exceptions taken since [`expect_exception`].
pub fn taken() -> Taken {
    // SAFETY: as expect_exception.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(LAST)) }
}

/// Exception class of an ESR.
pub fn ec(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

#[no_mangle]
extern "C" fn guest_sync_exception(esr: u64, elr: u64, far: u64) -> u64 {
    // SAFETY: as expect_exception.
    unsafe {
        let last = core::ptr::addr_of_mut!(LAST);
        let count = core::ptr::read_volatile(last).count + 1;
        core::ptr::write_volatile(
            last,
            Taken {
                esr,
                far,
                elr,
                count,
            },
        );
        if !core::ptr::read_volatile(core::ptr::addr_of!(EXPECTING)) {
            crate::println!("GUEST UNEXPECTED EXCEPTION esr={esr:#x} elr={elr:#x} far={far:#x}");
            crate::smccc::system_off();
        }
        core::ptr::write_volatile(core::ptr::addr_of_mut!(EXPECTING), false);
    }
    elr + 4
}

core::arch::global_asm!(
    r#"
.macro SYNC_ENTRY
    sub     sp, sp, #192
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    str     x30, [sp, #160]
    b       guest_sync_common
.endm

.section .text.vectors, "ax"
.balign 0x800
.global guest_vectors
guest_vectors:
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .
    // Current EL with SP_ELx
    .balign 0x80
    SYNC_ENTRY
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .
    // Lower EL (unused)
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .
    .balign 0x80
    b .

.section .text
guest_sync_common:
    mrs     x0, esr_el1
    mrs     x1, elr_el1
    mrs     x2, far_el1
    bl      guest_sync_exception
    msr     elr_el1, x0
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x29, [sp, #144]
    ldr     x30, [sp, #160]
    add     sp, sp, #192
    eret
"#
);
