//! The engine's counting allocator.
//!
//! QuickJS's own `JS_SetMemoryLimit` is a no-op once a custom allocator is installed, and its
//! out-of-memory error is an ordinary exception the guest can catch and ignore. So the limit is
//! enforced here instead: every allocation QuickJS makes goes through [`CountingAllocator`],
//! which counts the live bytes (as `malloc_usable_size` reports them), tracks the peak, and
//! refuses (returns null) any request that would take the total past the limit. A refusal sets a
//! *sticky* flag in [`MemoryState`] that only the host can read and that JavaScript has no way to
//! reach or clear; the engine's interrupt handler stops the run as soon as it sees the flag and
//! the invocation is reported as `MemoryLimit` whatever the guest did afterwards.
//!
//! An allocation libc refuses below our limit (the address-space rlimit, the kernel) sets the
//! same flag: every out-of-memory of the engine is a `MemoryLimit`, whatever refused it.
//!
//! Everything here runs inside `extern "C"` callbacks from QuickJS, where a panic would abort
//! the process: no code path in this file may panic (no unwrap, checked arithmetic only).

use rquickjs::allocator::Allocator;
use std::cell::Cell;
use std::rc::Rc;

/// Shared between the allocator (owned by the QuickJS runtime) and the engine.
///
/// `Cell`s are enough: a runtime is used by one thread, and the allocator and the engine never
/// hold a borrow across a call into each other.
#[derive(Debug)]
pub struct MemoryState {
    live: Cell<usize>,
    peak: Cell<usize>,
    limit: Cell<usize>,
    exceeded: Cell<bool>,
}

impl MemoryState {
    /// A state with no limit; [`MemoryState::set_limit`] sets one once the bundle is known.
    pub fn new() -> Rc<Self> {
        Rc::new(MemoryState {
            live: Cell::new(0),
            peak: Cell::new(0),
            limit: Cell::new(usize::MAX),
            exceeded: Cell::new(false),
        })
    }

    /// Bytes currently held by the runtime.
    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// Highest value of [`MemoryState::live`] since the last [`MemoryState::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.get()
    }

    /// Starts a new peak measurement from the current live bytes.
    pub fn reset_peak(&self) {
        self.peak.set(self.live.get());
    }

    /// The limit in bytes (`usize::MAX` = none).
    pub fn limit(&self) -> usize {
        self.limit.get()
    }

    /// Sets the limit. Applies to later allocations only; memory already held stays counted.
    pub fn set_limit(&self, bytes: u64) {
        self.limit.set(usize::try_from(bytes).unwrap_or(usize::MAX));
    }

    /// True once any allocation was refused. Never cleared: a runtime that hit its limit is
    /// not trusted to be in a sane state and the process is expected to exit.
    pub fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    /// Whether `extra` more bytes fit; sets the sticky flag when they do not.
    fn admit(&self, extra: usize) -> bool {
        match self.live.get().checked_add(extra) {
            Some(total) if total <= self.limit.get() => true,
            _ => {
                self.exceeded.set(true);
                false
            }
        }
    }

    fn add(&self, bytes: usize) {
        let live = self.live.get().saturating_add(bytes);
        self.live.set(live);
        if live > self.peak.get() {
            self.peak.set(live);
        }
    }

    fn sub(&self, bytes: usize) {
        self.live.set(self.live.get().saturating_sub(bytes));
    }
}

/// libc `malloc` family with accounting against a [`MemoryState`].
///
/// libc rather than the Rust global allocator because `malloc_usable_size` gives the real size
/// of a block without a size header, and glibc's 16-byte alignment satisfies QuickJS.
pub struct CountingAllocator {
    state: Rc<MemoryState>,
}

impl CountingAllocator {
    pub fn new(state: Rc<MemoryState>) -> Self {
        CountingAllocator { state }
    }
}

/// Size of a live block. Null has size 0.
fn usable(ptr: *mut u8) -> usize {
    if ptr.is_null() {
        return 0;
    }
    // SAFETY: every non-null pointer reaching here came from libc malloc/calloc/realloc
    // through this allocator and has not been freed yet (QuickJS's contract).
    unsafe { libc::malloc_usable_size(ptr.cast()) }
}

// SAFETY: all blocks come from libc's malloc family, which returns null or a block of at least
// the requested size aligned for any fundamental type (16 bytes on glibc/x86_64 and aarch64),
// which covers QuickJS's requirement of `usize` alignment; `usable_size` reports libc's
// `malloc_usable_size` of those same blocks.
unsafe impl Allocator for CountingAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.state.admit(size) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain libc malloc; a zero size is allowed and yields null or a unique block.
        let ptr = unsafe { libc::malloc(size) }.cast::<u8>();
        if ptr.is_null() && size > 0 {
            // Refused below our limit (the address-space limit): out of memory all the same.
            self.state.exceeded.set(true);
        }
        self.state.add(usable(ptr));
        ptr
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return std::ptr::null_mut();
        };
        if !self.state.admit(total) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain libc calloc; the product was checked for overflow above.
        let ptr = unsafe { libc::calloc(count, size) }.cast::<u8>();
        if ptr.is_null() && total > 0 {
            self.state.exceeded.set(true);
        }
        self.state.add(usable(ptr));
        ptr
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        self.state.sub(usable(ptr));
        // SAFETY: the caller guarantees `ptr` came from this allocator (libc) and is live;
        // free(NULL) is a no-op.
        unsafe { libc::free(ptr.cast()) };
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.alloc(new_size);
        }
        let old = usable(ptr);
        // Only growth beyond the block's current size is charged; shrinking always succeeds.
        if new_size > old && !self.state.admit(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` is a live libc block (caller's contract). On failure libc leaves the
        // old block untouched, so the accounting is only changed on success. realloc(p, 0)
        // may free and return null; then the old block is gone and its bytes are released.
        let new = unsafe { libc::realloc(ptr.cast(), new_size) }.cast::<u8>();
        if new.is_null() {
            if new_size == 0 {
                self.state.sub(old);
            } else {
                self.state.exceeded.set(true);
            }
            return new;
        }
        self.state.sub(old);
        self.state.add(usable(new));
        new
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        usable(ptr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_refuses_past_the_limit() {
        let state = MemoryState::new();
        let mut a = CountingAllocator::new(state.clone());
        state.set_limit(4096);
        let p = a.alloc(1000);
        assert!(!p.is_null());
        assert!(state.live() >= 1000);
        assert!(!state.exceeded());
        let q = a.alloc(10_000);
        assert!(q.is_null());
        assert!(state.exceeded());
        // SAFETY: `p` came from `a` and is live.
        let p = unsafe { a.realloc(p, 2000) };
        assert!(!p.is_null());
        // SAFETY: `p` came from `a` and is live.
        unsafe { a.dealloc(p) };
        assert_eq!(state.live(), 0);
        assert!(state.exceeded(), "the flag is sticky");
        assert!(state.peak() >= 2000);
    }

    #[test]
    fn edge_cases_do_not_panic() {
        let state = MemoryState::new();
        let mut a = CountingAllocator::new(state.clone());
        assert!(a.calloc(usize::MAX, 2).is_null());
        // SAFETY: null is accepted as "allocate".
        let p = unsafe { a.realloc(std::ptr::null_mut(), 16) };
        assert!(!p.is_null());
        // SAFETY: `p` came from `a` and is live.
        unsafe { a.dealloc(p) };
        let z = a.alloc(0);
        // SAFETY: null or a live block from `a`.
        unsafe { a.dealloc(z) };
        assert_eq!(state.live(), 0);
        state.set_limit(1 << 20);
        assert!(a.alloc(usize::MAX).is_null());
    }
}
