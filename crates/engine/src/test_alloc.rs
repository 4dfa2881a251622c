//! The test binary's allocator: the system allocator, with per-thread figures a test
//! can read (the largest single request, and the peak of bytes held) to prove that a
//! decoder does not reserve what its input merely declares.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    // `try_with`: a thread being torn down has no slots left; it is not measured.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    let _ = HELD.try_with(|h| {
        let now = h.get() + size as isize;
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn note_free(size: usize) {
    let _ = HELD.try_with(|h| h.set(h.get() - size as isize));
}

// SAFETY: every call is forwarded to `System` with the same arguments, which upholds
// the `GlobalAlloc` contract; the bookkeeping only touches const-initialised
// thread-locals (no allocation, no panic).
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it asked for
/// and the peak of bytes it held at once beyond what was held before (this thread).
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = HELD.with(|h| h.get());
    LARGEST.with(|l| l.set(0));
    PEAK.with(|p| p.set(base));
    let out = f();
    let largest = LARGEST.with(|l| l.get());
    let peak = PEAK.with(|p| p.get()) - base;
    (out, largest, peak.max(0) as usize)
}

/// Bytes this thread holds now (allocated and not yet freed).
pub fn held() -> isize {
    HELD.with(|h| h.get())
}
