//! Persistence for `redsnap serve`: a locked data directory, snapshots in an embedded
//! store, an append log of writes, and startup recovery.
//!
//! # How the server uses it
//!
//! ```text
//! startup    let dir = DataDir::open(path)?;            // mkdir 0700, lock <dir>/LOCK
//!            let snaps = SnapshotStore::open(&dir)?;
//!            snaps.set_incremental(cfg.incremental);      // optional
//!            let report = recover(&dir, &snaps, &mut store, &LoadOptions::new())?;
//!            let log = AppendLog::open(&dir, FsyncPolicy::EverySec, report.next_gen)?;
//!            log.set_base_size(report.snapshot_size);
//! each batch (under the store lock, after executing)
//!            let token = log.stage(&store.effects.log)?; store.effects.log.clear();
//!            // before any reply leaves (outside the lock)
//!            let written = log.write_staged()?;
//!            // appendfsync always: every reply waits for what was written before it
//!            if log.waits_for_fsync() { log.durable(written).await?; }
//! BGSAVE / save point / interval / log.should_rewrite(pct, min_size)
//!            (under the store lock) let dbs = store.dataset(); let gen = log.rotate()?; // no I/O
//!            snaps.spawn(dbs, gen, Some(log.clone()), |res| ...)?;  // compacts the log on success
//! SAVE       snaps.save(dbs, gen, Some(&log))?          // same, on the calling thread
//! INFO       snaps.stats(), log.stats()
//! shutdown   final snapshot (unless NOSAVE), join it; log.close()?
//! ```
//!
//! Without an append log, pass `report.covered_gen()` as the snapshot's `gen`.
//!
//! See docs/persistence.md for the file formats, the design and the measurements.

pub mod aof;
pub mod background;
pub mod codec;
pub mod datadir;
pub mod durable;
pub mod error;
pub mod import;
pub mod rdbfile;
pub mod recover;
pub mod snapshot;

pub use aof::{AofStats, AppendLog, FsyncPolicy};
pub use datadir::DataDir;
pub use durable::{Durable, DurableConfig, SaveJob};
pub use error::{PersistError, Result};
pub use recover::{
    check_log_file, drop_expired, recover, recover_at, LogDamage, LogFileCheck, RecoveryReport,
};
pub use snapshot::{
    LoadOptions, LoadReport, SnapshotInfo, SnapshotMeta, SnapshotStats, SnapshotStore,
    FORMAT_VERSION,
};
