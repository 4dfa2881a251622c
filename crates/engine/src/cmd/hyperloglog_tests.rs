//! Unit tests of the HyperLogLog commands: replies, the cached cardinality in the
//! header, encodings, corruption, and what is counted and logged.

use crate::cmd::testutil::argv;
use crate::hll;
use crate::reply::Reply;
use crate::store::Store;
use bytes::Bytes;

fn r(s: &mut Store, args: &[&str]) -> Reply {
    s.exec(0, 1000, &argv(args))
}

fn rb(s: &mut Store, args: &[&[u8]]) -> Reply {
    let a: Vec<Bytes> = args.iter().map(|x| Bytes::copy_from_slice(x)).collect();
    s.exec(0, 1000, &a)
}

fn get(s: &mut Store, key: &str) -> Vec<u8> {
    match r(s, &["get", key]) {
        Reply::Bulk(b) => b.to_vec(),
        other => panic!("GET {key}: {other:?}"),
    }
}

fn int(x: Reply) -> i64 {
    match x {
        Reply::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn pfadd_n(s: &mut Store, key: &str, from: usize, to: usize) {
    let mut args = vec!["pfadd".to_string(), key.to_string()];
    args.extend((from..to).map(|i| format!("ele:{i}")));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    r(s, &a);
}

#[test]
fn pfadd_pfcount_and_the_cache() {
    let mut s = Store::default();
    assert_eq!(r(&mut s, &["pfadd", "h"]), Reply::Int(1));
    // An empty HLL: header, one XZERO of 16384, cache marked invalid.
    let v = get(&mut s, "h");
    assert_eq!(&v[..5], b"HYLL\x01");
    assert_eq!(v.len(), hll::HDR + 2);
    assert_eq!(v[15] & 0x80, 0x80);
    assert_eq!(r(&mut s, &["pfadd", "h"]), Reply::Int(0));
    assert_eq!(r(&mut s, &["pfcount", "h"]), Reply::Int(0));
    assert_eq!(get(&mut s, "h")[15], 0);
    assert_eq!(r(&mut s, &["pfadd", "h", "a", "b", "c"]), Reply::Int(1));
    assert_eq!(r(&mut s, &["pfadd", "h", "a", "b", "c"]), Reply::Int(0));
    assert_eq!(get(&mut s, "h")[15], 0x80);
    assert_eq!(r(&mut s, &["pfcount", "h"]), Reply::Int(3));
    assert_eq!(&get(&mut s, "h")[8..16], &3u64.to_le_bytes());
    assert_eq!(r(&mut s, &["pfcount", "nokey"]), Reply::Int(0));
    // The union of several, with missing keys as empty ones.
    r(&mut s, &["pfadd", "h2", "c", "d"]);
    assert_eq!(r(&mut s, &["pfcount", "h", "h2", "nokey"]), Reply::Int(4));
    assert_eq!(r(&mut s, &["object", "encoding", "h"]), Reply::bulk("raw"));
}

#[test]
fn estimates_stay_within_the_standard_error() {
    let mut s = Store::default();
    for n in [10usize, 100, 1000, 5000, 20000] {
        r(&mut s, &["del", "h"]);
        for chunk in (0..n).step_by(1000) {
            pfadd_n(&mut s, "h", chunk, (chunk + 1000).min(n));
        }
        let est = int(r(&mut s, &["pfcount", "h"])) as f64;
        // 1.04 / sqrt(16384) = 0.81 %; allow 5 standard errors (and 1 for tiny sets).
        let tol = (n as f64 * 0.041).max(1.0);
        assert!((est - n as f64).abs() <= tol, "n={n} estimate={est}");
        let enc = r(&mut s, &["pfdebug", "encoding", "h"]);
        let want = if n <= 1000 { "sparse" } else { "dense" };
        assert_eq!(enc, Reply::simple(want), "n={n}");
    }
}

#[test]
fn sparse_max_bytes_decides_promotion() {
    let mut s = Store::default();
    s.config.hll_sparse_max_bytes = 100;
    pfadd_n(&mut s, "h", 0, 60);
    assert_eq!(
        r(&mut s, &["pfdebug", "encoding", "h"]),
        Reply::simple("dense")
    );
    assert_eq!(get(&mut s, "h").len(), hll::DENSE_SIZE);
    s.config.hll_sparse_max_bytes = 3000;
    pfadd_n(&mut s, "g", 0, 60);
    assert_eq!(
        r(&mut s, &["pfdebug", "encoding", "g"]),
        Reply::simple("sparse")
    );
    assert!(get(&mut s, "g").len() < 300);
    // Same registers, same count, whatever the encoding.
    assert_eq!(r(&mut s, &["pfcount", "h"]), r(&mut s, &["pfcount", "g"]));
}

#[test]
fn pfmerge_and_pfdebug() {
    let mut s = Store::default();
    pfadd_n(&mut s, "a", 0, 100);
    pfadd_n(&mut s, "b", 50, 150);
    pfadd_n(&mut s, "all", 0, 150);
    assert_eq!(r(&mut s, &["pfmerge", "m", "a", "b"]), Reply::ok());
    assert_eq!(r(&mut s, &["pfcount", "m"]), r(&mut s, &["pfcount", "all"]));
    assert_eq!(
        r(&mut s, &["pfdebug", "getreg", "m"]),
        r(&mut s, &["pfdebug", "getreg", "all"])
    );
    // GETREG turned both dense; a merge with a dense source gives a dense result.
    assert_eq!(
        r(&mut s, &["pfdebug", "encoding", "m"]),
        Reply::simple("dense")
    );
    pfadd_n(&mut s, "c", 0, 10);
    assert_eq!(r(&mut s, &["pfmerge", "c2", "c"]), Reply::ok());
    assert_eq!(
        r(&mut s, &["pfdebug", "encoding", "c2"]),
        Reply::simple("sparse")
    );
    assert_eq!(r(&mut s, &["pfmerge", "c", "m"]), Reply::ok());
    assert_eq!(
        r(&mut s, &["pfdebug", "encoding", "c"]),
        Reply::simple("dense")
    );
    // PFMERGE with the destination alone creates an empty HLL.
    assert_eq!(r(&mut s, &["pfmerge", "e"]), Reply::ok());
    assert_eq!(r(&mut s, &["pfcount", "e"]), Reply::Int(0));
    let decoded = r(&mut s, &["pfdebug", "decode", "e"]);
    assert_eq!(decoded, Reply::bulk("Z:16384"));
    assert_eq!(
        r(&mut s, &["pfdebug", "decode", "m"]),
        Reply::err("ERR HLL encoding is not sparse")
    );
    assert_eq!(r(&mut s, &["pfdebug", "todense", "e"]), Reply::Int(1));
    assert_eq!(r(&mut s, &["pfdebug", "todense", "e"]), Reply::Int(0));
    assert_eq!(
        r(&mut s, &["pfdebug", "nosuch", "e"]),
        Reply::err("ERR Unknown PFDEBUG subcommand 'nosuch'")
    );
    assert_eq!(
        r(&mut s, &["pfdebug", "encoding", "nokey"]),
        Reply::err("ERR The specified key does not exist")
    );
}

#[test]
fn type_checks_and_corruption() {
    let mut s = Store::default();
    let not_hll = Reply::err("WRONGTYPE Key is not a valid HyperLogLog string value.");
    let invalid = Reply::err("INVALIDOBJ Corrupted HLL object detected");
    r(&mut s, &["set", "str", "hello"]);
    r(&mut s, &["rpush", "l", "x"]);
    for cmd in [
        vec!["pfadd", "str", "a"],
        vec!["pfcount", "str"],
        vec!["pfcount", "nokey", "str"],
        vec!["pfmerge", "d", "str"],
        vec!["pfmerge", "str", "nokey"],
        vec!["pfdebug", "encoding", "str"],
    ] {
        assert_eq!(r(&mut s, &cmd), not_hll, "{cmd:?}");
    }
    assert_eq!(r(&mut s, &["pfadd", "l", "a"]), Reply::wrongtype());
    assert_eq!(r(&mut s, &["pfcount", "l"]), Reply::wrongtype());
    // Broken magic, unknown encoding, dense of the wrong length.
    for (pos, byte) in [(0usize, b'X'), (4, 2), (4, 0)] {
        r(&mut s, &["del", "h"]);
        r(&mut s, &["pfadd", "h", "a", "b", "c"]);
        rb(
            &mut s,
            &[b"setrange", b"h", pos.to_string().as_bytes(), &[byte]],
        );
        assert_eq!(r(&mut s, &["pfcount", "h"]), not_hll, "byte {pos}");
    }
    // Bytes after the last opcode: the registers no longer add up.
    r(&mut s, &["del", "h"]);
    r(&mut s, &["pfadd", "h", "a", "b", "c"]);
    r(&mut s, &["append", "h", "hello"]);
    assert_eq!(r(&mut s, &["pfcount", "h"]), invalid);
    assert_eq!(r(&mut s, &["pfcount", "h", "h"]), invalid);
    assert_eq!(r(&mut s, &["pfmerge", "x", "h"]), invalid);
    assert_eq!(r(&mut s, &["pfdebug", "getreg", "h"]), invalid);
    // A valid cached value is answered without reading the registers.
    r(&mut s, &["del", "h"]);
    r(&mut s, &["pfadd", "h", "a"]);
    r(&mut s, &["pfcount", "h"]);
    r(&mut s, &["append", "h", "junk"]);
    assert_eq!(r(&mut s, &["pfcount", "h"]), Reply::Int(1));
}

#[test]
fn pfcount_updates_the_cache_and_is_logged() {
    let mut s = Store::default();
    s.config.notify_keyspace_events = crate::notify::parse(b"KEA").unwrap_or(0);
    r(&mut s, &["pfadd", "h", "a", "b"]);
    let (d, logs) = (s.effects.dirty, s.effects.log.len());
    assert_eq!(r(&mut s, &["pfcount", "h"]), Reply::Int(2));
    assert_eq!(s.effects.dirty, d + 1);
    assert_eq!(s.effects.log.len(), logs + 1);
    assert_eq!(s.effects.log[logs].argv[0], "pfcount");
    // Cached: nothing changes, nothing is logged.
    assert_eq!(r(&mut s, &["pfcount", "h"]), Reply::Int(2));
    assert_eq!((s.effects.dirty, s.effects.log.len()), (d + 1, logs + 1));
    // PFADD counts each changed register; no event for what changed nothing.
    let d = s.effects.dirty;
    r(&mut s, &["pfadd", "h", "a", "b"]);
    assert_eq!(s.effects.dirty, d);
    r(&mut s, &["pfadd", "h", "x", "y", "z"]);
    assert!(s.effects.dirty >= d + 2);
    r(&mut s, &["pfmerge", "m", "h"]);
    let events: Vec<&str> = s.effects.events.iter().map(|e| e.event).collect();
    assert_eq!(events, ["pfadd", "pfadd", "pfadd"]);
    // Replaying the log rebuilds the same bytes, cache included.
    let log: Vec<Vec<Bytes>> = s.effects.log.iter().map(|l| l.argv.clone()).collect();
    r(&mut s, &["pfcount", "m"]);
    let mut replay = Store::default();
    for a in &log {
        replay.exec(0, 1000, a);
    }
    replay.exec(0, 1000, &argv(&["pfcount", "m"]));
    assert_eq!(get(&mut replay, "h"), get(&mut s, "h"));
    assert_eq!(get(&mut replay, "m"), get(&mut s, "m"));
}

#[test]
fn pfadd_edits_a_dense_hll_in_place() {
    let mut s = Store::default();
    pfadd_n(&mut s, "h", 0, 3000);
    assert_eq!(get(&mut s, "h").len(), hll::DENSE_SIZE);
    s.effects.log.clear();
    let (_, largest, _) = crate::test_alloc::measure(|| r(&mut s, &["pfadd", "h", "new-one"]));
    assert!(largest < hll::DENSE_SIZE, "PFADD copied {largest} bytes");
}
