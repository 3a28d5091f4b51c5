//! Boot entry (arm64 Image header), per-CPU stacks and the first jump into Rust.
//!
//! QEMU loads the hypervisor like a Linux Image: at RAM base + 2 MiB, at EL2,
//! with the device-tree address in x0. Secondary CPUs are started later
//! through PSCI CPU_ON at [`secondary_entry_address`] with their index in x0.

use crate::MAX_CPUS;

/// Bytes of stack each physical CPU gets.
pub const STACK_SIZE: usize = 64 * 1024;

/// A guest's general-purpose registers, saved on every exit from a lower EL.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct GuestRegs {
    /// x0..x30.
    pub x: [u64; 31],
    _pad: u64,
}

/// Each CPU's stack, with its guest register save area right above the
/// stack top: on an exit the vector code finds the save area at SP_EL2
/// without needing a free register.
#[repr(C, align(4096))]
pub struct PerCpu {
    stack: [u8; STACK_SIZE],
    regs: GuestRegs,
}

#[no_mangle]
static mut HV_PERCPU: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        stack: [0; STACK_SIZE],
        regs: GuestRegs {
            x: [0; 31],
            _pad: 0,
        },
    }
}; MAX_CPUS];

/// The register save area of physical CPU `cpu` (valid for `cpu < MAX_CPUS`).
pub fn guest_regs(cpu: usize) -> *mut GuestRegs {
    // SAFETY: only the address is taken; each CPU touches its own slot.
    unsafe { core::ptr::addr_of_mut!(HV_PERCPU[cpu % MAX_CPUS].regs) }
}

extern "C" {
    fn secondary_entry();
    fn hv_enter_guest_asm(regs: *const GuestRegs) -> !;
}

/// Physical address to give PSCI CPU_ON for a secondary CPU.
pub fn secondary_entry_address() -> u64 {
    secondary_entry as *const () as u64
}

/// Load the guest's registers from this CPU's save area and ERET into it.
/// ELR_EL2 and SPSR_EL2 must already hold the guest's PC and PSTATE.
pub fn enter_guest(cpu: usize) -> ! {
    // SAFETY: the save area belongs to this CPU; the asm resets SP to it.
    unsafe { hv_enter_guest_asm(guest_regs(cpu)) }
}

core::arch::global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    b       primary_entry
    .long   0
    .quad   0                       // text_offset
    .quad   __image_end - _start    // image_size, BSS included
    .quad   0x2                     // flags: little-endian, 4 KiB pages
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .long   0

primary_entry:
    mov     x19, x0                 // device tree
    msr     daifset, #0xf
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    park
    // We are linked at a fixed address; refuse to run anywhere else.
    adr     x1, _start
    ldr     x2, =_start
    cmp     x1, x2
    b.ne    park
    msr     spsel, #1
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    bl      set_cpu_stack
    mov     x0, x19
    bl      hv_primary_main
    b       park

.global secondary_entry
secondary_entry:
    msr     daifset, #0xf
    msr     spsel, #1
    mov     x19, x0                 // CPU index
    mov     x1, x0
    bl      set_cpu_stack
    mov     x0, x19
    bl      hv_secondary_main
    b       park

// sp = &HV_PERCPU[x1].regs (the stack grows down from there). Clobbers x2, x3.
set_cpu_stack:
    ldr     x2, =HV_PERCPU
    ldr     x3, ={percpu_size}
    madd    x2, x1, x3, x2
    ldr     x3, ={stack_size}
    add     x2, x2, x3
    mov     sp, x2
    ret

park:
    wfe
    b       park

.section .text
.global hv_enter_guest_asm
hv_enter_guest_asm:
    mov     sp, x0
    b       hv_guest_return
"#,
    percpu_size = const core::mem::size_of::<PerCpu>(),
    stack_size = const STACK_SIZE,
);
