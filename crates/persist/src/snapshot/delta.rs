//! Incremental snapshots as deltas over a base keyspace.
//!
//! A full snapshot writes the base keyspace `snap-<id>`, which is never changed
//! afterwards. An incremental snapshot bulk-ingests the key hashes the change record
//! (`redsnap_engine::changes`) holds into a new keyspace `snap-<id>.<gen>` and lists it
//! in the metadata (format 4), in the same atomic switch as a full snapshot: the new
//! keyspace is ingested (and fsynced by fjall), then `meta/current` names it.
//!
//! A delta *replaces* each hash it holds: loading applies the deltas in order over
//! the base, and for each (db, hash) a delta holds, the keys the base (or an earlier
//! delta) loaded under that hash are dropped, then the delta's entries under it are
//! inserted. A hash whose keys are all gone is held by a marker: the 10-byte key
//! db ‖ hash and a 4-byte value (the CRC-32C of the key and [`MARKER_TAG`]; an entry's
//! value is never shorter than 5 bytes). The point-in-time clone holds every key
//! under a recorded hash, so the delta is exact without reading the stored snapshot.
//!
//! Nothing is read back: the cost of an incremental snapshot is encoding and
//! ingesting the changed keys (no per-key point reads of the stored snapshot, no
//! memtable, no journal), and the checks stay as strong as a full snapshot's: every
//! keyspace (base and each delta) has its own entry count and wrapping sum of its
//! entries' CRC-32Cs in the metadata, each entry its own CRC, and format 4 also
//! records the number of keys the snapshot holds after its deltas, checked after
//! loading.
//!
//! Deltas add loading work and disk space, so they are bounded: at most
//! [`MAX_DELTAS`], holding together at most a quarter of the base's entries (plus
//! 1024); past that the next snapshot is a full one, which replaces the base and
//! drops the deltas.

use super::{
    dataset_hasher, db_index, delete_others, format_for, keyspace_names, meta_keyspace, store_err,
    table_files, LoadOptions, SnapshotInfo, SnapshotMeta, SnapshotStore, CURRENT_KEY, SNAP_PREFIX,
};
use crate::codec::{self, CRC32C};
use crate::error::{PersistError, Result};
use bytes::Bytes;
use redsnap_engine::changes::Changes;
use redsnap_engine::{Db, Entry, KeyHasher, Store};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The most deltas a snapshot has before the next one is written in full.
pub const MAX_DELTAS: usize = 16;

/// Domain separator of a marker's CRC (so no entry checksum equals one).
const MARKER_TAG: &[u8] = b"redsnap-delta-marker";

/// One delta keyspace of a snapshot, as its metadata lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaMeta {
    /// Its generation (names the keyspace `snap-<id>.<gen>`; 1 for the first).
    pub gen: u64,
    /// Records in it (entries and markers).
    pub entries: u64,
    /// Wrapping sum of its records' stored CRC-32Cs.
    pub checksum: u64,
}

/// The name of a delta keyspace.
pub(super) fn name(id: u64, gen: u64) -> String {
    format!("{SNAP_PREFIX}{id}.{gen}")
}

/// The value of the marker of a hash whose keys are all gone.
fn marker(key: &[u8]) -> [u8; 4] {
    let mut d = CRC32C.digest();
    d.update(key);
    d.update(MARKER_TAG);
    d.finalize().to_le_bytes()
}

/// The deltas' combined size in records.
fn total_entries(deltas: &[DeltaMeta]) -> u64 {
    deltas.iter().map(|d| d.entries).sum()
}

impl SnapshotStore {
    /// Writes the entries under the key hashes `changes` records (each hash's keys as
    /// the clone `dbs` holds them, or a marker when it holds none) into a new delta
    /// keyspace, and switches the metadata to it. Returns `None` when a full snapshot
    /// should be written instead: more than a fifth of the keys changed, the deltas
    /// would exceed [`MAX_DELTAS`] or a quarter of the base, or a keyspace of the
    /// snapshot in force is missing.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_incremental(
        &self,
        db: &fjall::Database,
        cur: &SnapshotMeta,
        dbs: &[Db],
        changes: &Changes,
        libraries: &[Bytes],
        log_gen: u64,
        created_ms: u64,
        started: Instant,
    ) -> Result<Option<SnapshotInfo>> {
        let path = &self.inner.path;
        let serr = store_err(path);
        let names = keyspace_names(cur);
        if !names.iter().all(|n| db.keyspace_exists(n)) {
            return Ok(None);
        }
        let total: usize = dbs.iter().map(|d| d.len()).sum();
        let limit = total.max(usize::try_from(cur.keys).unwrap_or(usize::MAX)) / 5 + 16;
        let recorded = changes.len();
        if recorded > limit
            || cur.deltas.len() >= MAX_DELTAS
            || total_entries(&cur.deltas).saturating_add(recorded as u64) > cur.base_keys / 4 + 1024
        {
            return Ok(None);
        }
        let hasher = dataset_hasher(dbs, path)?;
        let mut deltas = cur.deltas.clone();
        let mut changed = 0;
        if recorded > 0 {
            let gen = deltas.last().map_or(1, |d| d.gen + 1);
            let delta_name = name(cur.id, gen);
            // A leftover of a failed attempt under this name goes first.
            delete_others(db, path, &names);
            let ks = db
                .keyspace(&delta_name, fjall::KeyspaceCreateOptions::default)
                .map_err(&serr)?;
            let fail_after = self.inner.fail_after.load(Ordering::SeqCst);
            let mut ing = ks.start_ingestion().map_err(&serr)?;
            let mut key = Vec::new();
            let mut val = Vec::new();
            let mut n: u64 = 0;
            let mut checksum: u64 = 0;
            for (i, (d, c)) in dbs.iter().zip(&changes.dbs).enumerate() {
                let dbi = db_index(i, path)?;
                let Some(c) = c else { continue };
                for (hash, _removed) in c.sorted() {
                    if n >= fail_after {
                        return Err(PersistError::Injected(format!(
                            "no space left on device (after {n} entries)"
                        )));
                    }
                    let mut any = false;
                    for (k, e) in d.entries_with_hash(hash) {
                        codec::entry_key(&mut key, dbi, hash, k);
                        codec::encode_entry(&mut val, &key, e.value(), e.expire_at());
                        checksum =
                            checksum.wrapping_add(u64::from(codec::stored_crc(&val).unwrap_or(0)));
                        ing.write(key.as_slice(), val.as_slice()).map_err(&serr)?;
                        n += 1;
                        any = true;
                    }
                    if !any {
                        codec::entry_key(&mut key, dbi, hash, &[]);
                        let m = marker(&key);
                        checksum = checksum.wrapping_add(u64::from(u32::from_le_bytes(m)));
                        ing.write(key.as_slice(), &m[..]).map_err(&serr)?;
                        n += 1;
                    }
                }
            }
            ing.finish().map_err(&serr)?;
            changed = n;
            deltas.push(DeltaMeta {
                gen,
                entries: n,
                checksum,
            });
        }
        let meta = SnapshotMeta {
            format_version: format_for(libraries, &deltas),
            id: cur.id,
            log_gen,
            created_ms,
            keys: total as u64,
            base_keys: cur.base_keys,
            checksum: cur.checksum,
            hash_seed: Some(hasher.seed()),
            libraries: libraries.to_vec(),
            deltas,
        };
        // The switch, as for a full snapshot.
        meta_keyspace(db, path)?
            .insert(CURRENT_KEY, meta.encode())
            .map_err(&serr)?;
        db.persist(fjall::PersistMode::SyncAll).map_err(&serr)?;
        let mut size_bytes = 0;
        for n in keyspace_names(&meta) {
            let ks = db
                .keyspace(&n, fjall::KeyspaceCreateOptions::default)
                .map_err(&serr)?;
            size_bytes += ks.disk_space();
        }
        Ok(Some(SnapshotInfo {
            keys: meta.keys,
            meta,
            size_bytes,
            duration: started.elapsed(),
            incremental: true,
            changed,
        }))
    }
}

/// What applying the deltas found.
#[derive(Default)]
pub(super) struct Applied {
    /// Damaged records skipped (only with `ignore_corruption`).
    pub skipped: u64,
    /// Whether a delta was cut short or failed its checksum (only with
    /// `ignore_corruption`).
    pub truncated: bool,
}

/// Applies the snapshot's deltas, in order, over the base loaded into `store`,
/// verifying each delta's records and its count and checksum against the metadata.
pub(super) fn apply(
    db: &fjall::Database,
    path: &Path,
    meta: &SnapshotMeta,
    store: &mut Store,
    hasher: KeyHasher,
    opts: &LoadOptions,
) -> Result<Applied> {
    let serr = store_err(path);
    let mut out = Applied::default();
    let ndbs = store.dbs.len();
    for d in &meta.deltas {
        let ks_name = name(meta.id, d.gen);
        if !db.keyspace_exists(&ks_name) {
            return Err(PersistError::CorruptSnapshot {
                path: path.to_path_buf(),
                location: format!("keyspace {ks_name}"),
                detail: "a delta keyspace of the current snapshot is missing".into(),
            });
        }
        let ks = db
            .keyspace(&ks_name, fjall::KeyspaceCreateOptions::default)
            .map_err(&serr)?;
        let damaged = |location: String, detail: String| PersistError::CorruptSnapshot {
            path: ks.path().to_path_buf(),
            location,
            detail,
        };
        let (mut n, mut checksum) = (0u64, 0u64);
        // The (db, hash) whose stored keys were dropped last.
        let mut replaced: Option<(usize, u64)> = None;
        let mut cut = false;
        for item in ks.iter() {
            let (k, v) = match item.into_inner() {
                Ok(kv) => kv,
                Err(e) => {
                    let err = damaged(
                        format!("keyspace {ks_name}"),
                        format!(
                            "read error: {e}; table files of this keyspace: {}",
                            table_files(ks.path())
                        ),
                    );
                    if !opts.ignore_corruption {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "loading what is valid: stopping this delta here");
                    out.truncated = true;
                    cut = true;
                    break;
                }
            };
            n += 1;
            checksum = checksum.wrapping_add(u64::from(codec::stored_crc(&v).unwrap_or(0)));
            match decode(&k, &v, hasher, ndbs) {
                Ok((dbi, hash, entry)) => {
                    if replaced != Some((dbi, hash)) {
                        replaced = Some((dbi, hash));
                        let gone: Vec<Bytes> = store.dbs[dbi]
                            .entries_with_hash(hash)
                            .map(|(key, _)| key.to_bytes())
                            .collect();
                        for key in gone {
                            store.dbs[dbi].remove(&key);
                        }
                    }
                    if let Some((key, entry)) = entry {
                        store.dbs[dbi].insert_entry(key, entry);
                    }
                }
                Err(detail) => {
                    let location = match codec::split_entry_key(&k) {
                        Some((d, key)) => format!(
                            "keyspace {ks_name}, db {d} key {:?}",
                            String::from_utf8_lossy(key)
                        ),
                        None => format!("keyspace {ks_name}, a key shorter than 10 bytes"),
                    };
                    let err = damaged(location, detail);
                    if !opts.ignore_corruption {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "loading what is valid: skipping a damaged delta record");
                    out.skipped += 1;
                }
            }
        }
        if !cut && (n != d.entries || checksum != d.checksum) {
            let err = damaged(
                format!("keyspace {ks_name}"),
                format!(
                    "snapshot checksum mismatch: metadata says {} entries, found {n} (entries lost, added or altered)",
                    d.entries
                ),
            );
            if !opts.ignore_corruption {
                return Err(err);
            }
            tracing::warn!(error = %err, "loading what is valid despite a checksum mismatch");
            out.truncated = true;
        }
    }
    Ok(out)
}

/// A decoded delta record: (db, hash, the entry or None for a marker).
type Record = (usize, u64, Option<(Bytes, Entry)>);

/// Verifies and decodes one delta record.
fn decode(
    k: &[u8],
    v: &[u8],
    hasher: KeyHasher,
    ndbs: usize,
) -> std::result::Result<Record, String> {
    let (Some((d, key)), Some(hash)) = (codec::split_entry_key(k), codec::entry_key_hash(k)) else {
        return Err("store key shorter than 10 bytes".into());
    };
    if d as usize >= ndbs {
        return Err(format!("database {d} does not exist (databases = {ndbs})"));
    }
    if v.len() == 4 && key.is_empty() {
        if v != marker(k) {
            return Err("marker checksum mismatch".into());
        }
        return Ok((d as usize, hash, None));
    }
    let (value, exp) = codec::decode_entry(k, v).map_err(|e| e.to_string())?;
    if hasher.hash(key) != hash {
        return Err("the key's stored hash is not the hash of the snapshot's seed".into());
    }
    Ok((
        d as usize,
        hash,
        Some((Bytes::copy_from_slice(key), Entry::new(value, exp))),
    ))
}
