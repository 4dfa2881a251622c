//! Redis's own test RDB files (tests/assets/*.rdb of the Redis 7.0 suite) read as
//! Redis loads them; the corrupt ones fail with an error naming the place.

use bytes::Bytes;
use redsnap_engine::Value;
use redsnap_persist::rdbfile::{Item, RdbFileError, RdbReader, ReadOptions, ReadSummary};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn asset(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/redis-suite/redis-tests/tests/assets")
        .join(name);
    if p.exists() {
        Some(p)
    } else {
        // The suite lives beside the project (shared/); without it there is nothing
        // to compare with.
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

type Keys = BTreeMap<(u64, Vec<u8>), (Value, Option<u64>)>;

fn read(name: &str) -> Option<Result<(Keys, ReadSummary), RdbFileError>> {
    let data = std::fs::read(asset(name)?).expect("read asset");
    let mut out = Keys::new();
    let res = (|| {
        let mut r = RdbReader::new(&data[..], ReadOptions::default())?;
        while let Some(item) = r.next_item()? {
            if let Item::Key(k) = item {
                out.insert((k.db, k.key.to_vec()), (k.value, k.expire_ms));
            }
        }
        Ok(r.summary().clone())
    })();
    Some(res.map(|s| (out, s)))
}

fn strs(v: &[&str]) -> Vec<Bytes> {
    v.iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn get<'a>(keys: &'a Keys, k: &str) -> &'a Value {
    &keys
        .get(&(0, k.as_bytes().to_vec()))
        .unwrap_or_else(|| panic!("key {k} missing"))
        .0
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Value::Str(s) => vec![String::from_utf8_lossy(s).into_owned()],
        Value::List(l) => l
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect(),
        Value::Set(s) => s
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect(),
        Value::Hash(h) => h
            .iter()
            .map(|(f, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(f),
                    String::from_utf8_lossy(v)
                )
            })
            .collect(),
        Value::ZSet(z) => z
            .iter()
            .map(|(m, s)| format!("{}={s}", String::from_utf8_lossy(m)))
            .collect(),
        Value::Stream(st) => st
            .range(
                redsnap_engine::stream::StreamId::MIN,
                redsnap_engine::stream::StreamId::MAX,
                false,
                0,
            )
            .into_iter()
            .map(|(id, f)| format!("{id}={f:?}"))
            .collect(),
        Value::Json(j) => vec![String::from_utf8_lossy(&j.to_json()).into_owned()],
    };
    if !matches!(v, Value::List(_)) {
        out.sort();
    }
    out
}

/// integration/rdb.tcl "RDB encoding loading test" (RDB version 4: zipmap-era
/// encodings, intsets of each width, ziplists, linked lists, LZF strings).
#[test]
fn encodings_rdb() {
    let Some(res) = read("encodings.rdb") else {
        return;
    };
    let (keys, summary) = res.expect("encodings.rdb reads");
    assert_eq!(summary.version, 4);
    assert_eq!(keys.len(), 13);
    assert_eq!(sorted(get(&keys, "compressible")), vec!["a".repeat(137)]);
    assert_eq!(
        sorted(get(&keys, "hash")),
        [
            "a=1",
            "aa=10",
            "aaa=100",
            "b=2",
            "bb=20",
            "bbb=200",
            "c=3",
            "cc=30",
            "ccc=300",
            "ddd=400",
            "eee=5000000000"
        ]
    );
    assert_eq!(sorted(get(&keys, "hash_zipped")), ["a=1", "b=2", "c=3"]);
    let l = ["1", "2", "3", "a", "b", "c", "100000", "6000000000"];
    assert_eq!(*get(&keys, "list_zipped"), Value::List(strs(&l).into()));
    let l3: Vec<&str> = l.iter().chain(l.iter()).chain(l.iter()).copied().collect();
    assert_eq!(*get(&keys, "list"), Value::List(strs(&l3).into()));
    assert_eq!(sorted(get(&keys, "number")), ["10"]);
    assert_eq!(
        sorted(get(&keys, "set")),
        ["1", "100000", "2", "3", "6000000000", "a", "b", "c"]
    );
    assert_eq!(sorted(get(&keys, "set_zipped_1")), ["1", "2", "3", "4"]);
    assert_eq!(
        sorted(get(&keys, "set_zipped_2")),
        ["100000", "200000", "300000", "400000"]
    );
    assert_eq!(
        sorted(get(&keys, "set_zipped_3")),
        [
            "1000000000",
            "2000000000",
            "3000000000",
            "4000000000",
            "5000000000",
            "6000000000"
        ]
    );
    assert_eq!(sorted(get(&keys, "string")), ["Hello World"]);
    assert_eq!(
        sorted(get(&keys, "zset")),
        [
            "a=1",
            "aa=10",
            "aaa=100",
            "aaaa=1000",
            "b=2",
            "bb=20",
            "bbb=200",
            "bbbb=5000000000",
            "c=3",
            "cc=30",
            "ccc=300",
            "cccc=123456789"
        ]
    );
    assert_eq!(sorted(get(&keys, "zset_zipped")), ["a=1", "b=2", "c=3"]);
}

/// integration/rdb.tcl "test old version rdb file" (RDB 8, quicklist of ziplists).
#[test]
fn list_quicklist_rdb() {
    let Some(res) = read("list-quicklist.rdb") else {
        return;
    };
    let (keys, s) = res.expect("reads");
    assert_eq!(s.version, 8);
    assert_eq!(sorted(get(&keys, "x")), ["7"]);
    assert!(
        matches!(get(&keys, "list"), Value::List(l) if l.front().is_some_and(|f| f.as_bytes() == b"7"))
    );
}

/// integration/convert-zipmap-hash-on-load.tcl (RDB 3, a zipmap hash, no checksum).
#[test]
fn hash_zipmap_rdb() {
    let Some(res) = read("hash-zipmap.rdb") else {
        return;
    };
    let (keys, s) = res.expect("reads");
    assert_eq!((s.version, s.stored_checksum), (3, None));
    assert_eq!(sorted(get(&keys, "hash")), ["f1=v1", "f2=v2"]);
}

/// convert-ziplist-hash-on-load.tcl and convert-ziplist-zset-on-load.tcl.
#[test]
fn ziplist_hash_and_zset_rdb() {
    if let Some(res) = read("hash-ziplist.rdb") {
        let (keys, _) = res.expect("hash-ziplist reads");
        assert_eq!(sorted(get(&keys, "hash")), ["f1=v1", "f2=v2"]);
    }
    if let Some(res) = read("zset-ziplist.rdb") {
        let (keys, _) = res.expect("zset-ziplist reads");
        assert_eq!(sorted(get(&keys, "zset")), ["one=1", "two=2"]);
    }
}

/// scriptbackup.rdb carries a `lua` AUX field (ignored, as Redis does) and a key.
#[test]
fn scriptbackup_rdb() {
    let Some(res) = read("scriptbackup.rdb") else {
        return;
    };
    let (keys, s) = res.expect("reads");
    assert_eq!(s.version, 10);
    assert_eq!(keys.len() as u64, s.keys);
}

/// corrupt-dump.tcl "load corrupted rdb with empty keys": every key is an empty
/// collection; Redis skips them (9) and loads nothing.
#[test]
fn corrupt_empty_keys_rdb() {
    let Some(res) = read("corrupt_empty_keys.rdb") else {
        return;
    };
    let (keys, s) = res.expect("reads, skipping empty keys");
    assert!(keys.is_empty());
    assert_eq!(s.skipped_empty, 9);
}

/// corrupt-dump.tcl "load corrupted rdb with no CRC - #3505": Redis refuses it
/// ("integrity check failed"); so does the reader, naming the key and offset.
#[test]
fn corrupt_ziplist_rdb() {
    let Some(res) = read("corrupt_ziplist.rdb") else {
        return;
    };
    match res {
        Err(e @ RdbFileError::Corrupt { .. }) => {
            let msg = e.to_string();
            eprintln!("{msg}");
            assert!(msg.contains("key \""), "{msg}");
            assert!(msg.contains("byte offset"), "{msg}");
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok((keys, _)) => panic!("corrupt_ziplist.rdb read ({} keys)", keys.len()),
    }
}
