//! RDB files against a real redis-server 7.0: what it SAVEs reads to the dataset it
//! serves, and what the writer produces passes `redis-check-rdb` and loads in it to
//! the same dataset.

use anyhow::{bail, Context, Result};
use redsnap_engine::{Db, Value};
use redsnap_persist::rdbfile::{self, Item, RdbReader, ReadOptions};
use redsnap_testsupport::dataset::{fetch_dataset, fill_every_encoding, Client, Dataset, KeyState};
use redsnap_testsupport::RedisServer;
use std::path::Path;

const DBS: u32 = 16;

const LIBRARY: &str =
    "#!lua name=rdbtestlib\nredis.register_function('rdbtest_one', function() return 1 end)";

fn state_of(v: &Value, expire_ms: Option<u64>) -> KeyState {
    let (kind, mut value): (&str, Vec<Vec<u8>>) = match v {
        Value::Str(s) => ("string", vec![s.to_vec()]),
        Value::List(l) => ("list", l.iter().map(|e| e.to_vec()).collect()),
        Value::Set(s) => ("set", s.iter().map(|e| e.to_vec()).collect()),
        Value::Hash(h) => (
            "hash",
            h.iter()
                .map(|(f, v)| [&f[..], &v[..]].join(&b"\0"[..]))
                .collect(),
        ),
        Value::ZSet(z) => (
            "zset",
            z.iter()
                .map(|(m, s)| [&m[..], redsnap_engine::num::fmt_g17(s).as_bytes()].join(&b"\0"[..]))
                .collect(),
        ),
        Value::Stream(st) => (
            "stream",
            st.range(
                redsnap_engine::stream::StreamId::MIN,
                redsnap_engine::stream::StreamId::MAX,
                false,
                0,
            )
            .into_iter()
            .map(|(id, f)| [id.to_bytes().to_vec(), f.concat()].join(&b"\0"[..]))
            .collect(),
        ),
        Value::Json(j) => ("ReJSON-RL", vec![j.to_json()]),
    };
    if matches!(kind, "set" | "hash") {
        value.sort();
    }
    KeyState {
        kind: kind.into(),
        value,
        pexpiretime: expire_ms.map_or(-1, |t| t as i64),
    }
}

/// Reads an RDB file into a dataset, its function libraries and the databases.
fn read_file(path: &Path) -> Result<(Dataset, Vec<Vec<u8>>, Vec<Db>)> {
    let f = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut r = RdbReader::new(f, ReadOptions::default())?;
    let mut ds = Dataset::new();
    let mut libs = Vec::new();
    let mut dbs: Vec<Db> = (0..DBS).map(|_| Db::new()).collect();
    while let Some(item) = r.next_item()? {
        match item {
            Item::Key(k) => {
                ds.insert(
                    (k.db as u32, k.key.to_vec()),
                    state_of(&k.value, k.expire_ms),
                );
                dbs[k.db as usize].insert(&k.key, k.value, k.expire_ms);
            }
            Item::Function { code } => libs.push(code.to_vec()),
            Item::Skipped { key, .. } => bail!("skipped {key:?}"),
            _ => {}
        }
    }
    assert!(r.summary().checksum_verified, "Redis writes a checksum");
    Ok((ds, libs, dbs))
}

fn filled_redis() -> Result<(RedisServer, Dataset)> {
    let redis = RedisServer::start()?;
    let mut c = Client::connect(redis.port(), None)?;
    let n = fill_every_encoding(&mut c)?;
    c.ok(&[b"FUNCTION", b"LOAD", LIBRARY.as_bytes()])?;
    let ds = fetch_dataset(redis.port(), None, DBS)?;
    assert_eq!(ds.len(), n);
    Ok((redis, ds))
}

/// Each encoding the fill asks for is the one Redis picked (so the file holds them).
fn check_encodings(port: u16) -> Result<()> {
    let mut c = Client::connect(port, None)?;
    for (key, enc) in [
        ("s:int", "int"),
        ("s:big", "raw"),
        ("l:small", "quicklist"),
        ("set:int", "intset"),
        ("set:big", "hashtable"),
        ("h:small", "listpack"),
        ("h:big", "hashtable"),
        ("h:longval", "hashtable"),
        ("z:small", "listpack"),
        ("z:big", "skiplist"),
    ] {
        let got = c.ok(&[b"OBJECT", b"ENCODING", key.as_bytes()])?;
        assert_eq!(
            got,
            redsnap_testsupport::dataset::Resp::Bulk(Some(enc.as_bytes().to_vec())),
            "{key}"
        );
    }
    Ok(())
}

#[test]
fn redis_save_reads_to_the_dataset_it_serves() -> Result<()> {
    let (redis, ds) = filled_redis()?;
    check_encodings(redis.port())?;
    Client::connect(redis.port(), None)?.ok(&[b"SAVE"])?;
    let (read, libs, _) = read_file(&redis.dir().join("dump.rdb"))?;
    assert_eq!(read, ds);
    assert_eq!(libs, vec![LIBRARY.as_bytes().to_vec()]);
    Ok(())
}

#[test]
fn written_files_pass_redis_check_rdb_and_load_in_redis() -> Result<()> {
    let (redis, ds) = filled_redis()?;
    Client::connect(redis.port(), None)?.ok(&[b"SAVE"])?;
    let (_, libs, dbs) = read_file(&redis.dir().join("dump.rdb"))?;
    drop(redis);

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("written.rdb");
    let f = std::fs::File::create(&path)?;
    let (_, stats) = rdbfile::write_dbs(f, &dbs, &rdbfile::default_aux(0))?;
    assert_eq!(stats.keys as usize, ds.len());
    // Functions too: a second file with the writer's own API.
    let path2 = dir.path().join("with-functions.rdb");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&path2)?);
        let mut w = rdbfile::RdbWriter::new(f, &rdbfile::default_aux(0))?;
        for code in &libs {
            w.write_function(code)?;
        }
        for (i, db) in dbs.iter().enumerate() {
            for (k, e) in db.iter() {
                w.write_key(i as u64, k.as_bytes(), e.value(), e.expire_at())?;
            }
        }
        w.finish()?;
    }

    for p in [&path, &path2] {
        let out = std::process::Command::new("redis-check-rdb")
            .arg(p)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "redis-check-rdb {}: {text}",
            p.display()
        );
        assert!(text.contains("RDB looks OK"), "{text}");
    }
    // Our reader agrees with itself on both.
    assert_eq!(read_file(&path)?.0, ds);
    assert_eq!(read_file(&path2)?.0, ds);

    // A real redis-server loads each to the same dataset (and the library).
    for (p, name) in [(&path, "written.rdb"), (&path2, "with-functions.rdb")] {
        let rdir = tempfile::tempdir()?;
        std::fs::copy(p, rdir.path().join(name))?;
        let loaded = RedisServer::builder()
            .dir(rdir.path())
            .extra_args(&["--dbfilename", name])
            .start()?;
        assert_eq!(fetch_dataset(loaded.port(), None, DBS)?, ds, "{name}");
        if name == "with-functions.rdb" {
            let r = Client::connect(loaded.port(), None)?.ok(&[b"FCALL", b"rdbtest_one", b"0"])?;
            assert_eq!(r, redsnap_testsupport::dataset::Resp::Int(1));
        }
    }
    Ok(())
}
