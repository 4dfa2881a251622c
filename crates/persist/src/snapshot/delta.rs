//! Incremental snapshots as deltas over a base keyspace.
//!
//! A full snapshot writes the base keyspace `snap-<id>`, which is never changed
//! afterwards. An incremental snapshot bulk-ingests the key hashes the change record
//! (`redsnap_engine::changes`) holds, as a new run of records under the prefix
//! id ‖ gen (u64 BE each) in the keyspace `deltas`, and lists it in the metadata
//! (format 4), in the same atomic switch as a full snapshot: the run is ingested (and
//! fsynced by fjall), then `meta/current` names it. The `deltas` keyspace lives as
//! long as the store (creating a keyspace per delta cost ~20 fsyncs, more than the
//! delta's own writing). Records under a prefix the metadata does not list (a failed
//! or crashed attempt, or a replaced base) are never read, and a generation is never
//! reused: a new one is past both the listed ones and any present in the keyspace.
//! A full snapshot drops the keyspace (and creates it anew) once it holds more than
//! a quarter as many records as the new base ([`drop_stale`]).
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
    dataset_hasher, db_index, format_for, meta_keyspace, store_err, table_files, LoadOptions,
    SnapshotInfo, SnapshotMeta, SnapshotStore, CURRENT_KEY, SNAP_PREFIX,
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

/// The keyspace holding every delta (records prefixed by base id and generation).
pub const KEYSPACE: &str = "deltas";

/// Bytes of the id ‖ gen prefix of a delta record's key.
const PREFIX: usize = 16;

/// Up to this many bytes, a delta's records go into one journaled write batch with
/// the metadata (one fsync in all); past it they are bulk-ingested as a table (no
/// journal, bounded memory, but fjall then fsyncs the table, its directory, a version
/// file and its pointer: some seven fsyncs, which on a slow disk cost more than the
/// writing of a small delta itself).
pub const BATCH_BYTES: usize = 4 << 20;

/// Domain separator of a marker's CRC (so no entry checksum equals one).
const MARKER_TAG: &[u8] = b"redsnap-delta-marker";

/// One delta keyspace of a snapshot, as its metadata lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaMeta {
    /// Its generation (with the base id, the prefix of its records in the
    /// `deltas` keyspace).
    pub gen: u64,
    /// Records in it (entries and markers).
    pub entries: u64,
    /// Wrapping sum of its records' stored CRC-32Cs.
    pub checksum: u64,
}

/// The key prefix of a delta's records.
pub fn prefix(id: u64, gen: u64) -> [u8; PREFIX] {
    let mut p = [0u8; PREFIX];
    p[..8].copy_from_slice(&id.to_be_bytes());
    p[8..].copy_from_slice(&gen.to_be_bytes());
    p
}

/// How a delta is named in messages.
fn label(id: u64, gen: u64) -> String {
    format!("keyspace {KEYSPACE}, delta {id}.{gen}")
}

/// After a full snapshot's switch: the records of replaced snapshots' deltas are
/// never read again (their base id is gone), but they take room. Once the keyspace
/// holds more than a quarter as many records as the new base (plus 1024), it is
/// dropped and created anew, empty (rare: it costs some twenty fsyncs). `Keyspace::clear` is not used:
/// fjall replays a clear from its journal at the next open, after tables ingested
/// later were registered, and would drop those.
pub(super) fn drop_stale(db: &fjall::Database, path: &Path, base_keys: u64) {
    if !db.keyspace_exists(KEYSPACE) {
        return;
    }
    let res = db
        .keyspace(KEYSPACE, fjall::KeyspaceCreateOptions::default)
        .and_then(|ks| {
            if ks.approximate_len() as u64 <= base_keys / 4 + 1024 {
                return Ok(());
            }
            db.delete_keyspace(ks)?;
            db.keyspace(KEYSPACE, fjall::KeyspaceCreateOptions::default)
                .map(drop)
        });
    if let Err(e) = res {
        // Harmless: records under prefixes the metadata does not list are never read.
        tracing::warn!(store = %path.display(), error = %e, "could not drop the deltas of replaced snapshots");
    }
}

/// `None`, typed as the ingestion fjall starts (its type is not exported).
fn no_ingestion<'a, T>(_start: fn(&'a fjall::Keyspace) -> fjall::Result<T>) -> Option<T> {
    None
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
        if !db.keyspace_exists(&format!("{SNAP_PREFIX}{}", cur.id)) {
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
        let ks = if recorded > 0 {
            Some(
                db.keyspace(KEYSPACE, fjall::KeyspaceCreateOptions::default)
                    .map_err(&serr)?,
            )
        } else {
            None
        };
        // The records while the delta is small (committed in one batch with the
        // metadata), and the ingestion once it is not.
        let mut held: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut ing = no_ingestion(fjall::Keyspace::start_ingestion);
        if let Some(ks) = &ks {
            // Past the listed generations and any a failed attempt left behind.
            let listed = deltas.last().map_or(0, |d| d.gen);
            let present = match ks.prefix(cur.id.to_be_bytes()).next_back() {
                Some(item) => {
                    let k = item.key().map_err(&serr)?;
                    k.get(8..PREFIX)
                        .and_then(|g| <[u8; 8]>::try_from(g).ok())
                        .map_or(0, u64::from_be_bytes)
                }
                None => 0,
            };
            let gen = listed.max(present) + 1;
            let fail_after = self.inner.fail_after.load(Ordering::SeqCst);
            let mut held_bytes = 0usize;
            // Holds a record, or writes it once the delta has outgrown a batch.
            macro_rules! put {
                ($k:expr, $v:expr) => {
                    match &mut ing {
                        Some(ing) => ing.write($k, $v).map_err(&serr)?,
                        None => {
                            held_bytes += $k.len() + $v.len();
                            held.push(($k.to_vec(), $v.to_vec()));
                            if held_bytes > BATCH_BYTES {
                                let mut new = ks.start_ingestion().map_err(&serr)?;
                                for (k, v) in held.drain(..) {
                                    new.write(k, v).map_err(&serr)?;
                                }
                                ing = Some(new);
                            }
                        }
                    }
                };
            }
            let pre = prefix(cur.id, gen);
            let mut key = Vec::new();
            let mut rec = Vec::new();
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
                        rec.clear();
                        rec.extend_from_slice(&pre);
                        rec.extend_from_slice(&key);
                        put!(rec.as_slice(), val.as_slice());
                        n += 1;
                        any = true;
                    }
                    if !any {
                        codec::entry_key(&mut key, dbi, hash, &[]);
                        let m = marker(&key);
                        checksum = checksum.wrapping_add(u64::from(u32::from_le_bytes(m)));
                        rec.clear();
                        rec.extend_from_slice(&pre);
                        rec.extend_from_slice(&key);
                        put!(rec.as_slice(), &m[..]);
                        n += 1;
                    }
                }
            }
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
        // The switch, as for a full snapshot (a small delta's records in the same
        // atomic batch).
        let meta_ks = meta_keyspace(db, path)?;
        match (ing, &ks) {
            (Some(ing), _) => {
                ing.finish().map_err(&serr)?;
                meta_ks.insert(CURRENT_KEY, meta.encode()).map_err(&serr)?;
            }
            (None, ks) => {
                let mut batch = db.batch();
                if let Some(ks) = ks {
                    for (k, v) in held {
                        batch.insert(ks, k, v);
                    }
                }
                batch.insert(&meta_ks, CURRENT_KEY, meta.encode());
                batch.commit().map_err(&serr)?;
            }
        }
        db.persist(fjall::PersistMode::SyncAll).map_err(&serr)?;
        let mut size_bytes = 0;
        for n in [format!("{SNAP_PREFIX}{}", meta.id), KEYSPACE.to_string()] {
            if db.keyspace_exists(&n) {
                let ks = db
                    .keyspace(&n, fjall::KeyspaceCreateOptions::default)
                    .map_err(&serr)?;
                size_bytes += ks.disk_space();
            }
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
    if !db.keyspace_exists(KEYSPACE) {
        let err = PersistError::CorruptSnapshot {
            path: path.to_path_buf(),
            location: format!("keyspace {KEYSPACE}"),
            detail: format!(
                "the keyspace holding the current snapshot's {} deltas is missing",
                meta.deltas.len()
            ),
        };
        if !opts.ignore_corruption {
            return Err(err);
        }
        tracing::warn!(error = %err, "loading what is valid: the base without its deltas");
        out.truncated = true;
        return Ok(out);
    }
    let ks = db
        .keyspace(KEYSPACE, fjall::KeyspaceCreateOptions::default)
        .map_err(&serr)?;
    for d in &meta.deltas {
        let ks_name = label(meta.id, d.gen);
        let damaged = |location: String, detail: String| PersistError::CorruptSnapshot {
            path: ks.path().to_path_buf(),
            location,
            detail,
        };
        let (mut n, mut checksum) = (0u64, 0u64);
        // The (db, hash) whose stored keys were dropped last.
        let mut replaced: Option<(usize, u64)> = None;
        // The keys loaded under that hash that the delta has not (yet) rewritten:
        // dropped when the delta moves on to another hash.
        let mut gone: Vec<Bytes> = Vec::new();
        let mut cut = false;
        for item in ks.prefix(prefix(meta.id, d.gen)) {
            let (k, v) = match item.into_inner() {
                Ok(kv) => kv,
                Err(e) => {
                    let err = damaged(
                        ks_name.clone(),
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
            // The entry key after the id ‖ gen prefix (the iteration is by prefix).
            let k = k.get(PREFIX..).unwrap_or_default();
            match decode(k, &v, hasher, ndbs) {
                Ok((dbi, hash, entry)) => {
                    if replaced != Some((dbi, hash)) {
                        if let Some((prev, _)) = replaced {
                            for key in gone.drain(..) {
                                store.dbs[prev].remove(&key);
                            }
                        }
                        replaced = Some((dbi, hash));
                        gone.extend(
                            store.dbs[dbi]
                                .entries_with_hash(hash)
                                .map(|(key, _)| key.to_bytes()),
                        );
                    }
                    if let Some((key, entry)) = entry {
                        // Rewritten: the insert replaces it, no removal needed.
                        gone.retain(|g| g != &key);
                        store.dbs[dbi].insert_entry(key, entry);
                    }
                }
                Err(detail) => {
                    let location = match codec::split_entry_key(k) {
                        Some((d, key)) => {
                            format!("{ks_name}, db {d} key {:?}", String::from_utf8_lossy(key))
                        }
                        None => format!("{ks_name}, a key shorter than 10 bytes"),
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
        if let Some((prev, _)) = replaced {
            for key in gone.drain(..) {
                store.dbs[prev].remove(&key);
            }
        }
        if !cut && (n != d.entries || checksum != d.checksum) {
            let err = damaged(
                ks_name.clone(),
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
