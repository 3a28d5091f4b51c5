//! A minimal EL1 runtime for guests written in this repository: an arm64
//! Image header (so the hypervisor loads them exactly as it loads Linux),
//! a stack, a console on the PL011, SMCCC calls, and an exception vector
//! that lets a test observe the exceptions the hypervisor injects.
//!
//! The guest runs with its MMU off, so all data accesses are Device
//! accesses: the target is built with strict alignment and the runtime uses
//! no atomics.
#![no_std]

pub mod console;
pub mod exceptions;
pub mod smccc;

/// Read a system register by name.
#[macro_export]
macro_rules! mrs {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading a system register; the guest is EL1.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nostack)) };
        v
    }};
}

/// Write a system register by name.
#[macro_export]
macro_rules! msr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the caller picks a register whose write is valid at EL1.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nostack)) };
        // SAFETY: barrier only.
        unsafe { core::arch::asm!("isb", options(nostack)) };
    }};
}

/// Volatile MMIO read of `T` at `addr`.
pub fn mmio_read<T: Copy>(addr: usize) -> T {
    // SAFETY: the caller names a device (or deliberately unmapped) address.
    unsafe { core::ptr::read_volatile(addr as *const T) }
}

/// Volatile MMIO write of `T` at `addr`.
pub fn mmio_write<T: Copy>(addr: usize, value: T) {
    // SAFETY: as mmio_read.
    unsafe { core::ptr::write_volatile(addr as *mut T, value) }
}

core::arch::global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    b       guest_entry
    .long   0
    .quad   0x200000                // text_offset: 2 MiB into RAM
    .quad   __image_end - _start    // image_size
    .quad   0x2                     // little-endian, 4 KiB pages
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .long   0
guest_entry:
    mov     x19, x0                 // device tree
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  ldr     x1, =__stack_top
    mov     sp, x1
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      guest_main
3:  wfi
    b       3b

// Every guest defines guest_secondary_main. Secondary vCPUs (PSCI CPU_ON with this entry and the CPU number in x0):
// 32 KiB of stack per CPU, CPU n just below CPU n-1; then guest_secondary_main(cpu).
.global guest_secondary_entry
guest_secondary_entry:
    mov     x19, x0
    ldr     x1, =__stack_top
    lsl     x2, x0, #15
    sub     x1, x1, x2
    mov     sp, x1
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      guest_secondary_main
4:  wfi
    b       4b
"#
);

extern "C" {
    fn guest_secondary_entry();
}

/// Address to pass to PSCI CPU_ON for a secondary vCPU of this guest.
pub fn secondary_entry_address() -> u64 {
    guest_secondary_entry as *const () as u64
}

/// Read the virtual counter (ordered after earlier instructions).
#[inline(always)]
pub fn counter() -> u64 {
    let v: u64;
    // SAFETY: ISB + counter read.
    unsafe { core::arch::asm!("isb", "mrs {}, CNTVCT_EL0", out(reg) v, options(nostack)) };
    v
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("GUEST PANIC: {}", info.message());
    smccc::system_off()
}

/// Minimal virtio-mmio driver steps shared by the test and bench guests.
pub mod virtio {
    use crate::{mmio_read, mmio_write};

    /// Where QEMU virt (and the hypervisor's test VM) put the first virtio-mmio device.
    pub const BASE: usize = 0x0A00_0000;
    pub const STATUS: usize = 0x70;
    pub const QUEUE_READY: usize = 0x44;
    pub const QUEUE_NOTIFY: usize = 0x50;
    pub const NEEDS_RESET: u32 = 0x40;
    const ACK_DRIVER_FEATURES_OK: u32 = 1 | 2 | 8;
    const DRIVER_OK: u32 = 4;

    /// Rings of one virtqueue: descriptors, available ring, used ring, a page each.
    #[repr(C, align(4096))]
    pub struct Rings(pub [u8; 0x3000]);

    /// Initialise the device and queue 0 of `size` entries with rings at
    /// `rings` (a guest-physical address), as virtio 4.2.3 describes.
    /// Returns whether the queue went live without DEVICE_NEEDS_RESET.
    pub fn setup_queue(rings: u64, size: u32) -> bool {
        mmio_write::<u32>(BASE + STATUS, ACK_DRIVER_FEATURES_OK);
        mmio_write::<u32>(BASE + 0x30, 0); // QueueSel
        mmio_write::<u32>(BASE + 0x38, size); // QueueNum
        for (offset, addr) in [
            (0x80, rings),
            (0x90, rings + 0x1000),
            (0xa0, rings + 0x2000),
        ] {
            mmio_write::<u32>(BASE + offset, addr as u32);
            mmio_write::<u32>(BASE + offset + 4, (addr >> 32) as u32);
        }
        mmio_write::<u32>(BASE + QUEUE_READY, 1);
        mmio_write::<u32>(BASE + STATUS, ACK_DRIVER_FEATURES_OK | DRIVER_OK);
        mmio_read::<u32>(BASE + QUEUE_READY) == 1
            && mmio_read::<u32>(BASE + STATUS) & NEEDS_RESET == 0
    }
}
