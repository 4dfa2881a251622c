//! Shared pieces of HSCAN, SSCAN and ZSCAN: cursor and option parsing, and a cursor
//! walk over an unordered collection.
//!
//! Small collections (Redis's listpack/intset encodings) are answered whole with
//! cursor 0, as Redis does; the caller decides when a collection counts as small.
//! Larger ones are walked in the order of a hash of their elements (seeded once per
//! process, [`crate::hash::process_hasher`]) and the cursor is the next hash to visit, so (as with `Db::scan`) an element present for
//! the whole iteration is returned at least once whatever is added or removed meanwhile.

use super::is;
use crate::glob::glob_match;
use crate::hash::process_hasher;
use crate::reply::{self, Reply};
use bytes::Bytes;
use std::collections::BinaryHeap;

/// Redis's `parseScanCursorOrReply`: `strtoul` in base 10 (an optional sign, `-n`
/// wraps around, the empty string is 0), no leading space, no trailing garbage, no
/// overflow.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::err("ERR invalid cursor");
    let (neg, digits) = match arg.first() {
        None => return Ok(0),
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        Some(_) => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut v: u64 = 0;
    for &c in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// The options of a SCAN-family command.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanOpts {
    pub count: usize,
    pub pattern: Option<Bytes>,
}

impl ScanOpts {
    /// Whether an element (a field or member) passes MATCH.
    pub fn matches(&self, elem: &[u8]) -> bool {
        match &self.pattern {
            None => true,
            Some(p) => glob_match(p, elem, false),
        }
    }
}

/// Parses `[MATCH pattern] [COUNT count]` (repeatable, the last one wins) from the
/// arguments after the cursor. COUNT below 1 is a syntax error, as in Redis.
pub fn parse_opts(args: &[Bytes]) -> Result<ScanOpts, Reply> {
    let mut opts = ScanOpts {
        count: 10,
        pattern: None,
    };
    let mut i = 0;
    while i < args.len() {
        let more = i + 1 < args.len();
        if is(&args[i], "count") && more {
            let n = super::int(&args[i + 1])?;
            if n < 1 {
                return Err(Reply::err(reply::ERR_SYNTAX));
            }
            opts.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if is(&args[i], "match") && more {
            let p = &args[i + 1];
            // "*" matches everything: skip the matching work.
            opts.pattern = if p.as_ref() == b"*" {
                None
            } else {
                Some(p.clone())
            };
        } else {
            return Err(Reply::err(reply::ERR_SYNTAX));
        }
        i += 2;
    }
    Ok(opts)
}

/// One cursor step over `items` (iterated twice, hence `Clone`): the elements whose
/// hash is at or after `cursor`, lowest hashes first, about `count` of them (more when
/// hashes collide, and at least `len / 64` so a whole walk costs a bounded number of
/// passes over a big collection). Returns the next cursor (0 when done) and the
/// elements in hash order.
pub fn step<'a, K, V, I>(items: I, len: usize, cursor: u64, count: usize) -> (u64, Vec<(&'a K, V)>)
where
    K: AsRef<[u8]> + Ord + ?Sized + 'a,
    I: Iterator<Item = (&'a K, V)> + Clone,
{
    let target = count.max(len / 64).max(1);
    // The `target` lowest hashes at or after the cursor (a max-heap keeps the bound).
    let mut heap: BinaryHeap<u64> = BinaryHeap::with_capacity(target.min(len).min(1024));
    let mut more = false;
    let hasher = process_hasher();
    for (k, _) in items.clone() {
        let h = hasher.hash(k.as_ref());
        if h < cursor {
            continue;
        }
        if heap.len() < target {
            heap.push(h);
        } else if heap.peek().is_some_and(|&top| h < top) {
            heap.pop();
            heap.push(h);
            more = true;
        } else if heap.peek().is_some_and(|&top| h > top) {
            more = true;
        }
    }
    let Some(&threshold) = heap.peek() else {
        return (0, Vec::new());
    };
    let mut out: Vec<(u64, &'a K, V)> = Vec::with_capacity(heap.len());
    for (k, v) in items {
        let h = hasher.hash(k.as_ref());
        if h >= cursor && h <= threshold {
            out.push((h, k, v));
        }
    }
    out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    // Everything at or below the threshold is returned; continue just after it when
    // something above it remains.
    let next = if more {
        threshold.checked_add(1).unwrap_or(0)
    } else {
        0
    };
    (next, out.into_iter().map(|(_, k, v)| (k, v)).collect())
}

/// The SCAN reply: `[cursor, [elements...]]`.
pub fn reply(cursor: u64, elems: Vec<Reply>) -> Reply {
    let mut buf = itoa::Buffer::new();
    let cursor = Bytes::copy_from_slice(buf.format(cursor).as_bytes());
    Reply::Array(vec![Reply::Bulk(cursor), Reply::Array(elems)])
}

/// The reply for a missing key: `[0, []]`.
pub fn empty() -> Reply {
    reply(0, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn cursor_parsing_follows_strtoul() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"+3"), Ok(3));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert!(parse_cursor(b"18446744073709551616").is_err());
        assert!(parse_cursor(b" 1").is_err());
        assert!(parse_cursor(b"1x").is_err());
        assert!(parse_cursor(b"-").is_err());
        assert!(parse_cursor(b"0x10").is_err());
    }

    #[test]
    fn options() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(
            parse_opts(&[]),
            Ok(ScanOpts {
                count: 10,
                pattern: None
            })
        );
        let o =
            parse_opts(&[b("MATCH"), b("a*"), b("count"), b("5"), b("match"), b("b*")]).unwrap();
        assert_eq!(
            o,
            ScanOpts {
                count: 5,
                pattern: Some(b("b*"))
            }
        );
        assert!(o.matches(b"bc") && !o.matches(b"a"));
        assert_eq!(
            parse_opts(&[b("count"), b("0")]),
            Err(Reply::err(reply::ERR_SYNTAX))
        );
        assert_eq!(
            parse_opts(&[b("count"), b("x")]),
            Err(Reply::err(reply::ERR_NOT_INT))
        );
        assert_eq!(
            parse_opts(&[b("match")]),
            Err(Reply::err(reply::ERR_SYNTAX))
        );
        assert_eq!(
            parse_opts(&[b("type"), b("string")]),
            Err(Reply::err(reply::ERR_SYNTAX))
        );
    }

    #[test]
    fn step_walks_everything_despite_changes() {
        let mut set: HashSet<Bytes> = (0..1000).map(|i| Bytes::from(format!("m{i}"))).collect();
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let (next, got) = step(set.iter().map(|k| (k, ())), set.len(), cursor, 7);
            assert!(!got.is_empty() || next == 0);
            for (k, ()) in got {
                seen.insert(k.clone());
            }
            for j in 0..20 {
                set.insert(Bytes::from(format!("new{round}-{j}")));
            }
            round += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            assert!(seen.contains(&Bytes::from(format!("m{i}"))), "m{i} missed");
        }
        assert!(
            round > 10,
            "a count of 7 must take many steps, took {round}"
        );
    }

    #[test]
    fn reply_shape() {
        assert_eq!(
            reply(42, vec![Reply::bulk_str("a")]),
            Reply::Array(vec![
                Reply::bulk_str("42"),
                Reply::Array(vec![Reply::bulk_str("a")])
            ])
        );
        assert_eq!(
            empty(),
            Reply::Array(vec![Reply::bulk_str("0"), Reply::Array(vec![])])
        );
    }
}
