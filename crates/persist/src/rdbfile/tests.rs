use super::*;
use bytes::Bytes;
use redsnap_engine::{Value, ZSet};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// (db, key, value, deadline) of every kind, with a few large ones.
fn sample() -> Vec<(u64, Bytes, Value, Option<u64>)> {
    let big: Vec<Bytes> = (0..600).map(|i| b(&format!("member-{i}"))).collect();
    let mut z = ZSet::new();
    z.insert(b("a"), 1.5);
    z.insert(b("b"), f64::NEG_INFINITY);
    vec![
        (0, b("str"), Value::Str(b("hello")), None),
        (
            0,
            b("int"),
            Value::Str(b("-12345")),
            Some(4_000_000_000_000),
        ),
        (
            0,
            b("bin\x00key"),
            Value::Str(Bytes::from(vec![0u8; 3000])),
            None,
        ),
        (0, b("list"), Value::List(big.clone().into()), Some(1)),
        (
            3,
            b("set"),
            Value::Set(Box::new(big.iter().map(|m| m[..].into()).collect())),
            None,
        ),
        (
            3,
            b("hash"),
            Value::Hash(Box::new(redsnap_engine::value::Hash::from_iter([
                ("f".into(), "v".into()),
                ("g".into(), "".into()),
            ]))),
            None,
        ),
        (15, b("zset"), Value::ZSet(Box::new(z)), None),
        // A JSON document, as RedisJSON's module value (ReJSON-RL, encver 3).
        (
            15,
            b("json"),
            Value::Json(Box::new(
                redsnap_engine::json::JVal::parse(br#"{"a":[1,2.5,"x"],"b":{"c":null}}"#)
                    .expect("json"),
            )),
            None,
        ),
    ]
}

fn write_sample() -> Vec<u8> {
    let mut w = RdbWriter::new(Vec::new(), &default_aux(1234)).expect("header");
    for (db, k, v, t) in sample() {
        w.write_key(db, &k, &v, t).expect("key");
    }
    w.write_function(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)")
        .expect("function");
    w.finish().expect("finish").0
}

fn read_all(data: &[u8], opts: ReadOptions) -> Result<(Vec<Item>, ReadSummary), RdbFileError> {
    let mut r = RdbReader::new(data, opts)?;
    let mut items = Vec::new();
    while let Some(i) = r.next_item()? {
        items.push(i);
    }
    Ok((items, r.summary().clone()))
}

#[test]
fn writer_output_reads_back() {
    let data = write_sample();
    assert_eq!(&data[..9], b"REDIS0010");
    let (items, summary) = read_all(&data, ReadOptions::default()).expect("reads");
    let keys: Vec<(u64, Bytes, Value, Option<u64>)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Key(k) => Some((k.db, k.key.clone(), k.value.clone(), k.expire_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(keys, sample());
    assert!(summary.checksum_verified);
    assert_eq!(summary.keys, 8);
    assert_eq!(summary.functions, 1);
    assert_eq!(summary.bytes, data.len() as u64);
    let aux: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::Aux { key, .. } => Some(String::from_utf8_lossy(key).into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(
        aux,
        ["redis-ver", "redis-bits", "ctime", "used-mem", "aof-base"]
    );
}

#[test]
fn write_entries_and_write_dbs_agree() {
    let sample = sample();
    let (plain, stats) = write_entries(
        Vec::new(),
        &[],
        sample.iter().map(|(db, k, v, t)| (*db, &k[..], v, *t)),
    )
    .expect("writes");
    assert_eq!(stats.keys, sample.len() as u64);
    let mut dbs: Vec<redsnap_engine::Db> = (0..16).map(|_| redsnap_engine::Db::new()).collect();
    for (db, k, v, t) in &sample {
        dbs[*db as usize].insert(k, v.clone(), *t);
    }
    let (from_dbs, _) = write_dbs(Vec::new(), &dbs, &[]).expect("writes");
    let keys = |data: &[u8]| {
        let (items, _) = read_all(data, ReadOptions::default()).expect("reads");
        let mut v: Vec<(u64, Bytes, Value, Option<u64>)> = items
            .into_iter()
            .filter_map(|i| match i {
                Item::Key(k) => Some((k.db, k.key, k.value, k.expire_ms)),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        v
    };
    let mut want = sample.clone();
    want.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    assert_eq!(keys(&plain), want);
    assert_eq!(keys(&from_dbs), want);
    // write_dbs announces each database's sizes.
    let (items, _) = read_all(&from_dbs, ReadOptions::default()).expect("reads");
    assert!(items.iter().any(|i| matches!(
        i,
        Item::ResizeDb {
            db_size: 4,
            expires_size: 2
        }
    )));
}

#[test]
fn every_truncation_and_flip_fails_cleanly() {
    let data = write_sample();
    for cut in 0..data.len() {
        let res = read_all(&data[..cut], ReadOptions::default());
        assert!(res.is_err(), "a file cut at {cut} read");
    }
    // Every single flipped byte is caught (by the structure or the checksum).
    for i in 0..data.len() {
        let mut d = data.clone();
        d[i] ^= 0x20;
        let res = read_all(&d, ReadOptions::default());
        assert!(res.is_err(), "a flip at {i} read");
    }
}

#[test]
fn checksum_mismatch_names_the_trailer() {
    let mut data = write_sample();
    let n = data.len();
    // A byte inside a string value: the structure still parses, the CRC does not.
    let at = data
        .windows(5)
        .position(|w| w == b"hello")
        .expect("value in file");
    data[at] = b'j';
    match read_all(&data, ReadOptions::default()) {
        Err(RdbFileError::Checksum { offset, .. }) => assert_eq!(offset, n as u64 - 8),
        other => panic!("{other:?}"),
    }
    // A zero checksum means "disabled": nothing to compare.
    data[n - 8..].copy_from_slice(&[0; 8]);
    let (_, s) = read_all(&data, ReadOptions::default()).expect("reads");
    assert_eq!(s.stored_checksum, Some(0));
    assert!(!s.checksum_verified);
}

#[test]
fn versions() {
    for v in [0u32, 12, 99] {
        let data = format!("REDIS{v:04}\u{ff}");
        match RdbReader::new(data.as_bytes(), ReadOptions::default()) {
            Err(RdbFileError::UnsupportedVersion { version }) => assert_eq!(version, v),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("version {v} accepted"),
        }
    }
    let e = RdbReader::new(&b"REDIS0012"[..], ReadOptions::default()).err();
    assert!(e.is_some_and(|e| e.to_string().contains("version 12")));
    assert!(matches!(
        RdbReader::new(&b"RDB00001"[..], ReadOptions::default()),
        Err(RdbFileError::BadSignature { .. })
    ));
    // Versions before 5 end at the EOF opcode, with no checksum.
    let (_, s) = read_all(
        b"REDIS0004\xfe\x00\x00\x01k\x01v\xff",
        ReadOptions::default(),
    )
    .expect("v4");
    assert_eq!((s.keys, s.stored_checksum), (1, None));
}

/// RDB 11 (Redis 7.2) sets as listpacks: type 20.
#[test]
fn set_listpack() {
    // listpack: total, count, entries "a" (0x81 'a' backlen 2), 7 (0x07 backlen 1)
    let lp: Vec<u8> = {
        let mut e = vec![0x81, b'a', 0x02, 0x07, 0x01, 0xff];
        let total = (6 + e.len()) as u32;
        let mut v = total.to_le_bytes().to_vec();
        v.extend_from_slice(&2u16.to_le_bytes());
        v.append(&mut e);
        v
    };
    let mut f = b"REDIS0011\xfe\x00\x14\x01s".to_vec();
    codec_len(&mut f, lp.len() as u64);
    f.extend_from_slice(&lp);
    f.push(0xff);
    let crc = crc64::crc64(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    let (items, _) = read_all(&f, ReadOptions::default()).expect("reads");
    let v = items.iter().find_map(|i| match i {
        Item::Key(k) => Some(k.value.clone()),
        _ => None,
    });
    assert_eq!(
        v,
        Some(Value::Set(Box::new(
            ["a", "7"].into_iter().map(Into::into).collect()
        )))
    );
}

fn codec_len(out: &mut Vec<u8>, n: u64) {
    redsnap_engine::rdb::write_len(out, n);
}

/// A file with a stream and a module value: the stream loads; the module value is an
/// error naming key, db and type, or skipped and counted.
#[test]
fn unsupported_types() {
    let mut f = b"REDIS0010\xfe\x02".to_vec();
    // A minimal stream (type 15): no listpacks, length 0, last id 0-0, no groups.
    f.extend_from_slice(b"\x0f\x02st\x00\x00\x00\x00\x00");
    // A module value (type 7): id, then an unsigned int, a string, EOF.
    f.push(7);
    f.extend_from_slice(b"\x02mv");
    f.push(0x81);
    let id: u64 = 0x1234_5678_9abc_d000;
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(b"\x02\x05\x05\x03abc\x00");
    f.extend_from_slice(b"\x00\x01k\x01v\xff");
    let crc = crc64::crc64(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    match read_all(&f, ReadOptions::default()) {
        Err(RdbFileError::Unsupported {
            db, key, type_name, ..
        }) => {
            assert_eq!(db, 2);
            assert_eq!(key.as_str(), "\"mv\"");
            assert!(type_name.starts_with("value of module"), "{type_name}");
        }
        other => panic!("{other:?}"),
    }
    let opts = ReadOptions {
        skip_unsupported: true,
        ..Default::default()
    };
    let (items, s) = read_all(&f, opts).expect("skips");
    // The (empty) stream loads, as Redis keeps empty streams; the module value is
    // skipped.
    assert_eq!((s.keys, s.skipped_unsupported), (2, 1));
    assert!(items
        .iter()
        .any(|i| matches!(i, Item::Key(k) if k.key == "st")));
    assert!(items
        .iter()
        .any(|i| matches!(i, Item::Key(k) if k.key == "k")));
}

#[test]
fn random_bytes_after_a_header_never_panic() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..5000 {
        let mut f = b"REDIS0010".to_vec();
        for _ in 0..(round % 200) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.push(x as u8);
        }
        let _ = read_all(&f, ReadOptions::default());
        let _ = read_all(
            &f,
            ReadOptions {
                skip_unsupported: true,
                value_limit: 1 << 16,
            },
        );
    }
}

#[test]
fn a_huge_declared_length_allocates_nothing_up_front() {
    // A string key declaring 4 GiB with 3 bytes behind it: truncated, not an OOM.
    let mut f = b"REDIS0010\x00\x80\xff\xff\xff\xffabc".to_vec();
    f.push(0xff);
    match read_all(&f, ReadOptions::default()) {
        Err(RdbFileError::Truncated { offset, .. }) => assert_eq!(offset, f.len() as u64),
        other => panic!("{other:?}"),
    }
    // Past the per-value limit: refused once that much arrived, without reading on.
    let mut f = b"REDIS0010\x00\x01k\x80\xff\xff\xff\xff".to_vec();
    f.extend_from_slice(&[b'x'; 5000]);
    let opts = ReadOptions {
        value_limit: 1000,
        ..Default::default()
    };
    match read_all(&f, opts) {
        Err(RdbFileError::TooLarge { key, db, .. }) => {
            assert_eq!((key.as_deref(), db), (Some("\"k\""), Some(0)))
        }
        other => panic!("{other:?}"),
    }
}

mod fuzzish {
    use super::*;
    use proptest::prelude::*;

    /// Seeds: the writer's output and Redis's own test files when present.
    fn seeds() -> Vec<Vec<u8>> {
        let mut v = vec![write_sample()];
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/redis-suite/redis-tests/tests/assets");
        if let Ok(rd) = std::fs::read_dir(assets) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "rdb") {
                    if let Ok(b) = std::fs::read(e.path()) {
                        v.push(b);
                    }
                }
            }
        }
        v
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Flip(usize, u8),
        Insert(usize, Vec<u8>),
        Remove(usize, usize),
        Truncate(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
            (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(i, b)| Edit::Insert(i, b)),
            (any::<usize>(), 1usize..6).prop_map(|(i, n)| Edit::Remove(i, n)),
            any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Mutated valid files (with the checksum fixed up half the time, so the
        /// structure checks are what stop them) and random bytes never panic the
        /// reader, and what it accepts is within the value limit.
        #[test]
        fn mutated_files_never_panic(
            which in 0usize..64,
            edits in proptest::collection::vec(edit(), 0..6),
            noise in proptest::collection::vec(any::<u8>(), 0..256),
            random in any::<bool>(),
            fix_crc in any::<bool>(),
        ) {
            let seeds = seeds();
            let mut q = if random {
                let mut h = b"REDIS0010".to_vec();
                h.extend_from_slice(&noise);
                h
            } else {
                seeds[which % seeds.len()].clone()
            };
            for e in edits {
                let len = q.len().max(1);
                match e {
                    Edit::Flip(i, b) => if !q.is_empty() { q[i % len] ^= b.max(1) },
                    Edit::Insert(i, b) => { let at = i % (q.len() + 1); q.splice(at..at, b); }
                    Edit::Remove(i, n) => if !q.is_empty() { let at = i % len; let end = (at + n).min(q.len()); q.drain(at..end); },
                    Edit::Truncate(i) => q.truncate(i % len),
                }
            }
            if fix_crc && q.len() > 17 {
                let n = q.len();
                let crc = crc64::crc64(&q[..n - 8]);
                q[n - 8..].copy_from_slice(&crc.to_le_bytes());
            }
            let opts = ReadOptions { skip_unsupported: true, value_limit: 1 << 20 };
            if let Ok((items, _)) = read_all(&q, opts) {
                for i in items {
                    if let Item::Key(k) = i {
                        prop_assert!(k.size <= 1 << 20);
                    }
                }
            }
        }
    }
}

/// Keys written from DUMP payloads (type and body as they are) read back as the
/// values they encode, large bodies (past the buffer) included.
#[test]
fn encoded_keys_read_back() {
    let mut w = RdbWriter::new(Vec::new(), &[]).expect("header");
    let sample = sample();
    let mut big = sample.clone();
    big.push((
        5,
        b("huge"),
        Value::Str(Bytes::from(vec![b'x'; 600_000])),
        None,
    ));
    for (db, k, v, t) in &big {
        let p = redsnap_engine::rdb::dump_payload(v);
        let d = DumpPayload::parse(&p).expect("payload");
        w.write_encoded_key(*db, k, d.rdb_type, d.body, *t)
            .expect("key");
    }
    assert_eq!(w.keys(), big.len() as u64);
    let before = w.bytes();
    let (data, stats) = w.finish().expect("finish");
    assert_eq!(stats.bytes, data.len() as u64);
    assert_eq!(before + 9, data.len() as u64); // EOF opcode and trailer
    let (items, summary) = read_all(&data, ReadOptions::default()).expect("reads");
    assert!(summary.checksum_verified);
    let keys: Vec<(u64, Bytes, Value, Option<u64>)> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Key(k) => Some((k.db, k.key, k.value, k.expire_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(keys, big);
}
