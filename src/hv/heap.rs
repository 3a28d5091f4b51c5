//! The hypervisor heap: a buddy allocator over a static region in BSS.
//! Only set-up paths allocate (VM creation, table building); exit handlers
//! do not.

use core::mem::MaybeUninit;

use buddy_system_allocator::LockedHeap;

const HEAP_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct HeapArea([u8; HEAP_SIZE]);

/// Outside the BSS, so the boot code does not zero it: the allocator needs
/// no zeroed memory (it writes its free-list links; `alloc_zeroed` zeroes
/// what it hands out), and pages never allocated are never touched, which
/// under QEMU means never backed by the host.
#[link_section = ".noinit.heap"]
static mut HEAP_AREA: MaybeUninit<HeapArea> = MaybeUninit::uninit();

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hand the static area to the allocator (once, on the boot CPU).
pub fn init() {
    // SAFETY: called once before any allocation; the area is used only by the heap.
    unsafe {
        let start = core::ptr::addr_of_mut!(HEAP_AREA) as usize;
        HEAP.lock().init(start, HEAP_SIZE);
    }
}
