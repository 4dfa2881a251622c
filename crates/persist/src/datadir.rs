//! The data directory and its lock.
//!
//! `DataDir::open` creates the directory when missing (mode 0700 on Unix), then takes
//! an exclusive advisory lock on `<dir>/LOCK` and writes the process id into it. The
//! lock is held as long as the [`DataDir`] (or any clone of it) lives; the kernel
//! releases it when the process exits, even on `kill -9`, so a stale LOCK file never
//! blocks a restart.

use crate::error::{PersistError, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// An open, locked data directory. Cheap to clone; the lock is released when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct DataDir {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates (mode 0700) and locks the data directory.
    ///
    /// Errors: [`PersistError::Locked`] when another process (or another `DataDir` in
    /// this process) holds the lock, [`PersistError::NotWritable`] when the directory
    /// cannot be created or the lock file cannot be written.
    pub fn open(path: impl AsRef<Path>) -> Result<DataDir> {
        let path = path.as_ref().to_path_buf();
        let not_writable = |source| PersistError::NotWritable {
            path: path.clone(),
            source,
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&path).map_err(not_writable)?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(not_writable)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = match holder.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "pid unknown".to_string(),
                };
                return Err(PersistError::Locked { path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(not_writable(e)),
        }
        // We hold the lock: record our pid for the next contender's error message.
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_data()
        };
        write_pid(&mut lock).map_err(not_writable)?;
        // Probe that files can be created next to the lock (a read-only mount would
        // otherwise only show up at the first snapshot).
        let probe = path.join(".write-probe");
        File::create(&probe)
            .and_then(|f| f.sync_all())
            .map_err(not_writable)?;
        let _ = std::fs::remove_file(&probe);
        tracing::info!(dir = %path.display(), pid = std::process::id(), "data directory locked");
        Ok(DataDir {
            inner: Arc::new(Inner { path, _lock: lock }),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The directory holding the snapshot store.
    pub fn snapshot_path(&self) -> PathBuf {
        self.inner.path.join("snapshot")
    }
}

/// fsyncs a directory so that created, renamed or deleted entries are durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|d| d.sync_all())
            .map_err(|e| PersistError::io("fsync directory", path, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
