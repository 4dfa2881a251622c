//! Write access to an `Arc` that nothing else shares, without atomic
//! read-modify-writes.
//!
//! `Arc::get_mut` and `Arc::make_mut` prove uniqueness with a locked
//! compare-and-swap (and a store to undo it). On x86 a locked instruction is a full
//! barrier: when its line is not cached (a random key's trie node or value object on
//! a large keyspace), the CPU can start nothing after it until the miss is served, so
//! the misses of one MSET's ten keys, or of a pipeline's commands, are taken one
//! after the other. The keyspace's `Arc`s (trie slot arrays, value objects) never
//! have a `Weak`, so two plain loads decide: a strong count of 1 with no weak
//! handle means the `&mut Arc` the caller holds is the only way to the value, and no
//! other thread can make a new one (it would need a handle to clone). The other
//! handles' last drop (a snapshot thread's copy) is a release decrement: the acquire
//! fence after the load that saw its result orders that thread's accesses before
//! ours, as `Arc::get_mut` does. On x86 the loads are plain moves and the fence
//! emits no instruction.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

/// Whether `a` is the only handle to its allocation (no other strong, no weak).
#[inline(always)]
pub fn is_unique<T: ?Sized>(a: &Arc<T>) -> bool {
    let unique = Arc::strong_count(a) == 1 && Arc::weak_count(a) == 0;
    if unique {
        fence(Ordering::Acquire);
    }
    unique
}

/// Mutable access to the value of an `Arc` known to be unique.
///
/// # Safety
/// [`is_unique`] must have returned true for `a` since the caller got its `&mut`
/// (it cannot change while the caller holds it exclusively).
#[inline(always)]
pub unsafe fn get_mut_unchecked<T: ?Sized>(a: &mut Arc<T>) -> &mut T {
    // SAFETY: the caller checked that no other strong or weak handle exists, and
    // holds the only one exclusively, so no other reference to the value can exist
    // or be created while the returned borrow lives (as `Arc::get_mut` reasons).
    // The pointer comes from the `Arc`'s own allocation pointer, which permits
    // writes.
    unsafe { &mut *Arc::as_ptr(a).cast_mut() }
}

/// `Arc::make_mut` with the unique case decided by [`is_unique`] (no locked
/// instruction); a shared value is cloned as `Arc::make_mut` does.
#[inline(always)]
pub fn make_mut<T: Clone>(a: &mut Arc<T>) -> &mut T {
    if is_unique(a) {
        // SAFETY: `is_unique` just returned true and `a` is held exclusively.
        unsafe { get_mut_unchecked(a) }
    } else {
        Arc::make_mut(a)
    }
}

/// `Arc::get_mut` with the check done by [`is_unique`].
#[inline(always)]
pub fn get_mut<T: ?Sized>(a: &mut Arc<T>) -> Option<&mut T> {
    if is_unique(a) {
        // SAFETY: as in `make_mut`.
        Some(unsafe { get_mut_unchecked(a) })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_only_without_other_handles() {
        let mut a = Arc::new(vec![1u8]);
        assert!(is_unique(&a));
        match get_mut(&mut a) {
            Some(v) => v.push(2),
            None => panic!("a unique Arc was not seen as unique"),
        }
        assert_eq!(*a, vec![1, 2]);

        let b = a.clone();
        assert!(!is_unique(&a));
        assert!(get_mut(&mut a).is_none());
        // A shared value is copied, the other handle keeps the original.
        make_mut(&mut a).push(3);
        assert_eq!(*a, vec![1, 2, 3]);
        assert_eq!(*b, vec![1, 2]);
        assert!(is_unique(&a));

        let mut c = b.clone();
        let w = Arc::downgrade(&b);
        drop(b);
        // One strong handle left, but a weak one could upgrade.
        assert!(!is_unique(&c));
        make_mut(&mut c).push(4);
        assert_eq!(*c, vec![1, 2, 4]);
        drop(w);
    }

    #[test]
    fn unique_after_another_thread_drops_its_handle() {
        let mut a = Arc::new(0u64);
        let b = a.clone();
        std::thread::spawn(move || drop(b)).join().ok();
        assert!(is_unique(&a));
        *make_mut(&mut a) += 1;
        assert_eq!(*a, 1);
    }

    #[test]
    fn slices_too() {
        let mut a: Arc<[u32]> = Arc::from(vec![1, 2]);
        assert!(is_unique(&a));
        // SAFETY: checked just above.
        unsafe { get_mut_unchecked(&mut a)[0] = 5 };
        assert_eq!(&a[..], &[5, 2]);
    }
}
