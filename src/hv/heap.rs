//! The hypervisor heap: a buddy allocator over a static region in BSS.
//! Only set-up paths allocate (VM creation, table building); exit handlers
//! do not.

use buddy_system_allocator::LockedHeap;

const HEAP_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct HeapArea([u8; HEAP_SIZE]);

static mut HEAP_AREA: HeapArea = HeapArea([0; HEAP_SIZE]);

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
