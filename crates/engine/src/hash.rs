//! The key hash that orders a keyspace, seeded per dataset.
//!
//! Keys are ordered by `(hash, key)` in the trie ([`crate::trie`]) and the snapshot
//! store keys entries by the hash, so the hash must be the same for the whole life of a
//! dataset, across restarts: the seed is chosen at random when a dataset starts empty
//! and is kept in the snapshot's metadata.
//!
//! With an unseeded hash anyone can compute, offline, any number of keys of one hash;
//! they would all land in one same-hash group of the trie. The seeded hash is
//! SipHash-1-3 with a 128-bit secret key (the hash Rust's `HashMap` uses against hash
//! flooding): a pseudo-random function, so even an attacker who sees full hash values
//! (a SCAN cursor is the hash of the next key) learns nothing that helps them find
//! collisions without the key. Same-hash groups are also searched in O(log n) (see
//! `trie::group`), so chance collisions cost nothing either.
//!
//! Seed 0 is the unseeded multiply-rotate hash of earlier versions (kept so that the
//! hash of a dataset written by them can still be computed, and for tests).

/// A 128-bit hash seed (the SipHash key); 0 selects the legacy unseeded hash.
pub type HashSeed = u128;

/// The hash of one dataset: every database of a store uses the same one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHasher {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for KeyHasher {
    /// Never prints the key: it is the secret that makes collisions hard to find.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyHasher")
            .field("legacy", &self.is_legacy())
            .finish_non_exhaustive()
    }
}

impl Default for KeyHasher {
    /// A random seed.
    fn default() -> Self {
        KeyHasher::random()
    }
}

impl KeyHasher {
    /// A hasher with a fresh random seed (from the operating system's generator via
    /// `rand`'s thread generator). Never the legacy seed 0.
    pub fn random() -> KeyHasher {
        loop {
            let seed: u128 = rand::random();
            if seed != 0 {
                return KeyHasher::with_seed(seed);
            }
        }
    }

    /// The hasher of a chosen seed (0: the legacy unseeded hash).
    pub const fn with_seed(seed: HashSeed) -> KeyHasher {
        KeyHasher {
            k0: seed as u64,
            k1: (seed >> 64) as u64,
        }
    }

    /// The unseeded hash of datasets written before seeds existed.
    pub const fn legacy() -> KeyHasher {
        KeyHasher::with_seed(0)
    }

    pub fn seed(&self) -> HashSeed {
        u128::from(self.k0) | (u128::from(self.k1) << 64)
    }

    pub fn is_legacy(&self) -> bool {
        self.k0 == 0 && self.k1 == 0
    }

    /// The hash of `key`.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        if self.is_legacy() {
            legacy_hash(key)
        } else {
            sip13(self.k0, self.k1, key)
        }
    }
}

macro_rules! sipround {
    ($v0:ident, $v1:ident, $v2:ident, $v3:ident) => {
        $v0 = $v0.wrapping_add($v1);
        $v1 = $v1.rotate_left(13);
        $v1 ^= $v0;
        $v0 = $v0.rotate_left(32);
        $v2 = $v2.wrapping_add($v3);
        $v3 = $v3.rotate_left(16);
        $v3 ^= $v2;
        $v0 = $v0.wrapping_add($v3);
        $v3 = $v3.rotate_left(21);
        $v3 ^= $v0;
        $v2 = $v2.wrapping_add($v1);
        $v1 = $v1.rotate_left(17);
        $v1 ^= $v2;
        $v2 = $v2.rotate_left(32);
    };
}

/// The little-endian word of the 0..=7 bytes of `t` (as std's SipHasher reads a
/// tail: in 4-, 2- and 1-byte pieces, no copy loop).
#[inline(always)]
fn tail_word(t: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    if t.len() >= 4 {
        w = u64::from(u32::from_le_bytes([t[0], t[1], t[2], t[3]]));
        i = 4;
    }
    if t.len() - i >= 2 {
        w |= u64::from(u16::from_le_bytes([t[i], t[i + 1]])) << (8 * i);
        i += 2;
    }
    if i < t.len() {
        w |= u64::from(t[i]) << (8 * i);
    }
    w
}

/// SipHash with `C` compression and `D` finalization rounds over a byte slice (the
/// reference algorithm, read a word at a time; no streaming state).
#[inline(always)]
fn sip<const C: usize, const D: usize>(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v0 = k0 ^ 0x736f_6d65_7073_6575;
    let mut v1 = k1 ^ 0x646f_7261_6e64_6f6d;
    let mut v2 = k0 ^ 0x6c79_6765_6e65_7261;
    let mut v3 = k1 ^ 0x7465_6462_7974_6573;
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        v3 ^= m;
        for _ in 0..C {
            sipround!(v0, v1, v2, v3);
        }
        v0 ^= m;
    }
    let b = tail_word(chunks.remainder()) | ((msg.len() as u64) << 56);
    v3 ^= b;
    for _ in 0..C {
        sipround!(v0, v1, v2, v3);
    }
    v0 ^= b;
    v2 ^= 0xff;
    for _ in 0..D {
        sipround!(v0, v1, v2, v3);
    }
    v0 ^ v1 ^ v2 ^ v3
}

/// SipHash-1-3 (the variant of Rust's standard `HashMap`).
pub fn sip13(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    sip::<1, 3>(k0, k1, msg)
}

/// The unseeded hash: a word-at-a-time multiply-rotate hash with murmur3's finalizer.
/// Anyone can compute colliding keys for it; used only for datasets written before
/// seeds existed.
pub fn legacy_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0x243F_6A88_85A3_08D3 ^ (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    // murmur3 fmix64
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A hasher seeded once per process, for orders that live no longer than the process
/// (the cursor order of HSCAN/SSCAN/ZSCAN over a collection's elements).
pub fn process_hasher() -> KeyHasher {
    static H: std::sync::OnceLock<KeyHasher> = std::sync::OnceLock::new();
    *H.get_or_init(KeyHasher::random)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    #[test]
    fn siphash_matches_the_reference_vectors_and_std() {
        // The SipHash paper's test vector: SipHash-2-4, key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(sip::<2, 4>(k0, k1, &msg), 0xa129_ca61_49be_45e5);
        for len in 0..40usize {
            let msg: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            // std's deprecated SipHasher is SipHash-2-4 with a chosen key.
            #[allow(deprecated)]
            let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
            h.write(&msg);
            assert_eq!(sip::<2, 4>(k0, k1, &msg), h.finish(), "2-4, len {len}");
            // std's DefaultHasher is SipHash-1-3 with the zero key.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(&msg);
            assert_eq!(sip13(0, 0, &msg), h.finish(), "1-3, len {len}");
        }
    }

    #[test]
    fn seeds_change_the_hash_and_zero_is_the_legacy_hash() {
        let a = KeyHasher::with_seed(1);
        let b = KeyHasher::with_seed(2 << 64);
        assert_ne!(a.hash(b"key"), b.hash(b"key"));
        assert_eq!(a.hash(b"key"), KeyHasher::with_seed(1).hash(b"key"));
        assert_eq!(KeyHasher::legacy().hash(b"key"), legacy_hash(b"key"));
        assert_eq!(KeyHasher::with_seed(0), KeyHasher::legacy());
        let r = KeyHasher::random();
        assert!(!r.is_legacy());
        assert_eq!(KeyHasher::with_seed(r.seed()), r);
        assert_ne!(KeyHasher::random(), r);
        // The secret is not printed.
        assert!(!format!("{r:?}").contains(&r.seed().to_string()));
    }

    #[test]
    fn hashes_spread_similar_keys() {
        for h in [KeyHasher::legacy(), KeyHasher::with_seed(7)] {
            // Sequential keys land all over the hash space (top 4 bits roughly uniform).
            let mut buckets = [0u32; 16];
            for i in 0..16_000 {
                buckets[(h.hash(format!("key:{i:012}").as_bytes()) >> 60) as usize] += 1;
            }
            assert!(
                buckets.iter().all(|&b| (800..1200).contains(&b)),
                "{buckets:?}"
            );
            assert_ne!(h.hash(b""), h.hash(b"\0"));
            assert_ne!(h.hash(b"ab"), h.hash(b"ba"));
        }
    }
}
