//! An import that has not reached its first snapshot yet.
//!
//! `redsnap serve --import dump.rdb` loads the RDB file straight into the server's
//! memory and starts serving; the first snapshot is then written in the background,
//! as any BGSAVE. Until it is durable the data directory holds no copy of the
//! imported keys, only (with the append log on) the writes made after the import. So
//! before anything else the import leaves a marker, `import-pending`, naming the file
//! with its size and CRC-64 trailer; recovery (`crate::recover`) loads that file again
//! before it replays the log when it finds the marker and no snapshot, and the
//! server deletes the marker once a snapshot succeeded. A crash at any point thus
//! restarts with the imported keys plus every logged write, never silently empty;
//! if the file is gone or changed by then, the start is refused with the reason.
//!
//! The marker is a small text file, `key=value` per line, written to a temporary
//! name, fsynced and renamed, with the directory fsynced.

use crate::datadir::{sync_dir, DataDir};
use crate::rdbfile::{load_into, LoadRdbOptions, LoadRdbReport, RdbReader, ReadOptions};
use crate::{PersistError, Result};
use redsnap_engine::Store;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The marker's file name in the data directory.
pub const MARKER: &str = "import-pending";

/// What the marker records about the file being imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMarker {
    /// Absolute path of the RDB file.
    pub file: PathBuf,
    pub bytes: u64,
    /// The file's last 8 bytes (the CRC-64 trailer), as hex.
    pub trailer: String,
}

fn describe(file: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(file)?;
    let bytes = f.metadata()?.len();
    let mut tail = [0u8; 8];
    let n = bytes.min(8);
    f.seek(SeekFrom::Start(bytes - n))?;
    f.read_exact(&mut tail[..n as usize])?;
    let hex = tail[..n as usize]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((bytes, hex))
}

/// Writes the marker for importing `file` into `dir` (durably).
pub fn begin(dir: &DataDir, file: &Path) -> Result<ImportMarker> {
    let abs = std::fs::canonicalize(file).map_err(|e| PersistError::io("open", file, e))?;
    let text = abs
        .to_str()
        .filter(|s| !s.contains('\n'))
        .ok_or_else(|| PersistError::Import {
            dir: dir.path().to_path_buf(),
            file: abs.clone(),
            detail: "the file's path is not valid UTF-8 on one line".into(),
        })?;
    let (bytes, trailer) = describe(&abs).map_err(|e| PersistError::io("read", &abs, e))?;
    let marker = ImportMarker {
        file: abs.clone(),
        bytes,
        trailer,
    };
    let body = format!(
        "file={text}\nbytes={}\ntrailer={}\n",
        marker.bytes, marker.trailer
    );
    let path = dir.path().join(MARKER);
    let tmp = dir.path().join(format!("{MARKER}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| PersistError::io("write", &path, e))?;
    sync_dir(dir.path())?;
    Ok(marker)
}

/// The marker in `dir`, if an import is pending.
pub fn pending(dir: &Path) -> Result<Option<ImportMarker>> {
    let path = dir.join(MARKER);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PersistError::io("read", &path, e)),
    };
    let bad = |detail: &str| PersistError::Import {
        dir: dir.to_path_buf(),
        file: path.clone(),
        detail: format!("{MARKER} is damaged ({detail}); delete it to start from the log alone"),
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };
    let file = field("file").ok_or_else(|| bad("no file"))?;
    let bytes = field("bytes")
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| bad("no byte count"))?;
    let trailer = field("trailer").ok_or_else(|| bad("no trailer"))?;
    Ok(Some(ImportMarker {
        file: PathBuf::from(file),
        bytes,
        trailer,
    }))
}

/// Deletes the marker (the import's first snapshot is durable).
pub fn finish(dir: &Path) -> Result<()> {
    let path = dir.join(MARKER);
    match std::fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PersistError::io("delete", &path, e)),
    }
}

/// Loads the marker's file into `store` after checking it is the file the import
/// started from.
pub fn load(dir: &Path, marker: &ImportMarker, store: &mut Store) -> Result<LoadRdbReport> {
    let fail = |detail: String| PersistError::Import {
        dir: dir.to_path_buf(),
        file: marker.file.clone(),
        detail,
    };
    let (bytes, trailer) = describe(&marker.file).map_err(|e| fail(e.to_string()))?;
    if bytes != marker.bytes || trailer != marker.trailer {
        return Err(fail(format!(
            "the file changed since the import began ({bytes} bytes ending {trailer}, the import read {} bytes ending {})",
            marker.bytes, marker.trailer
        )));
    }
    let f = std::fs::File::open(&marker.file).map_err(|e| fail(e.to_string()))?;
    let reader = RdbReader::new(
        std::io::BufReader::with_capacity(1 << 20, f),
        ReadOptions::default(),
    )
    .map_err(|e| fail(e.to_string()))?;
    let opts = LoadRdbOptions {
        now_ms: redsnap_engine::now_ms(),
        ..Default::default()
    };
    load_into(reader, store, &opts, |_| {}).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_notices_a_changed_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path().join("data")).unwrap();
        let file = tmp.path().join("dump.rdb");
        std::fs::write(&file, b"REDIS0010 not really an rdb file").unwrap();
        assert_eq!(pending(dir.path()).unwrap(), None);
        let m = begin(&dir, &file).unwrap();
        assert_eq!(pending(dir.path()).unwrap(), Some(m.clone()));
        assert_eq!(m.bytes, 32);
        std::fs::write(&file, b"REDIS0010 not really an rdb filX").unwrap();
        let mut store = Store::new(Default::default());
        let err = load(dir.path(), &m, &mut store).unwrap_err().to_string();
        assert!(err.contains("changed since the import began"), "{err}");
        std::fs::remove_file(&file).unwrap();
        let err = load(dir.path(), &m, &mut store).unwrap_err().to_string();
        assert!(err.contains("did not finish"), "{err}");
        finish(dir.path()).unwrap();
        assert_eq!(pending(dir.path()).unwrap(), None);
    }
}
