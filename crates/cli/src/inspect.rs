//! `redsnap inspect FILE|DIR [--json]`: what an RDB file or a data directory holds.

use crate::restore::progress;
use anyhow::{bail, Context, Result};
use redsnap_engine::{EngineConfig, Store, Value};
use redsnap_persist::rdbfile::{show_key, type_name, Item, RdbReader, ReadOptions};
use redsnap_persist::{DataDir, LoadOptions, LogFileCheck, SnapshotMeta, SnapshotStore};
use serde::Serialize;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};

/// How many of the biggest keys are listed.
const BIGGEST: usize = 10;

#[derive(Debug, Default, Serialize)]
pub struct TypeStats {
    pub keys: u64,
    pub bytes: u64,
    pub elements: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct DbStats {
    pub keys: u64,
    pub expiring: u64,
    pub bytes: u64,
    pub types: BTreeMap<String, TypeStats>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BigKey {
    pub bytes: u64,
    pub db: u64,
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub elements: u64,
}

/// Keys by time left to live, at the time of inspection.
#[derive(Debug, Default, Serialize)]
pub struct TtlSpread {
    pub no_ttl: u64,
    pub expired: u64,
    pub under_1m: u64,
    pub under_1h: u64,
    pub under_1d: u64,
    pub under_1w: u64,
    pub over_1w: u64,
}

/// Keys per db and type, sizes (bytes as RDB-serialized), biggest keys, TTLs.
#[derive(Debug, Default, Serialize)]
pub struct DatasetStats {
    pub keys: u64,
    pub expiring: u64,
    pub bytes: u64,
    pub dbs: BTreeMap<u64, DbStats>,
    pub biggest: Vec<BigKey>,
    pub ttl: TtlSpread,
    #[serde(skip)]
    heap: BinaryHeap<std::cmp::Reverse<BigKey>>,
}

fn kind_and_len(v: &Value) -> (&'static str, u64) {
    match v {
        Value::Str(s) => ("string", s.len() as u64),
        Value::List(l) => ("list", l.len() as u64),
        Value::Set(s) => ("set", s.len() as u64),
        Value::Hash(h) => ("hash", h.len() as u64),
        Value::ZSet(z) => ("zset", z.len() as u64),
        Value::Stream(s) => ("stream", s.len()),
        // A document's length is its compact JSON text's.
        Value::Json(j) => ("ReJSON-RL", j.to_json().len() as u64),
    }
}

impl DatasetStats {
    pub fn add(
        &mut self,
        db: u64,
        key: &[u8],
        v: &Value,
        expire_ms: Option<u64>,
        bytes: u64,
        now: u64,
    ) {
        let (kind, elements) = kind_and_len(v);
        self.keys += 1;
        self.bytes += bytes;
        let d = self.dbs.entry(db).or_default();
        d.keys += 1;
        d.bytes += bytes;
        let t = d.types.entry(kind.to_string()).or_default();
        t.keys += 1;
        t.bytes += bytes;
        t.elements += elements;
        match expire_ms {
            None => self.ttl.no_ttl += 1,
            Some(at) => {
                self.expiring += 1;
                d.expiring += 1;
                let left = at.saturating_sub(now);
                let s = &mut self.ttl;
                match left {
                    0 => s.expired += 1,
                    l if l < 60_000 => s.under_1m += 1,
                    l if l < 3_600_000 => s.under_1h += 1,
                    l if l < 86_400_000 => s.under_1d += 1,
                    l if l < 7 * 86_400_000 => s.under_1w += 1,
                    _ => s.over_1w += 1,
                }
            }
        }
        let small_enough =
            self.heap.len() >= BIGGEST && self.heap.peek().is_some_and(|m| m.0.bytes >= bytes);
        if !small_enough {
            self.heap.push(std::cmp::Reverse(BigKey {
                bytes,
                db,
                key: show_key(key),
                kind: kind.to_string(),
                elements,
            }));
            if self.heap.len() > BIGGEST {
                self.heap.pop();
            }
        }
    }

    fn finish(&mut self) {
        let mut v: Vec<BigKey> = std::mem::take(&mut self.heap)
            .into_iter()
            .map(|r| r.0)
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        self.biggest = v;
    }
}

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub file: PathBuf,
    pub size: u64,
    pub rdb_version: u32,
    pub aux: BTreeMap<String, String>,
    /// "verified", "disabled" (a zero trailer) or "none" (versions before 5).
    pub checksum: String,
    pub functions: u64,
    pub skipped_unsupported: u64,
    pub skipped_empty: u64,
    /// Keys by the encoding they were stored in.
    pub encodings: BTreeMap<String, u64>,
    pub dataset: DatasetStats,
}

pub fn inspect_file(path: &Path) -> Result<FileReport> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let opts = ReadOptions {
        skip_unsupported: true,
        ..Default::default()
    };
    let mut r = RdbReader::new(f, opts).with_context(|| path.display().to_string())?;
    let pb = progress(size, "reading");
    let now = redsnap_engine::now_ms();
    let mut ds = DatasetStats::default();
    let mut aux = BTreeMap::new();
    let mut encodings: BTreeMap<String, u64> = BTreeMap::new();
    let mut n = 0u64;
    while let Some(item) = r.next_item().with_context(|| path.display().to_string())? {
        match item {
            Item::Aux { key, value } => {
                aux.insert(
                    String::from_utf8_lossy(&key).into_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                );
            }
            Item::Key(k) => {
                *encodings
                    .entry(type_name(k.rdb_type).to_string())
                    .or_default() += 1;
                ds.add(k.db, &k.key, &k.value, k.expire_ms, k.size, now);
            }
            _ => {}
        }
        n += 1;
        if n.is_multiple_of(1024) {
            pb.set_position(r.offset());
        }
    }
    pb.finish_and_clear();
    ds.finish();
    let s = r.summary();
    let checksum = match s.stored_checksum {
        None => "none (RDB version before 5)".to_string(),
        Some(0) => "disabled (zero trailer)".to_string(),
        Some(c) => format!("verified ({c:016x})"),
    };
    Ok(FileReport {
        file: path.to_path_buf(),
        size,
        rdb_version: s.version,
        aux,
        checksum,
        functions: s.functions,
        skipped_unsupported: s.skipped_unsupported,
        skipped_empty: s.skipped_empty,
        encodings,
        dataset: ds,
    })
}

/// A UTC time, ISO 8601, from ms since the epoch.
pub fn iso_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    pub id: u64,
    pub format_version: u32,
    pub created_ms: u64,
    pub created: String,
    /// Log generations it covers (replay starts after this one).
    pub log_gen: u64,
    pub keys: u64,
}

#[derive(Debug, Serialize)]
pub struct LogReport {
    pub generation: u64,
    pub file: PathBuf,
    pub bytes: u64,
    pub modified: Option<String>,
    pub frames: u64,
    pub records: u64,
    /// Covered by the snapshot (a leftover the next start deletes).
    pub covered: bool,
    pub damage: Option<String>,
    pub torn_tail: bool,
}

/// What a data directory holds, read without changing it.
pub struct DirScan {
    pub snapshot: Option<SnapshotMeta>,
    pub snapshot_error: Option<String>,
    pub logs: Vec<(LogFileCheck, bool, Option<u64>)>,
    pub missing_generation: Option<String>,
    pub store: Store,
}

fn modified_ms(p: &Path) -> Option<u64> {
    let t = std::fs::metadata(p).ok()?.modified().ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// Opens (locks) a data directory and checks it: the snapshot loaded with every
/// entry's checksum verified, the log generations after it read frame by frame
/// (replayed into the copy when `replay`). Damage is reported, not fatal.
pub fn scan_dir(path: &Path, databases: usize, replay: bool) -> Result<DirScan> {
    if !path.is_dir() {
        bail!("{}: no such directory", path.display());
    }
    let dir = DataDir::open(path).with_context(|| path.display().to_string())?;
    let snaps = SnapshotStore::open(&dir).with_context(|| path.display().to_string())?;
    let mut store = Store::new(EngineConfig {
        databases,
        ..EngineConfig::default()
    });
    store.log_enabled = false;
    let opts = LoadOptions {
        load_truncated: false,
        ignore_corruption: false,
    };
    let (snapshot, snapshot_error) = match snaps.load(&mut store, &opts) {
        Ok(rep) => (rep.meta, None),
        Err(e) => (snaps.current().ok().flatten(), Some(e.to_string())),
    };
    let covered = snapshot.as_ref().map_or(0, |m| m.log_gen);
    let gens = redsnap_persist::aof::list_generations(dir.path())?;
    let todo: Vec<u64> = gens
        .iter()
        .map(|(g, _)| *g)
        .filter(|g| *g > covered)
        .collect();
    let missing_generation = (covered + 1..)
        .zip(todo.iter())
        .find(|(want, g)| *want != **g)
        .map(|(want, _)| {
            format!(
                "append log generation {want} is missing in {} (the snapshot covers up to {covered}; found {todo:?})",
                path.display()
            )
        });
    let last = gens.last().map(|(g, _)| *g);
    let mut logs = Vec::new();
    for (g, p) in &gens {
        let is_covered = *g <= covered;
        let replaying = replay && !is_covered && missing_generation.is_none();
        let check = redsnap_persist::check_log_file(p, *g, Some(*g) == last, |recs| {
            if !replaying {
                return;
            }
            for rec in recs {
                if rec.db < store.dbs.len() {
                    let _ = store.exec(rec.db, rec.time, &rec.argv);
                }
            }
            store.effects.clear_touched();
        })?;
        logs.push((check, is_covered, modified_ms(p)));
    }
    Ok(DirScan {
        snapshot,
        snapshot_error,
        logs,
        missing_generation,
        store,
    })
}

#[derive(Debug, Serialize)]
pub struct DirReport {
    pub dir: PathBuf,
    pub snapshot: Option<SnapshotReport>,
    pub snapshot_error: Option<String>,
    pub logs: Vec<LogReport>,
    pub missing_generation: Option<String>,
    /// The dataset a start would load: the snapshot and the log replayed.
    pub dataset: DatasetStats,
}

pub fn log_reports(scan: &DirScan) -> Vec<LogReport> {
    scan.logs
        .iter()
        .map(|(c, covered, modified)| LogReport {
            generation: c.gen,
            file: c.path.clone(),
            bytes: c.len,
            modified: modified.map(iso_time),
            frames: c.frames,
            records: c.records,
            covered: *covered,
            damage: c
                .damage
                .as_ref()
                .map(|d| format!("byte offset {}: {}", d.offset, d.detail)),
            torn_tail: c.damage.as_ref().is_some_and(|d| d.torn_tail),
        })
        .collect()
}

pub fn snapshot_report(m: &SnapshotMeta) -> SnapshotReport {
    SnapshotReport {
        id: m.id,
        format_version: m.format_version,
        created_ms: m.created_ms,
        created: iso_time(m.created_ms),
        log_gen: m.log_gen,
        keys: m.keys,
    }
}

pub fn inspect_dir(path: &Path, databases: usize) -> Result<DirReport> {
    let scan = scan_dir(path, databases, true)?;
    let now = redsnap_engine::now_ms();
    let mut ds = DatasetStats::default();
    let mut buf = Vec::new();
    for (i, db) in scan.store.dbs.iter().enumerate() {
        for (k, e) in db.iter() {
            buf.clear();
            redsnap_engine::rdb::write_value(&mut buf, e.value());
            ds.add(
                i as u64,
                k.as_bytes(),
                e.value(),
                e.expire_at(),
                buf.len() as u64,
                now,
            );
        }
    }
    ds.finish();
    Ok(DirReport {
        dir: path.to_path_buf(),
        snapshot: scan.snapshot.as_ref().map(snapshot_report),
        snapshot_error: scan.snapshot_error.clone(),
        logs: log_reports(&scan),
        missing_generation: scan.missing_generation.clone(),
        dataset: ds,
    })
}

fn print_dataset(ds: &DatasetStats) {
    println!(
        "keys: {} ({} with a TTL), {} bytes serialized",
        ds.keys, ds.expiring, ds.bytes
    );
    for (db, d) in &ds.dbs {
        let types: Vec<String> = d
            .types
            .iter()
            .map(|(t, s)| {
                format!(
                    "{t} {} ({} elements, {} bytes)",
                    s.keys, s.elements, s.bytes
                )
            })
            .collect();
        println!(
            "  db{db}: keys={} expires={} bytes={}: {}",
            d.keys,
            d.expiring,
            d.bytes,
            types.join(", ")
        );
    }
    let t = &ds.ttl;
    println!(
        "TTLs: none {}, expired {}, <1m {}, <1h {}, <1d {}, <1w {}, >=1w {}",
        t.no_ttl, t.expired, t.under_1m, t.under_1h, t.under_1d, t.under_1w, t.over_1w
    );
    if !ds.biggest.is_empty() {
        println!("biggest keys:");
        for b in &ds.biggest {
            println!(
                "  db{} {} {} {} bytes, {} elements",
                b.db, b.key, b.kind, b.bytes, b.elements
            );
        }
    }
}

/// One backup of a backup directory.
#[derive(Debug, Serialize)]
pub struct BackupInfo {
    pub file: PathBuf,
    pub bytes: u64,
    pub manifest: Option<crate::manifest::Manifest>,
    /// Why the manifest is missing or unreadable.
    pub manifest_error: Option<String>,
}

/// The backups of a backup directory, oldest first.
#[derive(Debug, Serialize)]
pub struct BackupListing {
    pub dir: PathBuf,
    pub backups: Vec<BackupInfo>,
    pub stray_manifests: Vec<PathBuf>,
}

pub fn inspect_backup_dir(dir: &Path) -> Result<BackupListing> {
    let (entries, stray) = crate::manifest::list_backups(dir)?;
    let backups = entries
        .into_iter()
        .map(|e| {
            let bytes = std::fs::metadata(&e.rdb).map(|m| m.len()).unwrap_or(0);
            let (manifest, manifest_error) = match &e.manifest {
                None => (None, Some("no manifest".to_string())),
                Some(m) => match crate::manifest::load(m) {
                    Ok(m) => (Some(m), None),
                    Err(err) => (None, Some(format!("{err:#}"))),
                },
            };
            BackupInfo {
                file: e.rdb,
                bytes,
                manifest,
                manifest_error,
            }
        })
        .collect();
    Ok(BackupListing {
        dir: dir.to_path_buf(),
        backups,
        stray_manifests: stray,
    })
}

fn print_backups(l: &BackupListing) {
    println!(
        "backup directory {}: {} backups (oldest first)",
        l.dir.display(),
        l.backups.len()
    );
    for b in &l.backups {
        let name = b
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match &b.manifest {
            Some(m) => println!(
                "  {name}: {} bytes, {} keys in {} databases, {} function libraries, RDB version {}, {} ({}) from {}, {} to {}",
                b.bytes,
                m.keys,
                m.databases.len(),
                m.functions,
                m.rdb_version,
                m.method,
                if m.point_in_time { "point in time" } else { "not point in time" },
                m.source,
                m.started,
                m.finished
            ),
            None => println!(
                "  {name}: {} bytes, {}",
                b.bytes,
                b.manifest_error.as_deref().unwrap_or("no manifest")
            ),
        }
    }
    for s in &l.stray_manifests {
        println!("  {}: a manifest without its backup file", s.display());
    }
}

pub fn run(target: &Path, json: bool, databases: usize) -> Result<()> {
    if target.is_dir() && crate::manifest::is_backup_dir(target) {
        let l = inspect_backup_dir(target)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&l)?);
        } else {
            print_backups(&l);
        }
        return Ok(());
    }
    if target.is_dir() {
        let r = inspect_dir(target, databases)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        println!("data directory {}", r.dir.display());
        match &r.snapshot {
            Some(s) => println!(
                "snapshot {} (format {}): {} keys, taken {}, covers log generations <= {}",
                s.id, s.format_version, s.keys, s.created, s.log_gen
            ),
            None => println!("no snapshot"),
        }
        if let Some(e) = &r.snapshot_error {
            println!("snapshot DAMAGED: {e}");
        }
        for l in &r.logs {
            println!(
                "log generation {}: {} ({} bytes, modified {}): {} frames, {} records{}{}",
                l.generation,
                l.file.display(),
                l.bytes,
                l.modified.as_deref().unwrap_or("?"),
                l.frames,
                l.records,
                if l.covered {
                    ", covered by the snapshot"
                } else {
                    ""
                },
                l.damage
                    .as_ref()
                    .map(|d| format!(", DAMAGED at {d}"))
                    .unwrap_or_default()
            );
        }
        if let Some(m) = &r.missing_generation {
            println!("{m}");
        }
        print_dataset(&r.dataset);
    } else {
        let r = inspect_file(target)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        println!(
            "{}: RDB version {}, {} bytes, checksum {}",
            r.file.display(),
            r.rdb_version,
            r.size,
            r.checksum
        );
        for (k, v) in &r.aux {
            println!("  aux {k} = {v}");
        }
        if r.functions > 0 {
            println!("function libraries: {}", r.functions);
        }
        if r.skipped_unsupported + r.skipped_empty > 0 {
            println!(
                "not loadable: {} of unsupported types, {} empty collections",
                r.skipped_unsupported, r.skipped_empty
            );
        }
        let enc: Vec<String> = r
            .encodings
            .iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect();
        println!("encodings: {}", enc.join(", "));
        print_dataset(&r.dataset);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso_time(4_102_444_799_000), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn biggest_keys_are_kept_in_order() {
        let mut ds = DatasetStats::default();
        for i in 0..50u64 {
            let v = Value::Str(bytes::Bytes::from(vec![0u8; i as usize]));
            ds.add(0, format!("k{i}").as_bytes(), &v, None, i * 10, 0);
        }
        ds.finish();
        let sizes: Vec<u64> = ds.biggest.iter().map(|b| b.bytes).collect();
        assert_eq!(sizes, (40..50).rev().map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(ds.keys, 50);
        assert_eq!(ds.dbs[&0].types["string"].elements, (0..50).sum::<u64>());
    }
}
