//! Content digests of values and of the whole dataset, computed exactly as Redis 7.0's
//! `debug.c` does (`xorDigest`, `mixDigest`, `xorObjectDigest`,
//! `computeDatasetDigest`): DEBUG DIGEST and DEBUG DIGEST-VALUE. Unordered collections
//! (keys, set members, hash fields, sorted-set members) are combined with XOR, so the
//! digest does not depend on iteration order; lists feed each element through SHA1 in
//! turn, so order matters. Equal datasets give equal digests, in redsnap as in Redis,
//! whatever their internal representation.

use crate::db::Entry;
use crate::value::Value;
use crate::Store;

/// A 20-byte SHA1-sized digest.
pub type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    sha1_smol::Sha1::from(data).digest().bytes()
}

/// `digest ^= SHA1(data)`.
fn xor_digest(digest: &mut Digest, data: &[u8]) {
    let h = sha1(data);
    for (d, x) in digest.iter_mut().zip(h) {
        *d ^= x;
    }
}

/// `digest = SHA1(digest ^ SHA1(data))`: order-preserving accumulation.
fn mix_digest(digest: &mut Digest, data: &[u8]) {
    xor_digest(digest, data);
    *digest = sha1(&digest[..]);
}

/// Redis's object type numbers (`OBJ_STRING`...), mixed in first.
fn type_code(v: &Value) -> u32 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
        // OBJ_MODULE.
        Value::Json(_) => 5,
    }
}

/// Redis's `xorObjectDigest`: mixes the value (and the fact that it has an expiry)
/// into `digest`.
pub fn mix_entry(digest: &mut Digest, entry: &Entry) {
    let v = entry.value();
    mix_digest(digest, &type_code(v).to_be_bytes());
    match v {
        Value::Str(s) => mix_digest(digest, s),
        Value::List(l) => {
            for e in l {
                mix_digest(digest, e);
            }
        }
        Value::Set(s) => {
            for m in s.iter() {
                xor_digest(digest, m);
            }
        }
        Value::ZSet(z) => {
            for (m, score) in z.dict.iter() {
                let mut ele = [0u8; 20];
                mix_digest(&mut ele, m);
                mix_digest(&mut ele, crate::num::fmt_g17(*score).as_bytes());
                xor_digest(digest, &ele);
            }
        }
        Value::Hash(h) => {
            for (f, val) in h.iter() {
                let mut ele = [0u8; 20];
                mix_digest(&mut ele, f);
                mix_digest(&mut ele, val);
                xor_digest(digest, &ele);
            }
        }
        // RedisJSON registers no digest callback, so Redis mixes in only the type;
        // redsnap mixes in the compact JSON text, so that DEBUG DIGEST tells
        // different documents apart.
        Value::Json(j) => mix_digest(digest, &j.to_json()),
        Value::Stream(st) => {
            // Entries only (groups are not part of Redis's digest), `ms.seq`.
            let all = st.range(
                crate::stream::StreamId::MIN,
                crate::stream::StreamId::MAX,
                false,
                0,
            );
            for (id, fields) in all {
                mix_digest(digest, format!("{}.{}", id.ms, id.seq).as_bytes());
                for f in &fields {
                    mix_digest(digest, f);
                }
            }
        }
    }
    if entry.expire_at().is_some() {
        xor_digest(digest, b"!!expire!!");
    }
}

/// The digest of one value (DEBUG DIGEST-VALUE): all zeros for a missing key.
pub fn value_digest(entry: Option<&Entry>) -> Digest {
    let mut d = [0u8; 20];
    if let Some(e) = entry {
        mix_entry(&mut d, e);
    }
    d
}

/// Redis's `computeDatasetDigest` over every database (DEBUG DIGEST). Keys whose
/// deadline passed but that are still stored count, as in Redis.
pub fn dataset_digest(store: &Store) -> Digest {
    let mut fin = [0u8; 20];
    for (j, db) in store.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        mix_digest(&mut fin, &(j as u32).to_be_bytes());
        for (key, entry) in db.iter() {
            let mut d = [0u8; 20];
            mix_digest(&mut d, key);
            mix_entry(&mut d, entry);
            xor_digest(&mut fin, &d);
        }
    }
    fin
}

/// Lowercase hex, as DEBUG DIGEST prints a digest.
pub fn hex(d: &Digest) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(40);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ZSet;
    use bytes::Bytes;
    use std::collections::VecDeque;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn empty_dataset_is_zero() {
        let s = Store::new(Default::default());
        assert_eq!(hex(&dataset_digest(&s)), "0".repeat(40));
        assert_eq!(value_digest(None), [0u8; 20]);
    }

    fn set_of(members: &[&str]) -> Value {
        Value::Set(Box::new(members.iter().map(|m| (*m).into()).collect()))
    }

    /// Digests printed by Redis 7.0.15 for the same values and dataset:
    /// `SET s bar; RPUSH l a b 1; SADD st a b 3; ZADD z 1 a 2.5 b 3 c;
    /// HSET h f v g 12; SET e v EX 1000`, then DEBUG DIGEST-VALUE and DEBUG DIGEST.
    #[test]
    fn matches_redis_digests() {
        let list = Value::List(VecDeque::from(vec![b("a"), b("b"), b("1")]).into());
        let z = ZSet::from_pairs([(b("a"), 1.0), (b("b"), 2.5), (b("c"), 3.0)]);
        let h: crate::value::Hash = [("f".into(), "v".into()), ("g".into(), "12".into())]
            .into_iter()
            .collect();
        let values = [
            (
                "s",
                Value::Str(b("bar")),
                None,
                "68467c70ae30376e7ce005bcc8827f5ba7fd67dc",
            ),
            ("l", list, None, "981fd62c1655c074205cff40b800bd5a5bfdcd41"),
            (
                "st",
                set_of(&["a", "b", "3"]),
                None,
                "aa475a4a8f122ca5936aa41d911aacf8c93b827d",
            ),
            (
                "z",
                Value::ZSet(Box::new(z)),
                None,
                "1edf4f538ced494d25ab010f1f17dc39e42adc24",
            ),
            (
                "h",
                Value::Hash(Box::new(h)),
                None,
                "8530acc75d5274eb0fc0da86f28ed5533274a6d4",
            ),
            (
                "e",
                Value::Str(b("v")),
                Some(4_000_000_000_000),
                "311b17018163335616e089f6b951c82c477335ac",
            ),
        ];
        let mut store = Store::new(Default::default());
        for (k, v, exp, want) in values {
            let e = Entry::new(v.clone(), exp);
            assert_eq!(hex(&value_digest(Some(&e))), want, "{k}");
            store.dbs[0].insert(b(k), v, exp);
        }
        assert_eq!(
            hex(&dataset_digest(&store)),
            "10e28048b2f31ed7ec1b2ebc3aadaa45619c9e48"
        );
    }

    #[test]
    fn order_matters_for_lists_only() {
        let l1 = Value::List(VecDeque::from(vec![b("a"), b("b")]).into());
        let l2 = Value::List(VecDeque::from(vec![b("b"), b("a")]).into());
        assert_ne!(
            value_digest(Some(&Entry::new(l1, None))),
            value_digest(Some(&Entry::new(l2, None)))
        );
        let mut s1 = crate::value::Set::default();
        s1.insert("a".into());
        s1.insert("b".into());
        let mut s2 = crate::value::Set::default();
        s2.insert("b".into());
        s2.insert("a".into());
        assert_eq!(
            value_digest(Some(&Entry::new(Value::Set(Box::new(s1)), None))),
            value_digest(Some(&Entry::new(Value::Set(Box::new(s2)), None)))
        );
        let z1 = ZSet::from_pairs([(b("a"), 1.0), (b("b"), 2.0)]);
        let z2 = ZSet::from_pairs([(b("a"), 1.0), (b("b"), 2.5)]);
        assert_ne!(
            value_digest(Some(&Entry::new(Value::ZSet(Box::new(z1)), None))),
            value_digest(Some(&Entry::new(Value::ZSet(Box::new(z2)), None)))
        );
    }

    #[test]
    fn expiry_and_db_change_the_digest() {
        let plain = Entry::new(Value::Str(b("v")), None);
        let volatile = Entry::new(Value::Str(b("v")), Some(u64::MAX / 2));
        assert_ne!(value_digest(Some(&plain)), value_digest(Some(&volatile)));
        let mut s = Store::new(Default::default());
        s.dbs[0].insert(b("k"), Value::Str(b("v")), None);
        let d0 = dataset_digest(&s);
        let mut t = Store::new(Default::default());
        t.dbs[1].insert(b("k"), Value::Str(b("v")), None);
        assert_ne!(d0, dataset_digest(&t));
        t.dbs[1].clear();
        t.dbs[0].insert(b("k"), Value::Str(b("v")), None);
        assert_eq!(d0, dataset_digest(&t));
    }
}
