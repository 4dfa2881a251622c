//! The crate's error type. Every variant that concerns a file names it, and every
//! variant about a damaged record names the byte offset, so an operator can act on
//! the message alone.

use std::path::PathBuf;

/// Errors from the data directory, the snapshot store, the append log and recovery.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Another process holds `<dir>/LOCK`.
    #[error(
        "data directory {path} is in use by {holder}: it is locked by another running redsnap"
    )]
    Locked { path: PathBuf, holder: String },

    /// The directory (or a file in it) cannot be created or written.
    #[error("cannot write data directory {path}: {source}")]
    NotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An I/O error on a named file, with what was being done.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The snapshot store (fjall) reported an error.
    #[error("snapshot store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: fjall::Error,
    },

    /// The snapshot store could not be opened at all.
    #[error("cannot open the snapshot store {path}: {source} (refusing to start without the snapshot; move the directory aside to start without it)")]
    StoreOpen {
        path: PathBuf,
        #[source]
        source: fjall::Error,
    },

    /// A snapshot entry or the snapshot metadata failed its checksum or did not decode.
    #[error("corrupt snapshot in {path} ({location}): {detail}")]
    CorruptSnapshot {
        path: PathBuf,
        location: String,
        detail: String,
    },

    /// A damaged append log record that is not at the tail of the last file.
    #[error("corrupt append log {path} at byte offset {offset}: {detail} (set the option to load what is valid, or repair the file)")]
    CorruptLog {
        path: PathBuf,
        offset: u64,
        detail: String,
    },

    /// A log generation between the snapshot and the newest log file is missing.
    #[error("append log generation {missing} is missing in {dir} (have generations {have:?})")]
    MissingGeneration {
        dir: PathBuf,
        missing: u64,
        have: Vec<u64>,
    },

    /// The snapshot was written by a newer (or unknown) format.
    #[error(
        "snapshot in {path} has format version {found}, this redsnap reads version {supported}"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// A snapshot is already being written.
    #[error("a snapshot is already in progress")]
    SnapshotInProgress,

    /// The append log is in a failed state (a previous write could not be undone).
    #[error("append log {path} is unusable after a failed write: {detail}")]
    LogBroken { path: PathBuf, detail: String },

    /// An import (`serve --import`) that had not reached its first snapshot cannot
    /// be finished: its RDB file is gone, changed or damaged.
    #[error("the import of {file} into {dir} did not finish (no snapshot was written yet) and cannot be redone: {detail}")]
    Import {
        dir: PathBuf,
        file: PathBuf,
        detail: String,
    },

    /// An injected failure (tests only).
    #[error("injected failure: {0}")]
    Injected(String),

    /// A worker thread of the snapshot writer or loader failed.
    #[error("snapshot worker: {0}")]
    Internal(String),
}

impl PersistError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> PersistError {
        PersistError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for errors that mean the disk (or filesystem) refused a write: full disk,
    /// read-only filesystem, permission, quota. The server reports these as MISCONF.
    pub fn is_write_failure(&self) -> bool {
        match self {
            PersistError::NotWritable { .. }
            | PersistError::Injected(_)
            | PersistError::LogBroken { .. } => true,
            PersistError::Io { source, .. } => {
                !matches!(source.kind(), std::io::ErrorKind::NotFound)
            }
            PersistError::Store { .. } | PersistError::StoreOpen { .. } => true,
            _ => false,
        }
    }
}

/// Result with [`PersistError`].
pub type Result<T, E = PersistError> = std::result::Result<T, E>;
