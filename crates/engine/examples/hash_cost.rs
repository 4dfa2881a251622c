//! Cost of the key hash, for callgrind: hashes redis-benchmark's key shape
//! (`key:` and 12 digits) with the seeded hash and with the legacy one.
//!
//!   cargo build --release -p redsnap-engine --example hash_cost
//!   valgrind --tool=callgrind target/release/examples/hash_cost
//!   callgrind_annotate --inclusive=yes callgrind.out.* | grep hash_cost::

use redsnap_engine::KeyHasher;

#[inline(never)]
fn seeded(h: &KeyHasher, keys: &[Vec<u8>]) -> u64 {
    keys.iter().fold(0, |a, k| a ^ h.hash(k))
}

#[inline(never)]
fn legacy(keys: &[Vec<u8>]) -> u64 {
    keys.iter()
        .fold(0, |a, k| a ^ redsnap_engine::hash::legacy_hash(k))
}

fn main() {
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect();
    let h = KeyHasher::random();
    let a = seeded(&h, &keys);
    let b = legacy(&keys);
    println!("{} keys hashed ({a:x} {b:x})", keys.len());
}
