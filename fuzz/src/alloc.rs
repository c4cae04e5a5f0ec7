//! A global allocator that remembers the largest single allocation since the last
//! [`reset`], so a target can assert that hostile input never makes the code under test size an
//! allocation by a number it was merely told (a length prefix, a tar size field).
//!
//! libFuzzer runs the target on one thread, so relaxed atomics are exact here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, recording the largest request. Install it in a target with
/// `#[global_allocator] static ALLOC: Counting = Counting;`.
pub struct Counting;

fn note(size: usize) {
    if size > LARGEST.load(Ordering::Relaxed) {
        LARGEST.store(size, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// GlobalAlloc contract is System's; the bookkeeping touches only an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator (that is, from System).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator (that is, from System).
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Forgets the largest allocation seen so far.
pub fn reset() {
    LARGEST.store(0, Ordering::Relaxed);
}

/// The largest single allocation (or reallocation target) since [`reset`], in bytes.
pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// Whether [`Counting`] is the global allocator of this binary: checks built on [`largest`]
/// would pass vacuously without it.
pub fn installed() -> bool {
    reset();
    let probe = std::hint::black_box(vec![0u8; 4321]);
    let seen = largest() >= probe.len();
    drop(probe);
    reset();
    seen
}
