//! Resilience: a circuit breaker and a local durable fallback directory
//! used by [`crate::Snapshots`] while Redis is unreachable.
//!
//! Fallback layout (one directory per namespace):
//!
//! ```text
//! <dir>/<namespace, hex-escaped>/latest.rsnp          envelope of the latest state
//! <dir>/<namespace, hex-escaped>/pending/<epoch>.rsnp  saves not yet in Redis
//! ```
//!
//! Files are written to a temporary name, fsynced, renamed into place and the
//! directory fsynced, so a crash leaves either the old or the new file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

/// Circuit-breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BreakerState {
    /// Requests go to Redis.
    Closed,
    /// Redis is considered down: requests go straight to the fallback.
    Open,
    /// Cool-down elapsed: the next request probes Redis.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// Opens after `threshold` consecutive unavailability errors, stays open for
/// `cooldown`, then lets one probe through (half-open); a success closes it.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    /// Whether a request may go to Redis now.
    pub fn allow(&self) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match *g {
            Inner::Closed { .. } | Inner::HalfOpen => true,
            Inner::Open { until } => {
                if Instant::now() >= until {
                    *g = Inner::HalfOpen;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Record a success.
    pub fn on_success(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*g, Inner::Closed { failures: 0 }) {
            tracing::info!(target: "redsnap", "circuit breaker closed: Redis reachable");
        }
        *g = Inner::Closed { failures: 0 };
    }

    /// Record an unavailability error.
    pub fn on_failure(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let open = match *g {
            Inner::Closed { failures } => {
                let f = failures + 1;
                if f >= self.threshold {
                    true
                } else {
                    *g = Inner::Closed { failures: f };
                    false
                }
            }
            Inner::HalfOpen | Inner::Open { .. } => true,
        };
        if open {
            tracing::warn!(target: "redsnap", cooldown = ?self.cooldown, "circuit breaker open: using local fallback");
            *g = Inner::Open {
                until: Instant::now() + self.cooldown,
            };
        }
    }

    /// Current state.
    pub fn state(&self) -> BreakerState {
        match *self.inner.lock().unwrap_or_else(|e| e.into_inner()) {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

/// A durable local directory holding the latest state and saves that
/// could not reach Redis.
#[derive(Debug, Clone)]
pub struct LocalFallback {
    dir: PathBuf,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("fallback {what} {}: {e}", path.display()))
}

/// Escape a namespace into a safe file name (`[A-Za-z0-9_.-]` kept, other
/// bytes as `%XX`).
fn file_safe(ns: &str) -> String {
    let mut out = String::new();
    for b in ns.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

impl LocalFallback {
    /// The fallback of namespace `ns` under `root` (created if missing).
    pub fn open(root: impl AsRef<Path>, ns: &str) -> Result<Self> {
        let dir = root.as_ref().join(file_safe(ns));
        let pending = dir.join("pending");
        fs::create_dir_all(&pending).map_err(|e| io_err("creating", &pending, e))?;
        Ok(Self { dir })
    }

    /// The namespace directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let parent = path.parent().unwrap_or(&self.dir);
        let tmp = parent.join(format!(
            ".tmp-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let res = (|| -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            fs::File::open(parent)?.sync_all()?;
            Ok(())
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res.map_err(|e| io_err("writing", path, e))
    }

    /// Store the latest state.
    pub fn write_latest(&self, bytes: &[u8]) -> Result<()> {
        self.write_atomic(&self.dir.join("latest.rsnp"), bytes)
    }

    /// The latest state, if any.
    pub fn read_latest(&self) -> Result<Option<Vec<u8>>> {
        let p = self.dir.join("latest.rsnp");
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &p, e)),
        }
    }

    /// Queue a save of `epoch` for replay.
    pub fn push_pending(&self, epoch: u64, bytes: &[u8]) -> Result<()> {
        self.write_atomic(
            &self.dir.join("pending").join(format!("{epoch:020}.rsnp")),
            bytes,
        )
    }

    /// Queued saves, oldest first.
    pub fn pending(&self) -> Result<Vec<(u64, PathBuf)>> {
        let p = self.dir.join("pending");
        let mut out = Vec::new();
        let rd = fs::read_dir(&p).map_err(|e| io_err("listing", &p, e))?;
        for entry in rd.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(epoch) = name
                .strip_suffix(".rsnp")
                .and_then(|n| n.parse::<u64>().ok())
            {
                out.push((epoch, path));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove a replayed entry.
    pub fn remove(&self, path: &Path) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_and_half_opens() {
        let b = CircuitBreaker::new(2, Duration::from_millis(50));
        assert!(b.allow());
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow());
        b.on_failure();
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow());
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn fallback_files() {
        let d = tempfile::tempdir().unwrap();
        let f = LocalFallback::open(d.path(), "a/b{c}").unwrap();
        assert!(f.dir().starts_with(d.path()));
        assert_eq!(f.read_latest().unwrap(), None);
        f.write_latest(b"x").unwrap();
        assert_eq!(f.read_latest().unwrap(), Some(b"x".to_vec()));
        f.push_pending(20, b"b").unwrap();
        f.push_pending(3, b"a").unwrap();
        let p = f.pending().unwrap();
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 20]);
        f.remove(&p[0].1).unwrap();
        assert_eq!(f.pending().unwrap().len(), 1);
        assert_eq!(file_safe(".."), "%2E.");
    }
}
