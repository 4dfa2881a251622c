//! `redsnap backup` against real servers: a backup of a redsnap taken while
//! clients write restores to one point in time; what it writes passes
//! `redis-check-rdb` and loads into redis-server; a redis-server source is backed
//! up by SYNC, and by SCAN + DUMP + PTTL when it refuses SYNC; `--keep` rotates; a
//! damaged backup is named by `verify` and never restored.

use anyhow::{bail, Context, Result};
use redsnap_testsupport::dataset::{
    fetch_dataset, fill_every_encoding, Client, Dataset, KeyState, Resp,
};
use redsnap_testsupport::{redsnap_bin, RedisServer, RedsnapServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DBS: u32 = 16;
const LIB: &[u8] = b"#!lua name=bklib\nredis.register_function('bk_one', function() return 1 end)";

fn redsnap(args: &[&str]) -> Result<Output> {
    Command::new(redsnap_bin()?)
        .args(args)
        .env_remove("REDSNAP_LOG")
        .output()
        .context("running redsnap")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap_or("")
}

/// `redsnap backup ... --json`: the manifest.
fn backup(from: &str, to: &Path, extra: &[&str]) -> Result<serde_json::Value> {
    let mut args = vec!["backup", "--from", from, "--to", p(to), "--json"];
    args.extend_from_slice(extra);
    let out = redsnap(&args)?;
    if !out.status.success() {
        bail!("backup failed: {}", text(&out));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Fills a server with every type and encoding, a few deadlines within the next
/// hours, and a function library.
fn fill(port: u16) -> Result<()> {
    let mut c = Client::connect(port, None)?;
    fill_every_encoding(&mut c)?;
    c.ok(&[b"SELECT", b"2"])?;
    c.ok(&[b"SET", b"near", b"soon", b"PX", b"3600000"])?;
    c.ok(&[b"HSET", b"near:h", b"a", b"1"])?;
    c.ok(&[b"PEXPIRE", b"near:h", b"7200000"])?;
    c.ok(&[b"SELECT", b"0"])?;
    c.ok(&[b"FUNCTION", b"LOAD", LIB])?;
    Ok(())
}

/// Every key of `expected` in `got`, same type and value, deadlines within a
/// second.
fn assert_holds(got: &Dataset, expected: &Dataset, what: &str) {
    for (k, want) in expected {
        let Some(have) = got.get(k) else {
            panic!(
                "{what}: db {} key {:?} missing",
                k.0,
                String::from_utf8_lossy(&k.1)
            );
        };
        let KeyState {
            kind,
            value,
            pexpiretime,
        } = have;
        assert_eq!(kind, &want.kind, "{what}: type of {k:?}");
        assert!(value == &want.value, "{what}: value of {k:?}");
        let ok = if want.pexpiretime < 0 {
            *pexpiretime == want.pexpiretime
        } else {
            (pexpiretime - want.pexpiretime).abs() <= 1000
        };
        assert!(
            ok,
            "{what}: deadline of {k:?}: {pexpiretime} vs {}",
            want.pexpiretime
        );
    }
}

/// The same keys, and each as `assert_holds` says.
fn assert_same(got: &Dataset, expected: &Dataset, what: &str) {
    let a: Vec<_> = got.keys().collect();
    let b: Vec<_> = expected.keys().collect();
    assert_eq!(a, b, "{what}: the keys differ");
    assert_holds(got, expected, what);
}

fn fcall_works(port: u16) -> Result<()> {
    let mut c = Client::connect(port, None)?;
    assert_eq!(c.ok(&[b"FCALL", b"bk_one", b"0"])?, Resp::Int(1));
    Ok(())
}

fn get_int(c: &mut Client, key: &[u8]) -> Result<Option<i64>> {
    match c.ok(&[b"GET", key])? {
        Resp::Bulk(Some(v)) => Ok(Some(String::from_utf8_lossy(&v).parse()?)),
        Resp::Bulk(None) => Ok(None),
        r => bail!("GET reply {r:?}"),
    }
}

/// A writer on db 5: `SET seq:<i> i`, `SET last i`, and every tenth step a MULTI
/// block `SET m:a i`, `SET m:b i`, `INCR m:n`; until `stop` or a bound.
fn writer(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Result<u64>> {
    std::thread::spawn(move || -> Result<u64> {
        let mut c = Client::connect(port, None)?;
        c.ok(&[b"SELECT", b"5"])?;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) && i < 2_000_000 {
            let s = i.to_string();
            let key = format!("seq:{i}");
            c.ok(&[b"SET", key.as_bytes(), s.as_bytes()])?;
            c.ok(&[b"SET", b"last", s.as_bytes()])?;
            if i.is_multiple_of(10) {
                let cmds: Vec<Vec<Vec<u8>>> = [
                    vec![b"MULTI".to_vec()],
                    vec![b"SET".to_vec(), b"m:a".to_vec(), s.clone().into_bytes()],
                    vec![b"SET".to_vec(), b"m:b".to_vec(), s.clone().into_bytes()],
                    vec![b"INCR".to_vec(), b"m:n".to_vec()],
                    vec![b"EXEC".to_vec()],
                ]
                .to_vec();
                for r in c.pipeline(&cmds)? {
                    if let Resp::Error(e) = r {
                        bail!("MULTI block: {}", String::from_utf8_lossy(&e));
                    }
                }
            }
            i += 1;
        }
        Ok(i)
    })
}

#[test]
fn a_backup_taken_while_clients_write_is_one_point_in_time() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let source = RedsnapServer::builder()
        .extra_args(&["--save", "", "--appendonly", "no"])
        .start()?;
    fill(source.port())?;
    // More keys, so the backup takes a while.
    let mut c = Client::connect(source.port(), None)?;
    c.ok(&[b"SELECT", b"3"])?;
    for chunk in 0..20 {
        let cmds: Vec<Vec<Vec<u8>>> = (0..1000)
            .map(|i| {
                let k = format!("bulk:{}", chunk * 1000 + i);
                vec![b"SET".to_vec(), k.into_bytes(), vec![b'v'; 100]]
            })
            .collect();
        c.pipeline(&cmds)?;
    }
    c.ok(&[b"SELECT", b"5"])?;
    let statics = fetch_dataset(source.port(), None, DBS)?;

    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(source.port(), stop.clone());
    let started = Instant::now();
    while get_int(&mut c, b"last")?.unwrap_or(-1) < 200 {
        if started.elapsed() > Duration::from_secs(60) || w.is_finished() {
            stop.store(true, Ordering::Relaxed);
            bail!("the writer did not get going: {:?}", w.join());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = get_int(&mut c, b"last")?.context("last")?;
    let dir = tmp.path().join("backups");
    let m = backup(&source.url(), &dir, &["--method", "sync"]);
    let after = get_int(&mut c, b"last")?.context("last")?;
    stop.store(true, Ordering::Relaxed);
    let written = w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let m = m?;
    assert_eq!(m["method"], "sync");
    assert_eq!(m["pointInTime"], true);
    assert_eq!(m["functions"], 1);
    assert!(written > after as u64);

    // Restore (the directory: its newest backup) into an empty redsnap.
    let target = RedsnapServer::start()?;
    let out = redsnap(&["restore", p(&dir), "--to", &target.url()])?;
    assert!(out.status.success(), "{}", text(&out));
    let restored = fetch_dataset(target.port(), None, DBS)?;
    fcall_works(target.port())?;
    assert_holds(&restored, &statics, "static data");

    // db 5: seq:0..=n (and perhaps seq:n+1, set before `last` moved), last == n,
    // the MULTI blocks whole.
    let int = |k: &str| -> Option<i64> {
        restored
            .get(&(5, k.as_bytes().to_vec()))
            .and_then(|s| String::from_utf8_lossy(s.value.first()?).parse().ok())
    };
    let n = int("last").context("no last in the backup")?;
    eprintln!("writer: {before} before the backup, {n} in it, {after} after");
    assert!(
        before <= n && n <= after,
        "last {n} outside the backup's window {before}..={after}"
    );
    let seqs: Vec<i64> = restored
        .keys()
        .filter(|(db, k)| *db == 5 && k.starts_with(b"seq:"))
        .map(|(_, k)| String::from_utf8_lossy(&k[4..]).parse().unwrap_or(-1))
        .collect();
    let top = seqs.iter().copied().max().unwrap_or(-1);
    assert!(top == n || top == n + 1, "seq keys up to {top}, last {n}");
    assert_eq!(seqs.len() as i64, top + 1, "gaps in seq:0..={top}");
    for i in 0..=top {
        assert_eq!(int(&format!("seq:{i}")), Some(i));
    }
    let (a, b, cnt) = (int("m:a"), int("m:b"), int("m:n"));
    assert_eq!(a, b, "a torn MULTI block");
    let a = a.context("m:a")?;
    assert_eq!(cnt, Some(a / 10 + 1), "a torn MULTI block");
    assert!(a <= top);
    // Nothing else in db 5.
    let others = restored
        .keys()
        .filter(|(db, k)| {
            *db == 5
                && !k.starts_with(b"seq:")
                && !matches!(&k[..], b"last" | b"m:a" | b"m:b" | b"m:n")
        })
        .count();
    assert_eq!(others, 0);
    Ok(())
}

#[test]
fn a_redsnap_backup_passes_redis_check_rdb_and_loads_into_redis() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let source = RedsnapServer::start()?;
    fill(source.port())?;
    let expected = fetch_dataset(source.port(), None, DBS)?;
    let file = tmp.path().join("out.rdb");
    let m = backup(&source.url(), &file, &[])?;
    assert_eq!(m["method"], "sync");
    assert_eq!(m["keys"], expected.len() as u64);
    assert_eq!(m["file"], "out.rdb");
    assert!(tmp.path().join("out.rdb.manifest.json").exists());
    let check = Command::new("redis-check-rdb").arg(&file).output()?;
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("RDB looks OK"), "{}", text(&check));

    let rdir = tmp.path().join("redis");
    std::fs::create_dir(&rdir)?;
    std::fs::copy(&file, rdir.join("dump.rdb"))?;
    let redis = RedisServer::builder()
        .dir(&rdir)
        .extra_args(&["--enable-debug-command", "yes"])
        .start()?;
    let loaded = fetch_dataset(redis.port(), None, DBS)?;
    assert_same(&loaded, &expected, "redis-server loading the backup");
    fcall_works(redis.port())?;
    // Both servers digest the dataset alike.
    let digest =
        |port: u16| -> Result<Resp> { Client::connect(port, None)?.ok(&[b"DEBUG", b"DIGEST"]) };
    assert_eq!(digest(redis.port())?, digest(source.port())?);
    Ok(())
}

fn refused_sync_sources() -> Result<Vec<(RedisServer, String, &'static str)>> {
    let base = [
        "--repl-diskless-sync-delay",
        "0",
        "--enable-debug-command",
        "yes",
    ];
    // A user without +sync +psync (a managed service's usual user).
    let mut acl: Vec<&str> = base.to_vec();
    acl.extend([
        "--user", "bk", "on", ">pw", "~*", "&*", "+@all", "-sync", "-psync",
    ]);
    let a = RedisServer::builder().extra_args(&acl).start()?;
    let a_url = format!("redis://bk:pw@127.0.0.1:{}", a.port());
    // SYNC and PSYNC renamed away.
    let mut ren: Vec<&str> = base.to_vec();
    ren.extend([
        "--rename-command",
        "SYNC",
        "",
        "--rename-command",
        "PSYNC",
        "",
    ]);
    let r = RedisServer::builder().extra_args(&ren).start()?;
    let r_url = r.url();
    Ok(vec![(a, a_url, "NOPERM"), (r, r_url, "unknown command")])
}

#[test]
fn a_redis_source_by_sync_and_by_scan_when_sync_is_refused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let redis = RedisServer::builder()
        .extra_args(&["--repl-diskless-sync-delay", "0"])
        .start()?;
    fill(redis.port())?;
    let expected = fetch_dataset(redis.port(), None, DBS)?;

    // SYNC: Redis's own RDB file (diskless, `$EOF:` form, as capa eof asks).
    let f = tmp.path().join("sync.rdb");
    let m = backup(&redis.url(), &f, &["--method", "sync"])?;
    assert_eq!(
        (&m["method"], &m["pointInTime"]),
        (&"sync".into(), &true.into())
    );
    assert_eq!(m["keys"], expected.len() as u64);
    let target = RedsnapServer::start()?;
    let out = redsnap(&["restore", p(&f), "--to", &target.url()])?;
    assert!(out.status.success(), "{}", text(&out));
    assert_same(&fetch_dataset(target.port(), None, DBS)?, &expected, "sync");
    fcall_works(target.port())?;

    // A stream (a type redsnap does not hold) is kept by both methods, counted in
    // the manifest, and loads into redis-server.
    let mut c = Client::connect(redis.port(), None)?;
    c.ok(&[b"XADD", b"events", b"*", b"f", b"v"])?;
    c.ok(&[b"XADD", b"events", b"*", b"f", b"w"])?;
    for method in ["sync", "scan"] {
        let f = tmp.path().join(format!("stream-{method}.rdb"));
        let m = backup(&redis.url(), &f, &["--method", method])?;
        assert_eq!(m["types"]["stream"], 1, "{method}");
        assert_eq!(m["keys"], expected.len() as u64 + 1, "{method}");
        let rdir = tmp.path().join(format!("stream-{method}"));
        std::fs::create_dir(&rdir)?;
        std::fs::copy(&f, rdir.join("dump.rdb"))?;
        let loaded = RedisServer::builder().dir(&rdir).start()?;
        let mut l = Client::connect(loaded.port(), None)?;
        assert_eq!(l.ok(&[b"XLEN", b"events"])?, Resp::Int(2), "{method}");
    }

    for (n, (src, url, why)) in refused_sync_sources()?.into_iter().enumerate() {
        fill(src.port())?;
        let expected = fetch_dataset(src.port(), None, DBS)?;
        // --method sync fails, naming the refusal.
        let f = tmp.path().join(format!("refused{n}.rdb"));
        let out = redsnap(&["backup", "--from", &url, "--to", p(&f), "--method", "sync"])?;
        assert!(!out.status.success(), "{}", text(&out));
        assert!(text(&out).contains(why), "{}", text(&out));
        assert!(!f.exists());
        // auto falls back to scan, and says so.
        let out = redsnap(&["backup", "--from", &url, "--to", p(&f), "--json"])?;
        assert!(out.status.success(), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused SYNC") && err.contains(why), "{err}");
        let m: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(m["method"], "scan");
        assert_eq!(m["pointInTime"], false);
        assert_eq!(m["keys"], expected.len() as u64);
        assert_eq!(m["functions"], 1);
        assert_eq!(m["rdbVersion"], 10);
        assert_eq!(m["source"].as_str().map(|s| s.contains("pw")), Some(false));
        let check = Command::new("redis-check-rdb").arg(&f).output()?;
        assert!(check.status.success(), "{}", text(&check));
        // Restored into redsnap, and loaded by redis-server.
        let target = RedsnapServer::start()?;
        let out = redsnap(&["restore", p(&f), "--to", &target.url()])?;
        assert!(out.status.success(), "{}", text(&out));
        assert_same(&fetch_dataset(target.port(), None, DBS)?, &expected, "scan");
        fcall_works(target.port())?;
        let rdir = tmp.path().join(format!("redis{n}"));
        std::fs::create_dir(&rdir)?;
        std::fs::copy(&f, rdir.join("dump.rdb"))?;
        let loaded = RedisServer::builder().dir(&rdir).start()?;
        assert_same(
            &fetch_dataset(loaded.port(), None, DBS)?,
            &expected,
            "scan into redis",
        );
    }
    Ok(())
}

fn names(dir: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

#[test]
fn keep_leaves_the_newest_pairs() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let source = RedsnapServer::start()?;
    let mut c = Client::connect(source.port(), None)?;
    let dir = tmp.path().join("backups");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("notes.txt"), b"not a backup")?;
    let mut files = Vec::new();
    for i in 0..4 {
        c.ok(&[b"SET", b"generation", i.to_string().as_bytes()])?;
        let m = backup(&source.url(), &dir, &["--keep", "2"])?;
        files.push(m["file"].as_str().unwrap_or("").to_string());
    }
    let mut want: Vec<String> = files[2..]
        .iter()
        .flat_map(|f| [f.clone(), format!("{f}.manifest.json")])
        .collect();
    want.push("notes.txt".into());
    want.sort();
    assert_eq!(names(&dir)?, want);

    let out = redsnap(&["inspect", p(&dir), "--json"])?;
    assert!(out.status.success(), "{}", text(&out));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(l["backups"].as_array().map(|a| a.len()), Some(2));
    assert_eq!(l["backups"][1]["manifest"]["file"], files[3].as_str());
    let out = redsnap(&["verify", p(&dir)])?;
    assert!(out.status.success(), "{}", text(&out));

    // The directory restores its newest backup.
    let target = RedsnapServer::start()?;
    let out = redsnap(&["restore", p(&dir), "--to", &target.url()])?;
    assert!(out.status.success(), "{}", text(&out));
    let mut t = Client::connect(target.port(), None)?;
    assert_eq!(get_int(&mut t, b"generation")?, Some(3));
    Ok(())
}

/// Recomputes the CRC-64 trailer after an edit, so only the structure can tell.
fn refoot(data: &mut [u8]) {
    let n = data.len();
    let crc = redsnap_persist::rdbfile::crc64::crc64(&data[..n - 8]);
    data[n - 8..].copy_from_slice(&crc.to_le_bytes());
}

fn find(data: &[u8], what: &[u8]) -> Result<usize> {
    data.windows(what.len())
        .position(|w| w == what)
        .with_context(|| format!("{:?} not in the backup", String::from_utf8_lossy(what)))
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
fn a_damaged_backup_is_named_and_never_restored() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    // A Redis source: its file has listpacks to damage.
    let redis = RedisServer::builder()
        .extra_args(&["--repl-diskless-sync-delay", "0"])
        .start()?;
    let mut c = Client::connect(redis.port(), None)?;
    fill_every_encoding(&mut c)?;
    let good_path = tmp.path().join("good.rdb");
    backup(&redis.url(), &good_path, &["--method", "sync"])?;
    let good = std::fs::read(&good_path)?;
    let manifest = std::fs::read_to_string(tmp.path().join("good.rdb.manifest.json"))?;
    let out = redsnap(&["verify", p(&good_path)])?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("match the manifest"), "{}", text(&out));

    let flip = |at: usize| {
        let mut d = good.clone();
        d[at] ^= 0x01;
        d
    };
    let mut cases: Vec<(&str, Vec<u8>, String, Vec<&str>)> = vec![
        (
            "header",
            flip(2),
            manifest.clone(),
            vec!["SHA-256", "not an RDB file"],
        ),
        (
            "value",
            flip(find(&good, b"hello")? + 1),
            manifest.clone(),
            vec!["SHA-256", "checksum", "byte offset"],
        ),
        (
            "crc",
            flip(good.len() - 3),
            manifest.clone(),
            vec!["SHA-256", "checksum", "byte offset"],
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            manifest.clone(),
            vec!["truncated", "byte offset", "bytes, but its manifest"],
        ),
    ];
    // A wrong entry length inside a listpack (h:small, type 16), CRC recomputed.
    let mut lp = good.clone();
    let entry = find(&good, b"\x10\x07h:small")? + 9 + 1 + 6;
    assert_eq!(lp[entry], 0x82, "the first entry is the 2-byte string f1");
    lp[entry] = 0x85;
    refoot(&mut lp);
    cases.push((
        "listpack",
        lp,
        manifest.clone(),
        vec![
            "SHA-256",
            "corrupt",
            "key \"h:small\"",
            "db 0",
            "byte offset",
        ],
    ));
    // The file intact, its manifest's SHA-256 another.
    let sha = serde_json::from_str::<serde_json::Value>(&manifest)?["sha256"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let other = format!(
        "{}{}",
        if sha.starts_with('0') { "1" } else { "0" },
        &sha[1..]
    );
    cases.push((
        "manifest",
        good.clone(),
        manifest.replace(&sha, &other),
        vec!["SHA-256", "differs", "manifest"],
    ));

    let server = RedsnapServer::start()?;
    for (name, data, mtext, expect) in cases {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir)?;
        // Named like a backup of a backup directory, with its manifest.
        let fname = "redsnap-backup-20260101T000000Z.rdb";
        let path = dir.join(fname);
        std::fs::write(&path, &data)?;
        let mtext = mtext.replace("\"good.rdb\"", &format!("\"{fname}\""));
        let mpath = dir.join(format!("{fname}.manifest.json"));
        std::fs::write(&mpath, mtext)?;
        // The file, its manifest, the directory: each names the damage.
        for arg in [&path, &mpath, &dir] {
            let out = redsnap(&["verify", p(arg)])?;
            assert!(
                !out.status.success(),
                "{name}: verify {arg:?} passed: {}",
                text(&out)
            );
            let msg = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(msg.contains(p(&path)), "{name}: {msg}");
            for e in &expect {
                assert!(msg.contains(e), "{name}: {e:?} not in {msg}");
            }
        }
        // restore writes nothing, into a server or a data directory, whether given
        // the file or the directory.
        for arg in [&path, &dir] {
            let out = redsnap(&["restore", p(arg), "--to", &server.url()])?;
            assert!(
                !out.status.success(),
                "{name}: restore passed: {}",
                text(&out)
            );
            assert!(
                text(&out).contains("nothing was written"),
                "{name}: {}",
                text(&out)
            );
            assert_eq!(total_keys(server.port())?, 0, "{name}: restore wrote keys");
        }
        let data_dir = tmp.path().join(format!("{name}-data"));
        let out = redsnap(&["restore", p(&path), "--to", p(&data_dir)])?;
        assert!(!out.status.success(), "{name}: restore to a dir passed");
        let created: Vec<PathBuf> = match std::fs::read_dir(&data_dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        };
        assert!(
            created.is_empty(),
            "{name}: restore to a dir wrote {created:?}"
        );
    }
    Ok(())
}
