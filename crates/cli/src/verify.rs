//! `redsnap verify FILE|DIR`: every checksum; non-zero exit naming the damage.
//!
//! An RDB file: read whole, every value decoded and its structure checked, the
//! CRC-64 trailer compared; with a manifest beside it (`FILE.manifest.json`, or the
//! manifest named instead of the file), its size and SHA-256 too. A backup
//! directory: every backup in it. A data directory: the snapshot's entries (CRC-32C
//! each, and the count and checksum sum in its metadata), the log generations after
//! it (contiguous; each file's header and every frame's CRC-32C and encoding).

use crate::inspect::scan_dir;
use crate::manifest;
use anyhow::Result;
use redsnap_persist::rdbfile::{RdbReader, ReadOptions};
use std::path::Path;

/// The outcome: what was checked, warnings, and damage (empty when intact).
#[derive(Debug, Default, serde::Serialize)]
pub struct Verdict {
    pub checked: Vec<String>,
    pub warnings: Vec<String>,
    pub damage: Vec<String>,
}

pub fn verify_file(path: &Path) -> Verdict {
    let mut v = Verdict::default();
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            v.damage.push(format!("{}: {e}", path.display()));
            return v;
        }
    };
    // Unsupported types are walked, not refused: they are not damage.
    let opts = ReadOptions {
        skip_unsupported: true,
        ..Default::default()
    };
    let res = RdbReader::new(f, opts).and_then(|r| r.verify());
    match res {
        Ok(s) => {
            v.checked.push(format!(
                "{}: RDB version {}, {} keys, {} bytes",
                path.display(),
                s.version,
                s.keys,
                s.bytes
            ));
            match s.stored_checksum {
                Some(0) => v.warnings.push(format!(
                    "{}: the checksum is disabled (zero trailer): only the structure was verified",
                    path.display()
                )),
                None => v.warnings.push(format!(
                    "{}: RDB version {} has no checksum: only the structure was verified",
                    path.display(),
                    s.version
                )),
                Some(c) => v
                    .checked
                    .push(format!("{}: CRC-64 {c:016x} matches", path.display())),
            }
            if s.skipped_unsupported + s.module_aux_skipped > 0 {
                v.warnings.push(format!(
                    "{}: {} keys of types redsnap does not hold (streams, modules) and {} module AUX fields: intact, but not loadable here",
                    path.display(),
                    s.skipped_unsupported,
                    s.module_aux_skipped
                ));
            }
            if s.skipped_empty > 0 {
                v.warnings.push(format!(
                    "{}: {} empty collections (Redis skips them on load too)",
                    path.display(),
                    s.skipped_empty
                ));
            }
        }
        Err(e) => v.damage.push(format!("{}: {e}", path.display())),
    }
    v
}

impl Verdict {
    fn merge(&mut self, other: Verdict) {
        self.checked.extend(other.checked);
        self.warnings.extend(other.warnings);
        self.damage.extend(other.damage);
    }
}

/// An RDB file, and its manifest when there is one: the size and SHA-256 against
/// the manifest, then the file's own structure and CRC-64 (which say where).
pub fn verify_backup(rdb: &Path, manifest_file: Option<&Path>) -> Verdict {
    let mut v = Verdict::default();
    if let Some(mf) = manifest_file {
        match manifest::load(mf) {
            Err(e) => v.damage.push(format!("{e:#}")),
            Ok(m) => {
                let named = rdb.file_name().map(|n| n.to_string_lossy().into_owned());
                if named.as_deref() != Some(m.file.as_str()) {
                    v.warnings.push(format!(
                        "{}: the manifest was written for a file named {:?}",
                        mf.display(),
                        m.file
                    ));
                }
                match manifest::compare(rdb, mf, &m) {
                    Err(e) => v.damage.push(format!("{e:#}")),
                    Ok(diffs) if diffs.is_empty() => v.checked.push(format!(
                        "{}: {} bytes and SHA-256 {} match the manifest {} ({} backup of {}, {})",
                        rdb.display(),
                        m.bytes,
                        m.sha256,
                        mf.display(),
                        m.method,
                        m.source,
                        m.started
                    )),
                    Ok(diffs) => v.damage.extend(diffs),
                }
            }
        }
    }
    v.merge(verify_file(rdb));
    v
}

/// Every backup of a backup directory.
pub fn verify_backup_dir(dir: &Path) -> Verdict {
    let mut v = Verdict::default();
    let (entries, orphans) = match manifest::list_backups(dir) {
        Ok(x) => x,
        Err(e) => {
            v.damage.push(format!("{e:#}"));
            return v;
        }
    };
    for e in &entries {
        if e.manifest.is_none() {
            v.warnings.push(format!(
                "{}: no manifest (an interrupted backup, or one copied without it): only the RDB's own checks were made",
                e.rdb.display()
            ));
        }
        v.merge(verify_backup(&e.rdb, e.manifest.as_deref()));
    }
    for o in orphans {
        v.damage.push(format!(
            "{}: a manifest whose backup file is missing",
            o.display()
        ));
    }
    v
}

pub fn verify_dir(path: &Path, databases: usize) -> Verdict {
    let mut v = Verdict::default();
    let scan = match scan_dir(path, databases, false) {
        Ok(s) => s,
        Err(e) => {
            v.damage.push(format!("{e:#}"));
            return v;
        }
    };
    match (&scan.snapshot, &scan.snapshot_error) {
        (_, Some(e)) => v.damage.push(e.clone()),
        (Some(m), None) => v.checked.push(format!(
            "{}: snapshot {} with {} entries, every entry checksum and the metadata checksum match",
            path.join("snapshot").display(),
            m.id,
            m.keys
        )),
        (None, None) => v.checked.push(format!("{}: no snapshot", path.display())),
    }
    if let Some(m) = &scan.missing_generation {
        v.damage.push(m.clone());
    }
    for (c, covered, _) in &scan.logs {
        match &c.damage {
            None => v.checked.push(format!(
                "{}: {} frames, {} records, every frame checksum matches{}",
                c.path.display(),
                c.frames,
                c.records,
                if *covered {
                    " (covered by the snapshot)"
                } else {
                    ""
                }
            )),
            Some(d) if d.torn_tail => v.warnings.push(format!(
                "{}: at byte offset {}: {}",
                c.path.display(),
                d.offset,
                d.detail
            )),
            Some(d) => v.damage.push(format!(
                "{}: at byte offset {}: {}",
                c.path.display(),
                d.offset,
                d.detail
            )),
        }
    }
    v
}

/// Prints the verdict; returns whether the target is intact.
pub fn run(target: &Path, json: bool, databases: usize) -> Result<bool> {
    let v = if target.is_dir() {
        if manifest::is_backup_dir(target) {
            verify_backup_dir(target)
        } else {
            verify_dir(target, databases)
        }
    } else if manifest::is_manifest(target) {
        match manifest::load(target).and_then(|m| manifest::rdb_of(target, &m)) {
            Ok(rdb) => verify_backup(&rdb, Some(target)),
            Err(e) => Verdict {
                damage: vec![format!("{e:#}")],
                ..Default::default()
            },
        }
    } else {
        let m = manifest::manifest_path(target);
        verify_backup(target, m.exists().then_some(m.as_path()))
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for c in &v.checked {
            println!("ok: {c}");
        }
        for w in &v.warnings {
            println!("warning: {w}");
        }
        for d in &v.damage {
            eprintln!("DAMAGED: {d}");
        }
        if v.damage.is_empty() {
            println!("{}: intact", target.display());
        }
    }
    Ok(v.damage.is_empty())
}
