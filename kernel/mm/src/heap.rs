//! The kernel heap: a buddy allocator (crate `buddy_system_allocator`) that starts small
//! and grows by taking contiguous runs of frames when it runs dry, so the root
//! filesystem's file data and the application's pages share all of RAM.

use crate::frames;
use buddy_system_allocator::{Heap, LockedHeapWithRescue};
use core::alloc::Layout;
use skiff_arch::layout::{phys_to_virt, PAGE_SIZE};

/// Smallest growth step.
const GROW_MIN: u64 = 2 << 20;

fn grow(heap: &mut Heap<32>, layout: &Layout) {
    let want = (layout.size().max(layout.align()) as u64 * 2)
        .max(GROW_MIN)
        .next_power_of_two();
    let mut size = want;
    while size >= PAGE_SIZE * 16 && size >= layout.size() as u64 {
        if let Some(phys) = frames::alloc_contiguous(size / PAGE_SIZE, PAGE_SIZE) {
            let start = phys_to_virt(phys) as usize;
            // SAFETY: the frames were just taken from the frame allocator and are mapped
            // by the direct map; the heap owns them from now on.
            unsafe { heap.add_to_heap(start, start + size as usize) };
            return;
        }
        size /= 2;
    }
}

/// The kernel's global allocator. Growth needs [`frames::init`] first.
pub type KernelHeap = LockedHeapWithRescue<32>;

/// A heap that grows from the frame allocator.
pub const fn new_heap() -> KernelHeap {
    LockedHeapWithRescue::new(grow)
}
