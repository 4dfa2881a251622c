//! Unit tests of the bitmap commands: each against a naive bit-by-bit model of
//! Redis's definition, plus dirty counting, log records, events and copies.

use crate::cmd::testutil::argv;
use crate::reply::Reply;
use crate::store::Store;
use bytes::Bytes;

fn r(s: &mut Store, args: &[&str]) -> Reply {
    s.exec(0, 1000, &argv(args))
}

/// Runs a command whose arguments are bytes.
fn rb(s: &mut Store, args: &[&[u8]]) -> Reply {
    let a: Vec<Bytes> = args.iter().map(|x| Bytes::copy_from_slice(x)).collect();
    s.exec(0, 1000, &a)
}

fn err(e: &str) -> Reply {
    Reply::Error(Bytes::copy_from_slice(e.as_bytes()))
}

fn get(s: &mut Store, key: &str) -> Vec<u8> {
    match r(s, &["get", key]) {
        Reply::Bulk(b) => b.to_vec(),
        Reply::Nil => Vec::new(),
        other => panic!("GET {key}: {other:?}"),
    }
}

fn int(x: Reply) -> i64 {
    match x {
        Reply::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| match self.below(4) {
                0 => 0,
                1 => 0xff,
                _ => self.next() as u8,
            })
            .collect()
    }
}

fn bit_at(s: &[u8], i: i64) -> bool {
    s.get((i / 8) as usize)
        .is_some_and(|b| b >> (7 - (i % 8)) & 1 == 1)
}

/// Redis's range normalisation (start/end inclusive, negatives from the end).
fn norm(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    let (mut s, mut e) = (start, end);
    if s < 0 {
        s += len;
    }
    if e < 0 {
        e += len;
    }
    s = s.max(0);
    e = e.max(0);
    e = e.min(len - 1);
    (s <= e).then_some((s, e))
}

#[test]
fn setbit_getbit_and_errors() {
    let mut s = Store::default();
    assert_eq!(r(&mut s, &["setbit", "k", "1", "1"]), Reply::Int(0));
    assert_eq!(get(&mut s, "k"), [0b0100_0000]);
    assert_eq!(r(&mut s, &["setbit", "k", "1", "1"]), Reply::Int(1));
    assert_eq!(r(&mut s, &["setbit", "k", "1", "0"]), Reply::Int(1));
    assert_eq!(r(&mut s, &["setbit", "k", "17", "1"]), Reply::Int(0));
    assert_eq!(get(&mut s, "k"), [0, 0, 0b0100_0000]);
    assert_eq!(r(&mut s, &["getbit", "k", "17"]), Reply::Int(1));
    assert_eq!(r(&mut s, &["getbit", "k", "16"]), Reply::Int(0));
    assert_eq!(r(&mut s, &["getbit", "k", "1000000"]), Reply::Int(0));
    assert_eq!(r(&mut s, &["getbit", "nokey", "3"]), Reply::Int(0));
    // An integer-looking string is its digits.
    r(&mut s, &["set", "n", "1"]);
    assert_eq!(r(&mut s, &["setbit", "n", "6", "1"]), Reply::Int(0));
    assert_eq!(get(&mut s, "n"), b"3");
    let off = "ERR bit offset is not an integer or out of range";
    let bit = "ERR bit is not an integer or out of range";
    for bad in ["-1", "x", "4294967296", ""] {
        assert_eq!(r(&mut s, &["setbit", "k", bad, "1"]), err(off), "{bad}");
        assert_eq!(r(&mut s, &["getbit", "k", bad]), err(off), "{bad}");
    }
    for bad in ["2", "-1", "x", "10"] {
        assert_eq!(r(&mut s, &["setbit", "k", "0", bad]), err(bit), "{bad}");
    }
    // The offset limit follows proto-max-bulk-len (bytes).
    s.config.proto_max_bulk_len = 4;
    assert_eq!(r(&mut s, &["setbit", "k", "32", "1"]), err(off));
    assert_eq!(r(&mut s, &["setbit", "k", "31", "1"]), Reply::Int(0));
    r(&mut s, &["rpush", "l", "a"]);
    assert_eq!(r(&mut s, &["setbit", "l", "0", "1"]), Reply::wrongtype());
    assert_eq!(r(&mut s, &["getbit", "l", "0"]), Reply::wrongtype());
    // The offset is checked before the type, as in Redis.
    assert_eq!(r(&mut s, &["getbit", "l", "x"]), err(off));
}

#[test]
fn setbit_counts_dirty_and_logs_only_changes() {
    let mut s = Store::default();
    s.config.notify_keyspace_events = crate::notify::parse(b"KEA").unwrap_or(0);
    let d0 = s.effects.dirty;
    r(&mut s, &["setbit", "k", "0", "0"]);
    assert_eq!(s.effects.dirty, d0 + 1, "created");
    r(&mut s, &["setbit", "k", "0", "0"]);
    assert_eq!(s.effects.dirty, d0 + 1, "unchanged");
    r(&mut s, &["setbit", "k", "20", "0"]);
    assert_eq!(s.effects.dirty, d0 + 2, "grown");
    r(&mut s, &["setbit", "k", "3", "1"]);
    assert_eq!(s.effects.dirty, d0 + 3, "changed");
    let logged: Vec<String> = s
        .effects
        .log
        .iter()
        .map(|l| String::from_utf8_lossy(&l.argv[2]).into_owned())
        .collect();
    assert_eq!(logged, ["0", "20", "3"]);
    let events: Vec<&str> = s.effects.events.iter().map(|e| e.event).collect();
    assert_eq!(events, ["setbit", "setbit", "setbit"]);
    // BITFIELD: a write that changes nothing is no change; INCRBY always is.
    let d = s.effects.dirty;
    r(&mut s, &["bitfield", "f", "set", "i5", "0", "0"]);
    r(&mut s, &["bitfield", "f", "set", "i5", "0", "0"]);
    r(&mut s, &["bitfield", "f", "get", "i5", "0"]);
    assert_eq!(s.effects.dirty, d + 1);
    r(
        &mut s,
        &[
            "bitfield", "f", "incrby", "u2", "0", "1", "incrby", "u2", "0", "1",
        ],
    );
    assert_eq!(s.effects.dirty, d + 3);
    // A refused write (FAIL) on a new key creates it, unlogged, as Redis does.
    let logs = s.effects.log.len();
    let reply = r(
        &mut s,
        &["bitfield", "g", "overflow", "fail", "set", "u2", "0", "9"],
    );
    assert_eq!(reply, Reply::Array(vec![Reply::Nil]));
    assert_eq!(s.effects.log.len(), logs);
    assert_eq!(get(&mut s, "g"), [0]);
}

#[test]
fn setbit_edits_in_place_and_snapshots_keep_the_old_bytes() {
    let mut s = Store::default();
    let big = (1u64 << 23).to_string(); // a 1 MiB bitmap
    r(&mut s, &["setbit", "k", &big, "1"]);
    s.effects.log.clear();
    let (reply, largest, _) =
        crate::test_alloc::measure(|| r(&mut s, &["setbit", "k", "12345", "1"]));
    assert_eq!(reply, Reply::Int(0));
    assert!(largest < 64 * 1024, "SETBIT copied {largest} bytes");
    // A snapshot shares the value: the next write copies it once, the snapshot
    // keeps what it saw.
    let snap = s.snapshot();
    r(&mut s, &["setbit", "k", "7", "1"]);
    let old = match snap[0].get(&Bytes::from_static(b"k")).map(|e| e.value()) {
        Some(crate::value::Value::Str(v)) => v.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(old[0], 0);
    assert_eq!(get(&mut s, "k")[0], 1);
    assert_eq!(r(&mut s, &["object", "encoding", "k"]), Reply::bulk("raw"));
    // A short string edited by SETBIT is raw too (Redis unshares it).
    r(&mut s, &["set", "e", "a"]);
    r(&mut s, &["setbit", "e", "0", "0"]);
    assert_eq!(r(&mut s, &["object", "encoding", "e"]), Reply::bulk("raw"));
}

#[test]
fn bitcount_and_bitpos_match_the_bit_model() {
    let mut s = Store::default();
    let mut g = Rng(0x9e37_79b9);
    for round in 0..600 {
        let v = g.bytes(20);
        rb(&mut s, &[b"set", b"k", &v]);
        let len = v.len() as i64;
        let bit_mode = round % 2 == 1;
        let (start, end) = (g.range(-200, 200), g.range(-200, 200));
        let unit = if bit_mode { "bit" } else { "byte" };
        let (st, en) = (start.to_string(), end.to_string());
        // BITCOUNT over the range.
        let want = if start < 0 && end < 0 && start > end {
            0
        } else {
            let total = if bit_mode { len * 8 } else { len };
            match norm(start, end, total) {
                None => 0,
                Some((a, b)) => {
                    let (a, b) = if bit_mode { (a, b) } else { (a * 8, b * 8 + 7) };
                    (a..=b).filter(|&i| bit_at(&v, i)).count() as i64
                }
            }
        };
        let got = int(r(&mut s, &["bitcount", "k", &st, &en, unit]));
        assert_eq!(got, want, "BITCOUNT {v:?} {start} {end} {unit}");
        // BITPOS bit start end.
        for bit in [0, 1] {
            let total = if bit_mode { len * 8 } else { len };
            let want = match norm(start, end, total) {
                None => -1,
                Some((a, b)) => {
                    let (a, b) = if bit_mode { (a, b) } else { (a * 8, b * 8 + 7) };
                    (a..=b).find(|&i| bit_at(&v, i) == (bit == 1)).unwrap_or(-1)
                }
            };
            let got = int(r(
                &mut s,
                &["bitpos", "k", &bit.to_string(), &st, &en, unit],
            ));
            assert_eq!(got, want, "BITPOS {v:?} {bit} {start} {end} {unit}");
        }
        // Without an end, a clear bit may be found just past the string (an empty
        // string is an empty range: -1).
        let want0 = (0..len * 8)
            .find(|&i| !bit_at(&v, i))
            .unwrap_or(if len == 0 { -1 } else { len * 8 });
        assert_eq!(int(r(&mut s, &["bitpos", "k", "0"])), want0);
        let want1 = (0..len * 8).find(|&i| bit_at(&v, i)).unwrap_or(-1);
        assert_eq!(int(r(&mut s, &["bitpos", "k", "1"])), want1);
        let ones = (0..len * 8).filter(|&i| bit_at(&v, i)).count() as i64;
        assert_eq!(int(r(&mut s, &["bitcount", "k"])), ones);
    }
}

#[test]
fn bitcount_and_bitpos_argument_errors() {
    let mut s = Store::default();
    r(&mut s, &["set", "k", "foobar"]);
    let syntax = err("ERR syntax error");
    assert_eq!(r(&mut s, &["bitcount", "k", "0"]), syntax);
    assert_eq!(r(&mut s, &["bitcount", "k", "0", "1", "bits"]), syntax);
    // Negative start > end answers 0 before looking at the unit.
    assert_eq!(
        r(&mut s, &["bitcount", "k", "-1", "-5", "bogus"]),
        Reply::Int(0)
    );
    // A missing key answers before the arguments are read.
    assert_eq!(r(&mut s, &["bitcount", "nokey", "0"]), Reply::Int(0));
    assert_eq!(
        r(&mut s, &["bitcount", "k", "x", "1"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        r(&mut s, &["bitpos", "k", "2"]),
        err("ERR The bit argument must be 1 or 0.")
    );
    assert_eq!(r(&mut s, &["bitpos", "nokey", "1"]), Reply::Int(-1));
    assert_eq!(r(&mut s, &["bitpos", "nokey", "0", "5"]), Reply::Int(0));
    assert_eq!(r(&mut s, &["bitpos", "k", "0", "1", "2", "bogus"]), syntax);
    assert_eq!(
        r(&mut s, &["bitpos", "k", "0", "1", "2", "bit", "x"]),
        syntax
    );
    r(&mut s, &["set", "f", "\u{7f}"]);
    // All ones with an explicit end: no clear bit in the range.
    r(&mut s, &["setbit", "f", "0", "1"]);
    assert_eq!(r(&mut s, &["bitpos", "f", "0", "0", "-1"]), Reply::Int(-1));
    assert_eq!(r(&mut s, &["bitpos", "f", "0", "0"]), Reply::Int(8));
}

#[test]
fn bitop_matches_the_byte_model() {
    let mut s = Store::default();
    let mut g = Rng(77);
    for _ in 0..300 {
        let n = 1 + g.below(4) as usize;
        let mut vals: Vec<Option<Vec<u8>>> = Vec::new();
        let mut keys = Vec::new();
        for i in 0..n {
            let key = format!("src{i}");
            if g.below(5) == 0 {
                r(&mut s, &["del", &key]);
                vals.push(None);
            } else {
                let v = g.bytes(40);
                rb(&mut s, &[b"set", key.as_bytes(), &v]);
                vals.push(Some(v));
            }
            keys.push(key);
        }
        let ops = ["and", "or", "xor", "not"];
        let op = ops[g.below(if n == 1 { 4 } else { 3 }) as usize];
        let maxlen = vals.iter().flatten().map(Vec::len).max().unwrap_or(0);
        let byte = |v: &Option<Vec<u8>>, j: usize| v.as_ref().and_then(|v| v.get(j).copied());
        let want: Vec<u8> = (0..maxlen)
            .map(|j| {
                let first = byte(&vals[0], j).unwrap_or(0);
                vals[1..]
                    .iter()
                    .fold(if op == "not" { !first } else { first }, |acc, v| {
                        let b = byte(v, j).unwrap_or(0);
                        match op {
                            "and" => acc & b,
                            "or" => acc | b,
                            _ => acc ^ b,
                        }
                    })
            })
            .collect();
        let mut args = vec!["bitop", op, "dest"];
        args.extend(keys.iter().map(|k| k.as_str()));
        assert_eq!(r(&mut s, &args), Reply::Int(maxlen as i64), "{op} {vals:?}");
        assert_eq!(get(&mut s, "dest"), want, "{op} {vals:?}");
        assert_eq!(
            int(r(&mut s, &["exists", "dest"])),
            (maxlen > 0) as i64,
            "an empty result deletes the destination"
        );
    }
    assert_eq!(
        r(&mut s, &["bitop", "not", "d", "a", "b"]),
        err("ERR BITOP NOT must be called with a single source key.")
    );
    assert_eq!(
        r(&mut s, &["bitop", "nand", "d", "a"]),
        err("ERR syntax error")
    );
    r(&mut s, &["rpush", "l", "x"]);
    assert_eq!(
        r(&mut s, &["bitop", "or", "d", "src0", "l"]),
        Reply::wrongtype()
    );
    // The destination loses its TTL and becomes a raw string.
    r(&mut s, &["set", "a", "x"]);
    r(&mut s, &["set", "d", "y", "ex", "100"]);
    assert_eq!(r(&mut s, &["bitop", "or", "d", "a"]), Reply::Int(1));
    assert_eq!(r(&mut s, &["ttl", "d"]), Reply::Int(-1));
    assert_eq!(r(&mut s, &["object", "encoding", "d"]), Reply::bulk("raw"));
}

/// BITFIELD's result for one SET / INCRBY in wide arithmetic.
fn model_write(old: i128, v: i128, incr: bool, bits: u32, signed: bool, ow: &str) -> Option<i128> {
    let (min, max) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    // Redis's quirk: a SET value is taken as a 64-bit pattern for unsigned fields.
    let v = if !signed && !incr && v < 0 {
        v + (1i128 << 64)
    } else {
        v
    };
    let target = if incr { old + v } else { v };
    if (min..=max).contains(&target) {
        return Some(target);
    }
    // Redis's quirk: for a signed SET, `max - value` is computed in 64 bits, so a
    // value below `max - i64::MAX` counts as an overflow upwards.
    let upwards = target > max || (signed && !incr && bits < 64 && v < max - i64::MAX as i128);
    match ow {
        "fail" => None,
        "sat" => Some(if upwards { max } else { min }),
        _ => {
            let m = 1i128 << bits;
            let w = (target - min).rem_euclid(m) + min;
            Some(w)
        }
    }
}

#[test]
fn bitfield_matches_wide_arithmetic() {
    let mut s = Store::default();
    let mut g = Rng(4242);
    for _ in 0..4000 {
        r(&mut s, &["del", "bf"]);
        let signed = g.below(2) == 0;
        let bits = if signed {
            1 + g.below(64) as u32
        } else {
            1 + g.below(63) as u32
        };
        let ty = format!("{}{bits}", if signed { "i" } else { "u" });
        let off = g.below(20).to_string();
        let ow = ["wrap", "sat", "fail"][g.below(3) as usize];
        let pick = |g: &mut Rng| -> i64 {
            match g.below(4) {
                0 => g.range(-300, 300),
                1 => g.next() as i64,
                2 => [i64::MIN, i64::MAX, 0, -1][g.below(4) as usize],
                _ => (g.next() as i64) >> g.below(64),
            }
        };
        let (a, b) = (pick(&mut g), pick(&mut g));
        let set = r(
            &mut s,
            &[
                "bitfield",
                "bf",
                "overflow",
                ow,
                "set",
                &ty,
                &off,
                &a.to_string(),
            ],
        );
        let stored = model_write(0, a as i128, false, bits, signed, ow);
        assert_eq!(
            set,
            Reply::Array(vec![if stored.is_some() {
                Reply::Int(0)
            } else {
                Reply::Nil
            }])
        );
        let cur = stored.unwrap_or(0);
        let inc = r(
            &mut s,
            &[
                "bitfield",
                "bf",
                "overflow",
                ow,
                "incrby",
                &ty,
                &off,
                &b.to_string(),
            ],
        );
        let next = model_write(cur, b as i128, true, bits, signed, ow);
        let want = next.map_or(Reply::Nil, |n| Reply::Int(n as i64));
        assert_eq!(inc, Reply::Array(vec![want]), "{ty} {ow} {a} + {b}");
        let got = r(&mut s, &["bitfield_ro", "bf", "get", &ty, &off]);
        assert_eq!(
            got,
            Reply::Array(vec![Reply::Int(next.unwrap_or(cur) as i64)])
        );
    }
}

#[test]
fn bitfield_forms_and_errors() {
    let mut s = Store::default();
    r(
        &mut s,
        &[
            "bitfield", "b", "set", "u8", "#0", "65", "set", "u8", "#1", "66", "set", "u8", "#2",
            "67",
        ],
    );
    assert_eq!(get(&mut s, "b"), b"ABC");
    assert_eq!(
        r(
            &mut s,
            &["bitfield", "b", "get", "u4", "0", "get", "i8", "#1", "get", "u8", "100"]
        ),
        Reply::Array(vec![Reply::Int(4), Reply::Int(66), Reply::Int(0)])
    );
    assert_eq!(r(&mut s, &["bitfield", "b"]), Reply::Array(vec![]));
    assert_eq!(
        r(&mut s, &["bitfield_ro", "nokey", "get", "i8", "0"]),
        Reply::Array(vec![Reply::Int(0)])
    );
    let ty = err("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.");
    for bad in ["u64", "i65", "i0", "I8", "x", "", "u"] {
        assert_eq!(r(&mut s, &["bitfield", "b", "get", bad, "0"]), ty, "{bad}");
    }
    let off = err("ERR bit offset is not an integer or out of range");
    for bad in ["-1", "#-1", "x", "#x", "4294967296", "#536870912"] {
        assert_eq!(
            r(&mut s, &["bitfield", "b", "get", "u8", bad]),
            off,
            "{bad}"
        );
    }
    // `#` times the width wraps like Redis's 64-bit multiplication.
    assert_eq!(
        r(
            &mut s,
            &["bitfield", "b", "get", "u8", "#2305843009213693953"]
        ),
        Reply::Array(vec![Reply::Int(66)])
    );
    assert_eq!(
        r(&mut s, &["bitfield", "b", "get", "u8"]),
        err("ERR syntax error")
    );
    assert_eq!(
        r(&mut s, &["bitfield", "b", "bogus", "u8", "0"]),
        err("ERR syntax error")
    );
    assert_eq!(
        r(
            &mut s,
            &["bitfield", "b", "overflow", "bogus", "get", "u8", "0"]
        ),
        err("ERR Invalid OVERFLOW type specified")
    );
    assert_eq!(
        r(&mut s, &["bitfield", "b", "set", "u8", "0", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        r(
            &mut s,
            &["bitfield_ro", "b", "get", "u8", "0", "set", "u8", "0", "1"]
        ),
        err("ERR BITFIELD_RO only supports the GET subcommand")
    );
    r(&mut s, &["rpush", "l", "x"]);
    assert_eq!(
        r(&mut s, &["bitfield", "l", "get", "u8", "0"]),
        Reply::wrongtype()
    );
    // Parse errors come before the type check.
    assert_eq!(r(&mut s, &["bitfield", "l", "get", "u99", "0"]), ty);
    // Regression of Redis #3564.
    assert_eq!(
        r(
            &mut s,
            &[
                "bitfield", "m", "set", "i8", "0", "10", "set", "i8", "64", "10", "incrby", "i8",
                "10", "99900"
            ]
        ),
        Reply::Array(vec![Reply::Int(0), Reply::Int(0), Reply::Int(60)])
    );
}

#[test]
fn writes_to_an_existing_bitmap_or_hll_touch_its_access_clock() {
    let mut s = Store::default();
    s.exec(0, 1000, &argv(&["setbit", "b", "7", "1"]));
    s.exec(0, 1000, &argv(&["pfadd", "h", "a"]));
    s.exec(0, 1000, &argv(&["set", "str", "x"]));
    let idle =
        |s: &mut Store, key: &str, now: u64| s.exec(0, now, &argv(&["object", "idletime", key]));
    assert_eq!(idle(&mut s, "b", 61_000), Reply::Int(60));
    // SETBIT, BITFIELD and PFADD on the existing keys reset the clock (Redis's
    // lookupKeyWrite), whether or not a bit or register changes.
    s.exec(0, 61_000, &argv(&["setbit", "b", "7", "1"]));
    s.exec(0, 61_000, &argv(&["pfadd", "h", "a"]));
    assert_eq!(idle(&mut s, "b", 61_000), Reply::Int(0));
    assert_eq!(idle(&mut s, "h", 61_000), Reply::Int(0));
    s.exec(0, 122_000, &argv(&["bitfield", "b", "get", "u8", "0"]));
    assert_eq!(idle(&mut s, "b", 122_000), Reply::Int(0));
    // A refused write changes nothing: the string keeps its bytes and encoding.
    assert_eq!(
        s.exec(0, 122_000, &argv(&["pfadd", "str", "a"])),
        err("WRONGTYPE Key is not a valid HyperLogLog string value.")
    );
    assert_eq!(get(&mut s, "str"), b"x");
    assert_eq!(
        s.exec(0, 122_000, &argv(&["object", "encoding", "str"])),
        Reply::bulk("embstr")
    );
    r(&mut s, &["rpush", "l", "x"]);
    assert_eq!(r(&mut s, &["setbit", "l", "1", "1"]), Reply::wrongtype());
    assert_eq!(int(get_bit(&mut s, "b", 7)), 1);
}

fn get_bit(s: &mut Store, key: &str, bit: u64) -> Reply {
    r(s, &["getbit", key, &bit.to_string()])
}
