#![allow(dead_code)]
//! Helpers shared by the integration tests.

pub mod durable;

use bytes::Bytes;
use redsnap_engine::{Reply, Store, Value, ZSet};
use redsnap_persist::{
    recover, AppendLog, DataDir, FsyncPolicy, LoadOptions, RecoveryReport, SnapshotStore,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn now() -> u64 {
    redsnap_engine::now_ms()
}

/// Every value type, with and without TTLs, in all 16 databases.
pub fn populate(store: &mut Store) {
    let t = now();
    for db in 0..16usize {
        let d = &mut store.dbs[db];
        d.insert(
            b(&format!("str:{db}")),
            Value::Str(b(&format!("value in db {db}"))),
            None,
        );
        d.insert(
            b("bin"),
            Value::Str(Bytes::from(vec![0u8, 255, 13, 10, db as u8])),
            Some(t + 3_600_000),
        );
        d.insert(b("empty"), Value::Str(Bytes::new()), None);
        d.insert(
            b("list"),
            Value::List(vec![b("a"), b(""), b(&"x".repeat(300)), b("a")].into()),
            Some(t + 60_000 + db as u64),
        );
        d.insert(
            b("hash"),
            Value::Hash(Box::new(redsnap_engine::value::Hash::from([
                ("f1".into(), "v1".into()),
                ("f2".into(), "".into()),
            ]))),
            None,
        );
        d.insert(
            b("set"),
            Value::Set(Box::new(redsnap_engine::value::Set::from([
                "m1".into(),
                "m2".into(),
                "m3".into(),
            ]))),
            Some(t + 7_200_000),
        );
        let mut z = ZSet::new();
        z.insert(b("one"), 1.0);
        z.insert(b("neg"), -2.5);
        z.insert(b("inf"), f64::INFINITY);
        z.insert(b("tiny"), 1e-300);
        d.insert(b("zset"), Value::ZSet(Box::new(z)), None);
        for i in 0..20 {
            d.insert(b(&format!("k{i}")), Value::Str(b(&i.to_string())), None);
        }
    }
}

/// The store's contents, comparable.
pub fn dump(store: &Store) -> BTreeMap<(usize, Bytes), (Value, Option<u64>)> {
    let mut m = BTreeMap::new();
    for (i, d) in store.dbs.iter().enumerate() {
        for (k, e) in d.iter() {
            m.insert((i, k.to_bytes()), (e.value().clone(), e.expire_at()));
        }
    }
    m
}

pub fn exec(store: &mut Store, db: usize, args: &[&str]) -> Reply {
    let argv: Vec<Bytes> = args.iter().map(|a| b(a)).collect();
    store.exec(db, now(), &argv)
}

/// Runs a command that must succeed.
pub fn ok(store: &mut Store, db: usize, args: &[&str]) -> Reply {
    let r = exec(store, db, args);
    assert!(!matches!(r, Reply::Error(_)), "{args:?} failed: {r:?}");
    r
}

pub struct Opened {
    pub dir: DataDir,
    pub snaps: SnapshotStore,
    pub store: Store,
    pub report: RecoveryReport,
}

/// Opens a data directory and recovers it into a fresh store.
pub fn reopen(path: &Path, opts: &LoadOptions) -> redsnap_persist::Result<Opened> {
    let dir = DataDir::open(path)?;
    let snaps = SnapshotStore::open(&dir)?;
    let mut store = Store::default();
    let report = recover(&dir, &snaps, &mut store, opts)?;
    Ok(Opened {
        dir,
        snaps,
        store,
        report,
    })
}

pub fn open_log(o: &Opened, policy: FsyncPolicy) -> AppendLog {
    AppendLog::open(&o.dir, policy, o.report.next_gen).expect("open log")
}

/// Appends and clears the records the store produced.
pub fn flush_effects(store: &mut Store, log: &AppendLog) -> u64 {
    let recs = std::mem::take(&mut store.effects.log);
    log.append(&recs).expect("append")
}

/// Captures tracing output (on this thread) while running `f`.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8_lossy(&buf.0.lock().expect("lock")).into_owned();
    (out, text)
}

/// Flips one byte of a file.
pub fn flip_byte(path: &Path, offset: u64) {
    let mut data = std::fs::read(path).expect("read");
    data[offset as usize] ^= 0xff;
    std::fs::write(path, data).expect("write");
}

/// The largest file under `dir` (recursively).
pub fn largest_file(dir: &Path) -> std::path::PathBuf {
    fn walk(d: &Path, best: &mut Option<(u64, std::path::PathBuf)>) {
        for e in std::fs::read_dir(d).expect("read_dir").flatten() {
            let p = e.path();
            let md = e.metadata().expect("metadata");
            if md.is_dir() {
                walk(&p, best);
            } else if best.as_ref().is_none_or(|(s, _)| md.len() > *s) {
                *best = Some((md.len(), p));
            }
        }
    }
    let mut best = None;
    walk(dir, &mut best);
    best.expect("a file").1
}
