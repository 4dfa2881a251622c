//! The JSON manifest beside each backup (`FILE.manifest.json`), the backup
//! directory's layout (`redsnap-backup-20261205T041900Z.rdb` and its manifest), and
//! the checks `verify` and `restore` make with them: the file's size and SHA-256
//! against the manifest, then the RDB's own structure and CRC-64.

use anyhow::{bail, Context, Result};
use redsnap_engine::Value;
use redsnap_persist::rdbfile::{Item, RdbReader, ReadOptions, SkipReason};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What a manifest's name adds to its RDB file's name.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// How backups in a directory are named: this, a UTC time, `.rdb`.
pub const BACKUP_PREFIX: &str = "redsnap-backup-";
/// The manifest format this redsnap writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// Keys of one database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbCounts {
    pub keys: u64,
    pub expiring_keys: u64,
    /// Keys per type, by the name TYPE gives (`string`, `list`, ..., `stream`).
    pub types: BTreeMap<String, u64>,
}

/// What a backup holds and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub manifest_format: u32,
    pub redsnap_version: String,
    /// The source's URL, without its password.
    pub source: String,
    /// `sync` (the replication handshake) or `scan` (SCAN + DUMP + PTTL).
    pub method: String,
    /// Whether the file is one consistent point in time of the source (`sync`).
    pub point_in_time: bool,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
    /// The RDB file's name, in the manifest's directory.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub rdb_version: u32,
    pub keys: u64,
    pub expiring_keys: u64,
    pub functions: u64,
    /// Keys per type over every database.
    pub types: BTreeMap<String, u64>,
    /// Per database (by number) that holds keys.
    pub databases: BTreeMap<u64, DbCounts>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The manifest's path for an RDB file: the file's name and `.manifest.json`.
pub fn manifest_path(rdb: &Path) -> PathBuf {
    let mut s = rdb.as_os_str().to_os_string();
    s.push(MANIFEST_SUFFIX);
    PathBuf::from(s)
}

pub fn is_manifest(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(MANIFEST_SUFFIX))
}

pub fn load(path: &Path) -> Result<Manifest> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a backup manifest", path.display()))
}

/// The RDB file a manifest describes (its `file`, in the manifest's directory).
pub fn rdb_of(manifest_file: &Path, m: &Manifest) -> Result<PathBuf> {
    let name = Path::new(&m.file);
    if name.components().count() != 1 || name.is_absolute() {
        bail!(
            "{}: the manifest names the file {:?}, which is not a file name",
            manifest_file.display(),
            m.file
        );
    }
    Ok(manifest_file.parent().unwrap_or(Path::new(".")).join(name))
}

/// A UTC time as RFC 3339 with milliseconds, from ms since the epoch.
pub fn rfc3339_ms(ms: u64) -> String {
    let s = crate::inspect::iso_time(ms);
    // "YYYY-MM-DDTHH:MM:SSZ" -> "...SS.mmmZ"
    format!("{}.{:03}Z", s.trim_end_matches('Z'), ms % 1000)
}

/// The name of a backup taken at `ms`: `redsnap-backup-20261205T041900Z.rdb`.
pub fn backup_name(ms: u64) -> String {
    let stamp: String = crate::inspect::iso_time(ms)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{BACKUP_PREFIX}{stamp}.rdb")
}

/// Whether `name` is a backup's RDB file name (`redsnap-backup-YYYYMMDDTHHMMSSZ.rdb`).
pub fn is_backup_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(BACKUP_PREFIX)
        .and_then(|r| r.strip_suffix(".rdb"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// One backup of a backup directory.
#[derive(Debug, Clone)]
pub struct BackupEntry {
    pub rdb: PathBuf,
    /// Its manifest, when there is one.
    pub manifest: Option<PathBuf>,
}

/// The backups of a directory, oldest first (their names sort by time), and
/// manifests whose RDB file is missing.
pub fn list_backups(dir: &Path) -> Result<(Vec<BackupEntry>, Vec<PathBuf>)> {
    let mut rdbs = Vec::new();
    let mut manifests = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if is_backup_name(&name) {
            rdbs.push(name);
        } else if let Some(rdb) = name.strip_suffix(MANIFEST_SUFFIX) {
            if is_backup_name(rdb) {
                manifests.push(rdb.to_string());
            }
        }
    }
    rdbs.sort();
    let orphans = manifests
        .iter()
        .filter(|m| !rdbs.contains(m))
        .map(|m| dir.join(format!("{m}{MANIFEST_SUFFIX}")))
        .collect();
    let entries = rdbs
        .into_iter()
        .map(|name| {
            let rdb = dir.join(&name);
            let m = manifest_path(&rdb);
            BackupEntry {
                manifest: manifests.contains(&name).then_some(m),
                rdb,
            }
        })
        .collect();
    Ok((entries, orphans))
}

/// Whether a directory is a backup directory (it holds backups or their manifests).
pub fn is_backup_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok()).any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            is_backup_name(&n) || is_backup_name(n.trim_end_matches(MANIFEST_SUFFIX))
        })
    })
}

/// A reader or writer that hashes (SHA-256) and counts what passes through.
pub struct Hashing<T> {
    pub inner: T,
    sha: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Hashing<T> {
        Hashing {
            inner,
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes that passed through.
    pub fn count(&self) -> u64 {
        self.bytes
    }

    /// The SHA-256 so far, in lower-case hex.
    pub fn hex(&self) -> String {
        hex(&self.sha.clone().finalize())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A file's size and SHA-256.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Hashing::new(f);
    std::io::copy(&mut h, &mut std::io::sink())
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((h.count(), h.hex()))
}

/// Where a file differs from its manifest (empty: it matches): the size, then the
/// SHA-256.
pub fn compare(rdb: &Path, manifest_file: &Path, m: &Manifest) -> Result<Vec<String>> {
    let (bytes, sha) = sha256_file(rdb)?;
    let mut out = Vec::new();
    if bytes != m.bytes {
        out.push(format!(
            "{}: {} bytes, but its manifest {} says {} ({})",
            rdb.display(),
            bytes,
            manifest_file.display(),
            m.bytes,
            if bytes < m.bytes {
                "truncated"
            } else {
                "bytes were added"
            }
        ));
    }
    if sha != m.sha256 {
        out.push(format!(
            "{}: SHA-256 {sha} differs from {} in its manifest {}: the file is not the one backed up",
            rdb.display(),
            m.sha256,
            manifest_file.display()
        ));
    }
    Ok(out)
}

/// What an RDB file holds, read whole (every value decoded, the CRC-64 compared).
#[derive(Debug, Clone, Default)]
pub struct RdbContents {
    pub version: u32,
    /// Bytes of the file (all of them, hashed).
    pub bytes: u64,
    pub sha256: String,
    pub keys: u64,
    pub expiring_keys: u64,
    pub functions: u64,
    pub types: BTreeMap<String, u64>,
    pub databases: BTreeMap<u64, DbCounts>,
    /// Empty collections (Redis skips them when loading too).
    pub skipped_empty: u64,
    /// Bytes after the RDB's checksum trailer.
    pub trailing_bytes: u64,
}

/// TYPE's name for a value.
pub fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::Str(_) => "string",
        Value::List(_) => "list",
        Value::Set(_) => "set",
        Value::Hash(_) => "hash",
        Value::ZSet(_) => "zset",
        Value::Stream(_) => "stream",
        Value::Json(_) => "ReJSON-RL",
    }
}

/// TYPE's name for a type redsnap reads but does not hold.
fn unsupported_type_name(rdb_name: &str) -> &'static str {
    if rdb_name.starts_with("stream") {
        "stream"
    } else {
        "module"
    }
}

impl RdbContents {
    fn add(&mut self, db: u64, ty: &str, expiring: bool) {
        self.keys += 1;
        *self.types.entry(ty.to_string()).or_default() += 1;
        let d = self.databases.entry(db).or_default();
        d.keys += 1;
        *d.types.entry(ty.to_string()).or_default() += 1;
        if expiring {
            self.expiring_keys += 1;
            d.expiring_keys += 1;
        }
    }
}

/// Reads an RDB file whole, hashing every byte, and counts what it holds. Types
/// redsnap does not hold (streams, modules) are walked and counted: they are data.
/// `progress` is called now and then with the keys and bytes read so far.
pub fn read_rdb(path: &Path, progress: impl FnMut(u64, u64)) -> Result<RdbContents> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    read_rdb_from(f, path, progress)
}

/// [`read_rdb`] over any reader (`path` names it in errors): `redsnap backup` checks
/// the bytes as they arrive from the source.
pub fn read_rdb_from(
    f: impl Read,
    path: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<RdbContents> {
    let mut h = Hashing::new(f);
    let opts = ReadOptions {
        skip_unsupported: true,
        ..Default::default()
    };
    let mut c = RdbContents::default();
    let rdb_end;
    {
        let mut r = RdbReader::new(&mut h, opts).with_context(|| path.display().to_string())?;
        c.version = r.version();
        let mut n = 0u64;
        while let Some(item) = r.next_item().with_context(|| path.display().to_string())? {
            match item {
                Item::Key(k) => c.add(k.db, value_type_name(&k.value), k.expire_ms.is_some()),
                Item::Skipped {
                    db,
                    reason: SkipReason::Unsupported(name),
                    ..
                } => c.add(db, unsupported_type_name(name), false),
                Item::Skipped {
                    reason: SkipReason::Empty,
                    ..
                } => c.skipped_empty += 1,
                Item::Function { .. } => c.functions += 1,
                _ => {}
            }
            n += 1;
            if n.is_multiple_of(1024) {
                progress(c.keys, r.offset());
            }
        }
        rdb_end = r.summary().bytes;
    }
    std::io::copy(&mut h, &mut std::io::sink())
        .with_context(|| format!("reading {}", path.display()))?;
    c.bytes = h.count();
    c.sha256 = h.hex();
    c.trailing_bytes = c.bytes.saturating_sub(rdb_end);
    progress(c.keys, c.bytes);
    Ok(c)
}

/// A backup to restore, from what the user named: a backup directory (its newest
/// backup that has a manifest), a manifest (its file), or an RDB file (with the
/// manifest beside it, when there is one).
pub fn resolve(arg: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    if arg.is_dir() {
        let (entries, _) = list_backups(arg)?;
        let Some(newest) = entries.iter().rev().find(|e| e.manifest.is_some()) else {
            bail!(
                "{} holds no backup with a manifest (redsnap-backup-*.rdb and its .manifest.json)",
                arg.display()
            );
        };
        if let Some(last) = entries.last() {
            if last.manifest.is_none() {
                eprintln!(
                    "note: {} has no manifest (an interrupted backup?); using the newest complete one",
                    last.rdb.display()
                );
            }
        }
        return Ok((newest.rdb.clone(), newest.manifest.clone()));
    }
    if is_manifest(arg) {
        let m = load(arg)?;
        return Ok((rdb_of(arg, &m)?, Some(arg.to_path_buf())));
    }
    let m = manifest_path(arg);
    Ok((arg.to_path_buf(), m.exists().then_some(m)))
}

/// Before a restore writes anything: the file's size and SHA-256 match its
/// manifest.
pub fn check_before_restore(rdb: &Path, manifest_file: &Path) -> Result<()> {
    let m = load(manifest_file)
        .context("nothing was written (a backup's manifest must be readable to restore it)")?;
    let diffs = compare(rdb, manifest_file, &m)?;
    if !diffs.is_empty() {
        bail!(
            "{}; nothing was written (verify the backup with `redsnap verify {}`)",
            diffs.join("; "),
            rdb.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        // 2026-12-05T04:19:00.123Z
        let ms = 1_796_444_340_123;
        assert_eq!(rfc3339_ms(ms), "2026-12-05T04:19:00.123Z");
        assert_eq!(backup_name(ms), "redsnap-backup-20261205T041900Z.rdb");
        assert!(is_backup_name(&backup_name(ms)));
        assert!(!is_backup_name("redsnap-backup-20261205T041900.rdb"));
        assert!(!is_backup_name("redsnap-backup-2026120xT041900Z.rdb"));
        assert!(!is_backup_name("dump.rdb"));
        assert_eq!(
            manifest_path(Path::new("/b/x.rdb")),
            Path::new("/b/x.rdb.manifest.json")
        );
    }

    #[test]
    fn listing_a_backup_dir() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "redsnap-backup-20260101T000000Z.rdb",
            "redsnap-backup-20260101T000000Z.rdb.manifest.json",
            "redsnap-backup-20250101T000000Z.rdb",
            "redsnap-backup-20240101T000000Z.rdb.manifest.json",
            "other.rdb",
        ] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        assert!(is_backup_dir(d.path()));
        let (e, orphans) = list_backups(d.path()).unwrap();
        assert_eq!(e.len(), 2);
        assert!(e[0].rdb.ends_with("redsnap-backup-20250101T000000Z.rdb"));
        assert!(e[0].manifest.is_none());
        assert!(e[1].manifest.is_some());
        assert_eq!(orphans.len(), 1);
        let (rdb, m) = resolve(d.path()).unwrap();
        assert!(rdb.ends_with("redsnap-backup-20260101T000000Z.rdb"));
        assert!(m.is_some());
    }
}
