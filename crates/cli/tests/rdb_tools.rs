//! `redsnap restore | inspect | verify` and `serve --import` against real servers:
//! a redis-server 7.0 dump restores into redsnap (over TCP, into a data directory,
//! by --import) to the dataset Redis serves; damaged files are named by `verify`
//! and `restore` writes nothing from them.

use anyhow::{Context, Result};
use redsnap_testsupport::dataset::{fetch_dataset, fill_every_encoding, Client, Dataset, Resp};
use redsnap_testsupport::{redsnap_bin, RedisServer, RedsnapServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DBS: u32 = 16;

fn redsnap(args: &[&str]) -> Result<Output> {
    let out = Command::new(redsnap_bin()?)
        .args(args)
        .env_remove("REDSNAP_LOG")
        .output()
        .context("running redsnap")?;
    Ok(out)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A redis-server filled with every encoding, its dataset, and a copy of its SAVE.
fn redis_dump(dir: &Path) -> Result<(Dataset, PathBuf)> {
    let redis = RedisServer::builder()
        .extra_args(&["--enable-debug-command", "yes"])
        .start()?;
    let mut c = Client::connect(redis.port(), None)?;
    fill_every_encoding(&mut c)?;
    let ds = fetch_dataset(redis.port(), None, DBS)?;
    // A key already expired in the file (SAVE writes keys whether expired or not):
    // skipped and counted by restore. Nothing reads it, so nothing expires it.
    c.ok(&[b"DEBUG", b"SET-ACTIVE-EXPIRE", b"0"])?;
    c.ok(&[b"SET", b"gone", b"x", b"PX", b"1"])?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    c.ok(&[b"SAVE"])?;
    let path = dir.join("dump.rdb");
    std::fs::copy(redis.dir().join("dump.rdb"), &path)?;
    Ok((ds, path))
}

fn total_keys(port: u16) -> Result<i64> {
    let mut c = Client::connect(port, None)?;
    let mut n = 0;
    for db in 0..DBS {
        c.ok(&[b"SELECT", db.to_string().as_bytes()])?;
        if let Resp::Int(k) = c.ok(&[b"DBSIZE"])? {
            n += k;
        }
    }
    Ok(n)
}

#[test]
fn a_redis_dump_restores_into_redsnap_over_tcp() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (ds, dump) = redis_dump(tmp.path())?;
    let server = RedsnapServer::start()?;
    let url = server.url();
    let out = redsnap(&[
        "restore",
        dump.to_str().unwrap_or(""),
        "--to",
        &url,
        "--json",
    ])?;
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["keys_restored"], ds.len() as u64);
    assert_eq!(report["expired_skipped"], 1);
    assert_eq!(fetch_dataset(server.port(), None, DBS)?, ds);

    // Again: every key exists now; refused with the count, nothing written.
    let mut c = Client::connect(server.port(), None)?;
    c.ok(&[b"SET", b"s:short", b"changed"])?;
    let out = redsnap(&["restore", dump.to_str().unwrap_or(""), "--to", &url])?;
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("{} key(s)", ds.len())),
        "{}",
        text(&out)
    );
    assert_eq!(
        c.ok(&[b"GET", b"s:short"])?,
        Resp::Bulk(Some(b"changed".to_vec()))
    );
    // --replace overwrites.
    let out = redsnap(&[
        "restore",
        dump.to_str().unwrap_or(""),
        "--to",
        &url,
        "--replace",
    ])?;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fetch_dataset(server.port(), None, DBS)?, ds);

    // --db keeps one database of the file.
    c.ok(&[b"FLUSHALL"])?;
    let out = redsnap(&[
        "restore",
        dump.to_str().unwrap_or(""),
        "--to",
        &url,
        "--db",
        "9",
    ])?;
    assert!(out.status.success(), "{}", text(&out));
    let only9: Dataset = ds
        .iter()
        .filter(|((db, _), _)| *db == 9)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(!only9.is_empty());
    assert_eq!(fetch_dataset(server.port(), None, DBS)?, only9);
    // A database in the URL receives the keys: db 9 of the file into db 3.
    c.ok(&[b"FLUSHALL"])?;
    let into3 = format!("{url}/3");
    let out = redsnap(&[
        "restore",
        dump.to_str().unwrap_or(""),
        "--to",
        &into3,
        "--db",
        "9",
    ])?;
    assert!(out.status.success(), "{}", text(&out));
    let moved: Dataset = only9
        .iter()
        .map(|((_, k), v)| ((3, k.clone()), v.clone()))
        .collect();
    assert_eq!(fetch_dataset(server.port(), None, DBS)?, moved);
    Ok(())
}

/// The same into a real redis-server: the payloads are ones Redis RESTOREs.
#[test]
fn a_redis_dump_restores_into_redis() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (ds, dump) = redis_dump(tmp.path())?;
    let target = RedisServer::start()?;
    let out = redsnap(&[
        "restore",
        dump.to_str().unwrap_or(""),
        "--to",
        &target.url(),
    ])?;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fetch_dataset(target.port(), None, DBS)?, ds);
    Ok(())
}

#[test]
fn restore_into_a_data_dir_and_serve_import() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (ds, dump) = redis_dump(tmp.path())?;
    let dump_s = dump.to_str().unwrap_or("");

    // restore --to DIR, then serve --dir DIR.
    let dir = tmp.path().join("data");
    let out = redsnap(&["restore", dump_s, "--to", dir.to_str().unwrap_or("")])?;
    assert!(out.status.success(), "{}", text(&out));
    {
        let server = RedsnapServer::builder().dir(&dir).start()?;
        assert_eq!(fetch_dataset(server.port(), None, DBS)?, ds);
    }
    // The directory holds data now: refused without --replace.
    let out = redsnap(&["restore", dump_s, "--to", dir.to_str().unwrap_or("")])?;
    assert!(!out.status.success());
    assert!(text(&out).contains("already holds data"), "{}", text(&out));
    let out = redsnap(&[
        "restore",
        dump_s,
        "--to",
        dir.to_str().unwrap_or(""),
        "--replace",
    ])?;
    assert!(out.status.success(), "{}", text(&out));

    // inspect --json of the file and of the directory agree on the counts.
    let out = redsnap(&["inspect", dump_s, "--json"])?;
    assert!(out.status.success(), "{}", text(&out));
    let f: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(f["dataset"]["keys"], ds.len() as u64 + 1); // + the expired key
    assert_eq!(f["dataset"]["dbs"]["9"]["keys"], 3);
    assert_eq!(f["rdb_version"], 10);
    assert!(f["encodings"]["set (intset)"]
        .as_u64()
        .is_some_and(|n| n >= 1));
    let out = redsnap(&["inspect", dir.to_str().unwrap_or(""), "--json"])?;
    assert!(out.status.success(), "{}", text(&out));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(d["dataset"]["keys"], ds.len() as u64);
    assert_eq!(d["snapshot"]["keys"], ds.len() as u64);
    let out = redsnap(&["verify", dir.to_str().unwrap_or("")])?;
    assert!(out.status.success(), "{}", text(&out));

    // serve --import fills an empty directory...
    let dir2 = tmp.path().join("imported");
    let mut server = RedsnapServer::builder()
        .dir(&dir2)
        .extra_args(&["--import", dump_s])
        .start()?;
    assert_eq!(fetch_dataset(server.port(), None, DBS)?, ds);
    server.stop();
    // The import's first snapshot was written (in the background, or at shutdown at
    // the latest): its marker is gone and a start without --import has the data.
    assert!(!dir2.join(redsnap_persist::import::MARKER).exists());
    {
        let server = RedsnapServer::builder().dir(&dir2).start()?;
        assert_eq!(fetch_dataset(server.port(), None, DBS)?, ds);
    }
    // ...and refuses one that holds data.
    let res = RedsnapServer::builder()
        .dir(&dir2)
        .extra_args(&["--import", dump_s])
        .start();
    let err = format!("{:#}", res.err().context("a second import started")?);
    assert!(err.contains("already holds data"), "{err}");
    Ok(())
}

/// Recomputes the CRC-64 trailer after an edit, so only the structure can tell.
fn refoot(data: &mut [u8]) {
    let n = data.len();
    let crc = redsnap_persist::rdbfile::crc64::crc64(&data[..n - 8]);
    data[n - 8..].copy_from_slice(&crc.to_le_bytes());
}

/// Damaged files: `verify` exits non-zero naming the file and the place (and the
/// key inside a record); `restore` writes nothing from them, to a server or a dir.
#[test]
fn damaged_files_are_named_and_never_restored() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (_, dump) = redis_dump(tmp.path())?;
    let good = std::fs::read(&dump)?;
    let out = redsnap(&["verify", dump.to_str().unwrap_or("")])?;
    assert!(out.status.success(), "{}", text(&out));

    let mut cases: Vec<(&str, Vec<u8>, Vec<&str>)> = Vec::new();
    // One flipped byte inside a value: the CRC-64.
    let mut flipped = good.clone();
    let at = good
        .windows(5)
        .position(|w| w == b"hello")
        .context("value in dump")?;
    flipped[at + 1] ^= 0x01;
    cases.push(("flipped", flipped, vec!["checksum", "byte offset"]));
    // Truncated in the middle.
    cases.push((
        "truncated",
        good[..good.len() / 2].to_vec(),
        vec!["truncated", "byte offset"],
    ));
    // A wrong entry length inside a listpack (h:small, type 16), CRC recomputed.
    let mut lp = good.clone();
    let key_at = good
        .windows(9)
        .position(|w| w == b"\x10\x07h:small")
        .context("h:small in dump")?;
    // type, key, blob length byte, then the listpack: 6-byte header, first entry.
    let entry = key_at + 9 + 1 + 6;
    assert_eq!(lp[entry], 0x82, "the first entry is the 2-byte string f1");
    lp[entry] = 0x85;
    refoot(&mut lp);
    cases.push((
        "listpack",
        lp,
        vec!["corrupt", "key \"h:small\"", "db 0", "byte offset"],
    ));

    let server = RedsnapServer::start()?;
    for (name, data, expect) in cases {
        let path = tmp.path().join(format!("{name}.rdb"));
        std::fs::write(&path, &data)?;
        let p = path.to_str().unwrap_or("");
        let out = redsnap(&["verify", p])?;
        assert!(
            !out.status.success(),
            "{name}: verify passed: {}",
            text(&out)
        );
        let msg = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(msg.contains(p), "{name}: {msg}");
        for e in expect {
            assert!(msg.contains(e), "{name}: {e:?} not in {msg}");
        }
        let out = redsnap(&["restore", p, "--to", &server.url()])?;
        assert!(!out.status.success(), "{name}: restore passed");
        assert_eq!(total_keys(server.port())?, 0, "{name}: restore wrote keys");
        let dir = tmp.path().join(format!("{name}-dir"));
        let out = redsnap(&["restore", p, "--to", dir.to_str().unwrap_or("")])?;
        assert!(!out.status.success(), "{name}: restore to dir passed");
        let out = redsnap(&["inspect", dir.to_str().unwrap_or(""), "--json"])?;
        let d: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(
            d["snapshot"],
            serde_json::Value::Null,
            "{name}: a snapshot was written"
        );
    }
    Ok(())
}

/// A data directory whose append log is damaged in the middle: `verify` names the
/// log file and the byte offset and exits non-zero; intact, it passes.
#[test]
fn verify_names_a_damaged_log_frame() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let mut server = RedsnapServer::builder()
        .dir(&dir)
        .extra_args(&["--appendonly", "yes", "--save", ""])
        .start()?;
    let mut c = Client::connect(server.port(), None)?;
    for i in 0..50 {
        c.ok(&[b"SET", format!("k{i}").as_bytes(), b"some value to log"])?;
    }
    drop(c);
    server.kill_9();
    let out = redsnap(&["verify", dir.to_str().unwrap_or("")])?;
    assert!(out.status.success(), "{}", text(&out));
    let out = redsnap(&["inspect", dir.to_str().unwrap_or(""), "--json"])?;
    let d: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(d["dataset"]["keys"], 50, "{d}");
    let log = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .context("a log file")?;
    let mut bytes = std::fs::read(&log)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&log, &bytes)?;
    let out = redsnap(&["verify", dir.to_str().unwrap_or("")])?;
    assert!(!out.status.success(), "{}", text(&out));
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(msg.contains(&log.display().to_string()), "{msg}");
    assert!(msg.contains("byte offset"), "{msg}");
    Ok(())
}
