//! hlua's global allocator: dlmalloc, which maps memory as it is needed and reserves nothing
//! ahead (so the memory budget stays a budget of what Lua uses), and is as fast as glibc's
//! malloc for Lua's many small blocks where musl's is not (docs/overhead.md).
//!
//! dlmalloc's own global allocator takes a pthread mutex around every call, a tenth of the time
//! of an allocation-heavy script on musl (two function calls each). hlua runs one thread, so the
//! lock here is a flag: one atomic exchange, never contended, still correct if a thread ever
//! shared it (it would spin).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use dlmalloc::Dlmalloc;

/// dlmalloc behind a flag that admits one caller at a time.
pub struct Allocator {
    busy: AtomicBool,
    heap: UnsafeCell<Dlmalloc>,
}

// SAFETY: the heap is reached only through `with_heap`, which holds the flag for the whole call.
unsafe impl Sync for Allocator {}

impl Allocator {
    pub const fn new() -> Self {
        Self { busy: AtomicBool::new(false), heap: UnsafeCell::new(Dlmalloc::new()) }
    }

    /// Runs `call` on the heap while holding the flag.
    fn with_heap<T>(&self, call: impl FnOnce(&mut Dlmalloc) -> T) -> T {
        while self.busy.swap(true, Ordering::Acquire) {
            std::hint::spin_loop();
        }
        // SAFETY: the flag was clear and is now ours: no other reference to the heap exists
        // until it is released below.
        let result = call(unsafe { &mut *self.heap.get() });
        self.busy.store(false, Ordering::Release);
        result
    }
}

// SAFETY: each method passes its arguments to the dlmalloc call of the same contract (size and
// alignment of the layout; a block with the layout it was allocated with).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the trait requires of the caller: a layout of non-zero size.
        self.with_heap(|heap| unsafe { heap.malloc(layout.size(), layout.align()) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        self.with_heap(|heap| unsafe { heap.calloc(layout.size(), layout.align()) })
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block of this allocator with the layout it was made with.
        self.with_heap(|heap| unsafe { heap.free(block, layout.size(), layout.align()) })
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and a new size that makes a valid layout with its alignment.
        self.with_heap(|heap| unsafe { heap.realloc(block, layout.size(), layout.align(), new_size) })
    }
}
