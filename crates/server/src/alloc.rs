//! A counting global allocator: `used_memory` in INFO and the `maxmemory` check read
//! the bytes currently allocated, as Redis reads its allocator's statistics. The
//! allocations themselves go to mimalloc (built without transparent huge pages: with
//! them, 150 clients announcing large bulks held 171 MiB of RSS instead of 12 MiB).

use mimalloc::MiMalloc as Backend;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// Install in the binary with `#[global_allocator]`.
pub struct CountingAlloc;

// SAFETY: every method forwards to the backend allocator unchanged and only adds
// relaxed counter updates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { Backend.alloc(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { Backend.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { Backend.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { Backend.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                ALLOCATED.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                ALLOCATED.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Bytes currently allocated, or None when the counting allocator is not installed.
pub fn allocated() -> Option<u64> {
    match ALLOCATED.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n as u64),
    }
}
