//! Measures the two candidate embedded stores (fjall, redb) on the snapshot workload:
//! write 1,000,000 keys with 100-byte random values in key order into a fresh
//! keyspace/table and make it durable, then read everything back in order.
//! Also measures the chosen implementation end to end (`SnapshotStore::write`/`load`).
//!
//! Run: `cargo run --release -p redsnap-persist --example store_bench [N]`

use redb::{ReadableDatabase as _, ReadableTable as _};
use std::path::Path;
use std::time::Instant;

fn rand_bytes(state: &mut u64, out: &mut [u8]) {
    for b in out.iter_mut() {
        // xorshift64*
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        *b = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
    }
}

/// Keys as the snapshot writes them: db (2 bytes) + hash (8 bytes, big endian) + key;
/// values: a 13-byte entry header + 100 random bytes.
fn dataset(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut v: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| {
            let key = format!("key:{i:012}");
            let h = redsnap_engine::KeyHasher::with_seed(1).hash(key.as_bytes());
            let mut k = Vec::with_capacity(10 + key.len());
            k.extend_from_slice(&0u16.to_be_bytes());
            k.extend_from_slice(&h.to_be_bytes());
            k.extend_from_slice(key.as_bytes());
            let mut val = vec![0u8; 113];
            rand_bytes(&mut s, &mut val);
            (k, val)
        })
        .collect();
    v.sort();
    v
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                total += dir_size(&e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

fn bench_fjall(data: &[(Vec<u8>, Vec<u8>)], dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let path = dir.join("fjall");
    let t = Instant::now();
    let db = fjall::Database::builder(&path).worker_threads(1).open()?;
    let ks = db.keyspace("snap-1", fjall::KeyspaceCreateOptions::default)?;
    let mut ing = ks.start_ingestion()?;
    for (k, v) in data {
        ing.write(k.as_slice(), v.as_slice())?;
    }
    ing.finish()?;
    let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default)?;
    meta.insert("current", "1")?;
    db.persist(fjall::PersistMode::SyncAll)?;
    let w = t.elapsed();
    drop(ks);
    drop(meta);
    drop(db);
    let size = dir_size(&path);

    let t = Instant::now();
    let db = fjall::Database::builder(&path).worker_threads(1).open()?;
    let ks = db.keyspace("snap-1", fjall::KeyspaceCreateOptions::default)?;
    let mut n = 0usize;
    let mut bytes = 0usize;
    for g in ks.iter() {
        let (k, v) = g.into_inner()?;
        n += 1;
        bytes += k.len() + v.len();
    }
    let r = t.elapsed();
    println!(
        "fjall (ingestion, lz4 blocks): write+sync {:.3}s  read {:.3}s  ({n} keys, {bytes} bytes read)  on disk {:.1} MB",
        w.as_secs_f64(),
        r.as_secs_f64(),
        size as f64 / 1e6
    );
    Ok(())
}

fn bench_fjall_inserts(
    data: &[(Vec<u8>, Vec<u8>)],
    dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = dir.join("fjall-inserts");
    let t = Instant::now();
    let db = fjall::Database::builder(&path)
        .worker_threads(1)
        .manual_journal_persist(true)
        .open()?;
    let ks = db.keyspace("snap-1", fjall::KeyspaceCreateOptions::default)?;
    for chunk in data.chunks(10_000) {
        let mut b = db.batch();
        for (k, v) in chunk {
            b.insert(&ks, k.as_slice(), v.as_slice());
        }
        b.commit()?;
    }
    db.persist(fjall::PersistMode::SyncAll)?;
    let w = t.elapsed();
    println!(
        "fjall (write batches via journal): write+sync {:.3}s",
        w.as_secs_f64()
    );
    Ok(())
}

const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("snap-1");

fn bench_redb(data: &[(Vec<u8>, Vec<u8>)], dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let path = dir.join("snap.redb");
    let t = Instant::now();
    let db = redb::Database::create(&path)?;
    let tx = db.begin_write()?;
    {
        let mut table = tx.open_table(TABLE)?;
        for (k, v) in data {
            table.insert(k.as_slice(), v.as_slice())?;
        }
    }
    tx.commit()?;
    let w = t.elapsed();
    drop(db);
    let size = std::fs::metadata(&path)?.len();

    let t = Instant::now();
    let db = redb::Database::open(&path)?;
    let tx = db.begin_read()?;
    let table = tx.open_table(TABLE)?;
    let mut n = 0usize;
    let mut bytes = 0usize;
    for item in table.iter()? {
        let (k, v) = item?;
        n += 1;
        bytes += k.value().len() + v.value().len();
    }
    let r = t.elapsed();
    println!(
        "redb (one write transaction): write+commit {:.3}s  read {:.3}s  ({n} keys, {bytes} bytes read)  on disk {:.1} MB",
        w.as_secs_f64(),
        r.as_secs_f64(),
        size as f64 / 1e6
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "all".into());
    let base = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("store_bench")
        .tempdir_in(base)?;
    println!(
        "dataset: {n} keys, 100-byte random values, dir {}",
        dir.path().display()
    );
    let t = Instant::now();
    let data = dataset(n);
    println!("generated in {:.2}s", t.elapsed().as_secs_f64());
    if which == "all" || which == "fjall" {
        bench_fjall(&data, dir.path())?;
        bench_fjall_inserts(&data, dir.path())?;
    }
    if which == "all" || which == "redb" {
        bench_redb(&data, dir.path())?;
    }
    drop(data);
    if which == "all" || which == "persist" {
        bench_persist(n, dir.path())?;
    }
    if which == "all" || which == "log" {
        bench_log(dir.path())?;
    }
    Ok(())
}

fn bench_persist(n: usize, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use bytes::Bytes;
    use redsnap_engine::{Store, Value};
    use redsnap_persist::{DataDir, LoadOptions, SnapshotStore};
    let mut store = Store::default();
    let mut s = 7u64;
    for i in 0..n {
        let mut v = vec![0u8; 100];
        rand_bytes(&mut s, &mut v);
        store.dbs[0].insert(
            Bytes::from(format!("key:{i:012}")),
            Value::Str(Bytes::from(v)),
            None,
        );
    }
    // Where the time goes: walking the clone and encoding alone, and inserting into
    // the engine's maps alone.
    let t = Instant::now();
    let (mut key, mut val, mut total) = (Vec::new(), Vec::new(), 0usize);
    for (h, k, e) in store.dbs[0].iter_hashed() {
        redsnap_persist::codec::entry_key(&mut key, 0, h, k);
        redsnap_persist::codec::encode_entry(&mut val, &key, e.value(), e.expire_at());
        total += key.len() + val.len();
    }
    println!(
        "  walk + encode only: {:.3}s ({total} bytes)",
        t.elapsed().as_secs_f64()
    );
    let entries: Vec<(Bytes, Value)> = store.dbs[0]
        .iter()
        .map(|(k, e)| (k.to_bytes(), e.value().clone()))
        .collect();
    let t = Instant::now();
    let mut db = redsnap_engine::Db::new();
    for (k, v) in entries {
        db.insert(k, v, None);
    }
    println!(
        "  engine Db::insert of 1M entries only: {:.3}s",
        t.elapsed().as_secs_f64()
    );
    drop(db);
    let dd = DataDir::open(dir.join("persist"))?;
    let snaps = SnapshotStore::open(&dd)?;
    snaps.set_incremental(true);
    let t = Instant::now();
    let info = snaps.write(store.snapshot_point(true), 1)?;
    let w = t.elapsed();
    // 1% of keys changed, then a second (full) snapshot for comparison.
    for i in (0..n).step_by(100) {
        store.dbs[0].insert(
            Bytes::from(format!("key:{i:012}")),
            Value::Str(Bytes::from_static(b"changed")),
            None,
        );
    }
    let t = Instant::now();
    let info2 = snaps.write(store.snapshot_point(true), 2)?;
    let w2 = t.elapsed();
    let mut fresh = Store::default();
    let t = Instant::now();
    let rep = snaps.load(&mut fresh, &LoadOptions::default())?;
    let r = t.elapsed();
    println!(
        "redsnap-persist SnapshotStore: full write {:.3}s ({} keys, {:.1} MB on disk); after 1% changed: incremental={} write {:.3}s ({} entries written) = {:.1}% of full; load {:.3}s ({} keys)",
        w.as_secs_f64(),
        info.keys,
        info.size_bytes as f64 / 1e6,
        info2.incremental,
        w2.as_secs_f64(),
        info2.changed,
        100.0 * w2.as_secs_f64() / w.as_secs_f64(),
        r.as_secs_f64(),
        rep.keys_loaded
    );
    // A full snapshot of the same state, for comparison.
    snaps.set_incremental(false);
    let t = Instant::now();
    let info3 = snaps.write(store.snapshot(), 3)?;
    println!(
        "redsnap-persist SnapshotStore: full write of the changed state {:.3}s ({:.1} MB)",
        t.elapsed().as_secs_f64(),
        info3.size_bytes as f64 / 1e6
    );
    Ok(())
}

/// Append throughput: single-record batches (`SET key:N <100 bytes>`), one writer
/// under `no` and `everysec`; 16 writers each waiting for durability under `always`
/// (group commit).
fn bench_log(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use bytes::Bytes;
    use redsnap_engine::LogRecord;
    use redsnap_persist::{AppendLog, DataDir, FsyncPolicy};
    let value = Bytes::from(vec![b'x'; 100]);
    let rec = move |i: u64| LogRecord {
        db: 0,
        time: 0,
        argv: vec![
            Bytes::from_static(b"SET"),
            Bytes::from(format!("key:{i:012}")),
            value.clone(),
        ],
    };
    for policy in [FsyncPolicy::No, FsyncPolicy::EverySec] {
        let dd = DataDir::open(dir.join(format!("log-{}", policy.name())))?;
        let log = AppendLog::open(&dd, policy, 1)?;
        let n = 200_000u64;
        let t = Instant::now();
        for i in 0..n {
            log.append(&[rec(i)])?;
        }
        let el = t.elapsed().as_secs_f64();
        println!(
            "append log {}: {n} appends in {el:.3}s = {:.0}/s",
            policy.name(),
            n as f64 / el
        );
    }
    let dd = DataDir::open(dir.join("log-always"))?;
    let log = AppendLog::open(&dd, FsyncPolicy::Always, 1)?;
    let t = Instant::now();
    let threads: Vec<_> = (0..16u64)
        .map(|w| {
            let log = log.clone();
            let rec = rec.clone();
            std::thread::spawn(move || -> Result<u64, redsnap_persist::PersistError> {
                let mut n = 0;
                let t = Instant::now();
                while t.elapsed() < std::time::Duration::from_secs(2) {
                    let seq = log.append(&[rec(w * 1_000_000 + n)])?;
                    log.wait_durable(seq)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for h in threads {
        total += h.join().map_err(|_| "writer panicked")??;
    }
    let el = t.elapsed().as_secs_f64();
    let st = log.stats();
    println!(
        "append log always, 16 writers: {total} durable appends in {el:.2}s = {:.0}/s with {} fsyncs ({:.1} appends per fsync)",
        total as f64 / el,
        st.fsyncs,
        total as f64 / st.fsyncs.max(1) as f64
    );
    Ok(())
}
