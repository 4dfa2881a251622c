//! A counting global allocator: `used_memory` in INFO and the `maxmemory` check read
//! the bytes currently allocated, as Redis reads its allocator's statistics. The
//! allocations themselves go to mimalloc (built without transparent huge pages: with
//! them, 150 clients announcing large bulks held 171 MiB of RSS instead of 12 MiB).

use libmimalloc_sys as mi;
use mimalloc::MiMalloc as Backend;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// Counter shards. Shard 0 is shared (atomic read-modify-write); each of the others
/// belongs to one thread, which updates it with a plain load and store: no locked
/// instruction on the allocation path (a `lock xadd` per allocation and free was
/// ~4 % of a pipelined EVALSHA, about 30 of them per call). A thread frees what
/// another allocated, so a shard may go negative; the sum is what counts.
const SHARDS: usize = 16;

#[repr(align(64))]
struct Shard(AtomicIsize);

static COUNTS: [Shard; SHARDS] = [const { Shard(AtomicIsize::new(0)) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's shard (0 until assigned, and for threads beyond the shards).
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn count(delta: isize) {
    let shard = SHARD
        .try_with(|s| {
            let v = s.get();
            if v != usize::MAX {
                return v;
            }
            let n = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
            let v = if n < SHARDS { n } else { 0 };
            s.set(v);
            v
        })
        .unwrap_or(0);
    let c = &COUNTS[shard].0;
    if shard == 0 {
        c.fetch_add(delta, Ordering::Relaxed);
    } else {
        // Only this thread writes this shard.
        c.store(
            c.load(Ordering::Relaxed).wrapping_add(delta),
            Ordering::Relaxed,
        );
    }
}

/// Install in the binary with `#[global_allocator]`.
pub struct CountingAlloc;

/// Whether plain `mi_malloc(size)` meets the alignment: mimalloc's blocks of 16 bytes
/// or more are 16-aligned (its size classes are whole double words and a page's first
/// block is 16-aligned), smaller ones 8-aligned; an alignment no larger than the size
/// (both powers of two below 16 then) is met too. The same rule as the standard
/// library's `System` allocator with malloc.
///
/// The `mimalloc` crate sends every request to `mi_malloc_aligned`, whose fast path
/// needs a free block already at hand: otherwise a size class that is not a power of
/// two (24, 48, 80 bytes: a Lua table, a trie node) falls to over-allocation (size +
/// alignment - 1, then aligned inside). That was 41 % of a script call's allocations.
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= 16 && align <= size.max(1)
}

// SAFETY: every method forwards to mimalloc (plain calls where `plain` says the
// alignment is met, the aligned ones otherwise; `mi_free` releases either) and only
// adds counter updates (which neither allocate nor touch the returned memory).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = if plain(layout.size(), layout.align()) {
            unsafe { mi::mi_malloc(layout.size()) as *mut u8 }
        } else {
            unsafe { Backend.alloc(layout) }
        };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = if plain(layout.size(), layout.align()) {
            unsafe { mi::mi_zalloc(layout.size()) as *mut u8 }
        } else {
            unsafe { Backend.alloc_zeroed(layout) }
        };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mi::mi_free(ptr as *mut std::ffi::c_void) };
        count(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = if plain(new_size, layout.align()) {
            unsafe { mi::mi_realloc(ptr as *mut std::ffi::c_void, new_size) as *mut u8 }
        } else {
            unsafe { Backend.realloc(ptr, layout, new_size) }
        };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Bytes currently allocated, or None when the counting allocator is not installed.
pub fn allocated() -> Option<u64> {
    let total: isize = COUNTS
        .iter()
        .map(|s| s.0.load(Ordering::Relaxed))
        .fold(0isize, |a, b| a.wrapping_add(b));
    match total {
        n if n <= 0 => None,
        n => Some(n as u64),
    }
}

// mimalloc's own entry points beyond malloc/free (in the library libmimalloc-sys
// builds; its Rust declarations of them sit behind a feature this crate does not use).
extern "C" {
    fn mi_collect(force: bool);
    fn mi_version() -> std::ffi::c_int;
    fn mi_stats_print_out(
        out: Option<unsafe extern "C" fn(msg: *const std::ffi::c_char, arg: *mut std::ffi::c_void)>,
        arg: *mut std::ffi::c_void,
    );
    fn mi_process_info(
        elapsed_msecs: *mut usize,
        user_msecs: *mut usize,
        system_msecs: *mut usize,
        current_rss: *mut usize,
        peak_rss: *mut usize,
        current_commit: *mut usize,
        peak_commit: *mut usize,
        page_faults: *mut usize,
    );
}

/// Bumped when memory was released in bulk (FLUSHALL, a big DEL, a snapshot's copy
/// dropped): every thread that allocates returns its free pages at its next chance.
static COLLECT_GEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COLLECTED_GEN: Cell<usize> = const { Cell::new(0) };
}

/// Asks the allocator to give free pages back to the system: each runtime worker
/// does it when it next goes idle ([`collect_if_requested`]), and the caller's
/// thread at once. mimalloc keeps freed pages per thread heap; `mi_collect(true)`
/// frees the empty ones and purges (decommits) them, which is what brings
/// `used_memory_rss` back towards `used_memory` after a bulk release.
pub fn request_collect() {
    COLLECT_GEN.fetch_add(1, Ordering::Relaxed);
    collect_if_requested();
}

/// Returns this thread's free pages to the system if a collection was requested
/// since it last did (one relaxed load otherwise: cheap enough for a worker's park
/// hook).
pub fn collect_if_requested() {
    let want = COLLECT_GEN.load(Ordering::Relaxed);
    let _ = COLLECTED_GEN.try_with(|c| {
        if c.get() != want {
            c.set(want);
            // SAFETY: mimalloc's collection of the calling thread's heap; no
            // arguments beyond the flag, callable from any thread at any time.
            unsafe { mi_collect(true) };
        }
    });
}

/// What mimalloc says about the process: (resident bytes, peak resident bytes,
/// committed bytes, peak committed bytes).
pub fn process_info() -> (u64, u64, u64, u64) {
    let mut v = [0usize; 8];
    let [a, b, c, rss, peak_rss, commit, peak_commit, faults] = &mut v;
    // SAFETY: every pointer is to a live, writable usize of this frame.
    unsafe { mi_process_info(a, b, c, rss, peak_rss, commit, peak_commit, faults) };
    (
        *rss as u64,
        *peak_rss as u64,
        *commit as u64,
        *peak_commit as u64,
    )
}

/// mimalloc's version as `major.minor.patch` (INFO `mem_allocator`).
pub fn version() -> String {
    // SAFETY: a constant query.
    let v = unsafe { mi_version() };
    format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
}

/// mimalloc's statistics report (MEMORY MALLOC-STATS), as text.
pub fn stats_text() -> String {
    unsafe extern "C" fn out(msg: *const std::ffi::c_char, arg: *mut std::ffi::c_void) {
        // SAFETY: `arg` is the `String` passed below, alive for the whole call; `msg`
        // is a NUL-terminated string mimalloc owns for the duration of this call.
        unsafe {
            let s = &mut *(arg as *mut String);
            if !msg.is_null() {
                s.push_str(&std::ffi::CStr::from_ptr(msg).to_string_lossy());
            }
        }
    }
    let mut s = String::new();
    // SAFETY: `out` only appends to `s` through `arg`, which outlives the call.
    unsafe { mi_stats_print_out(Some(out), (&mut s as *mut String).cast()) };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests move the shared counters: one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn blocks_meet_the_alignment_asked() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // Sizes around every small size class, at every alignment up to 64: the plain
        // and the aligned paths both return memory aligned as asked.
        let a = CountingAlloc;
        for size in 1..=300usize {
            for align in [1usize, 2, 4, 8, 16, 32, 64] {
                let l = Layout::from_size_align(size, align).unwrap();
                let mut held = Vec::new();
                for _ in 0..8 {
                    let p = unsafe { a.alloc(l) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    held.push(p);
                }
                for (i, p) in held.into_iter().enumerate() {
                    let q = unsafe { a.realloc(p, l, size + i * 7) };
                    assert_eq!(q as usize % align, 0, "realloc {size} align {align}");
                    unsafe { a.dealloc(q, Layout::from_size_align(size + i * 7, align).unwrap()) };
                }
            }
        }
    }

    #[test]
    fn shards_sum_across_threads() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // Allocated on one thread, freed on another: the sum returns to where it was.
        let before: isize = COUNTS.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        count(1000);
        std::thread::spawn(|| count(-1000)).join().unwrap();
        let after: isize = COUNTS.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        assert_eq!(before, after);
    }
}
