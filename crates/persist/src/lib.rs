//! Persistence for `redsnap serve`: a locked data directory, snapshots in an embedded
//! store, an append log of writes, and startup recovery.
//!
//! # How the server uses it
//!
//! ```text
//! startup:   let dir = DataDir::open(path)?;                       // creates 0700, locks
//!            let snaps = SnapshotStore::open(&dir)?;
//!            let report = recover(&dir, &snaps, &mut store, &LoadOptions::new())?;
//!            let log = AppendLog::open(&dir, FsyncPolicy::EverySec, report.next_gen)?;
//!            log.set_base_size(report.snapshot_size);
//! per batch: (under the store lock) let seq = log.append(&store.effects.log)?; clear it;
//!            (always) log.durable(seq).await? before replying
//! snapshot:  (under the store lock) let dbs = store.snapshot(); let gen = log.rotate()?;
//!            snaps.spawn(dbs, gen, Some(log.clone()), on_done)?     // BGSAVE
//! shutdown:  snapshot as above and join it (unless NOSAVE); log.close()?
//! ```
//!
//! See docs/persistence.md for the file formats, the design and the measurements.

pub mod aof;
pub mod codec;
pub mod datadir;
pub mod error;
pub mod recover;
pub mod snapshot;

pub use aof::{AofStats, AppendLog, FsyncPolicy};
pub use datadir::DataDir;
pub use error::{PersistError, Result};
pub use recover::{drop_expired, recover, recover_at, RecoveryReport};
pub use snapshot::{
    LoadOptions, LoadReport, SnapshotInfo, SnapshotMeta, SnapshotStats, SnapshotStore,
    FORMAT_VERSION,
};
