//! The child binary's global allocator: the system allocator, except that a failed allocation
//! is reported as out of memory before the process ends.
//!
//! Rust's default reaction to a failed allocation is `abort()`, a `SIGABRT` the supervisor can
//! only call a crash (and that seccomp turns into a blocked `tgkill`). A child runs at an
//! address-space limit sized from its function's memory limit, so a failed native allocation
//! is the function using too much memory: [`die_out_of_memory`] says so (`Fatal { step:
//! "memory" }`) and the activation ends as `MemoryLimit`. Only the child binary installs it; the
//! supervisor, which links the same library, keeps the default allocator.

use sandbox_child::confine::sigsys::die_out_of_memory;
use std::alloc::{GlobalAlloc, Layout, System};

pub struct ReportingAlloc;

// SAFETY: every method forwards to `System` with the same arguments and returns its result
// unchanged when it is not null, so `System`'s guarantees (alignment, size, validity until
// dealloc) are this allocator's; a null result never returns (the process ends).
unsafe impl GlobalAlloc for ReportingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            die_out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            die_out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout` (the caller's contract).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            die_out_of_memory(new_size);
        }
        p
    }
}
