//! Resilience: a circuit breaker and a local durable fallback directory
//! used by [`crate::Snapshots`] while Redis is unreachable.
//!
//! Fallback layout (one directory per namespace):
//!
//! ```text
//! <dir>/<namespace, hex-escaped>/latest.rsnp                   envelope of the latest state
//! <dir>/<namespace, hex-escaped>/pending/<epoch>-<ms>.rsnp      snapshot saves not yet in Redis
//! <dir>/<namespace, hex-escaped>/pending/latest-<ms>.rsnp       a heartbeat's `latest` not yet in Redis
//! ```
//!
//! `<epoch>` is the snapshot's epoch second, `<ms>` the Unix ms at which the
//! state was saved (both zero-padded to 20 digits); replay writes `latest:at`
//! from it and compares it with the `latest:at` already in Redis. Entries
//! named `<epoch>.rsnp` (written by earlier versions) count as saved at the
//! start of their epoch second.
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
    HalfOpen { since: Instant },
}

/// What [`CircuitBreaker::admit`] lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go to Redis.
    Allow,
    /// Open, or a probe is already under way: use the fallback, do not wait on Redis.
    Fallback,
    /// The cool-down elapsed: the breaker is now half-open and the caller
    /// should probe Redis (in the background) and report the outcome with
    /// [`on_success`](CircuitBreaker::on_success) /
    /// [`on_failure`](CircuitBreaker::on_failure); meanwhile it uses the fallback.
    Probe,
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

    /// Whether a request may go to Redis now (closed, or the cool-down
    /// elapsed: the breaker turns half-open and this request is the probe).
    pub fn allow(&self) -> bool {
        self.admit() != Admission::Fallback
    }

    /// Decide what a request does now. Only one caller per cool-down gets
    /// [`Admission::Probe`]; the others get [`Admission::Fallback`] until the
    /// probe reports (or, should it never report, until another cool-down
    /// has passed).
    pub fn admit(&self) -> Admission {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *g {
            Inner::Closed { .. } => Admission::Allow,
            Inner::Open { until } if now < until => Admission::Fallback,
            Inner::HalfOpen { since } if now < since + self.cooldown => Admission::Fallback,
            Inner::Open { .. } | Inner::HalfOpen { .. } => {
                *g = Inner::HalfOpen { since: now };
                Admission::Probe
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
            Inner::HalfOpen { .. } | Inner::Open { .. } => true,
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
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// What a queued entry writes when it is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingKind {
    /// A snapshot: `snapshot:<epoch>` and its index entry, and `latest`
    /// unless Redis holds a newer one.
    Snapshot {
        /// Its epoch second.
        epoch: u64,
    },
    /// A heartbeat: `latest` only, unless Redis holds a newer one.
    Latest,
}

/// A save queued in the fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// What it writes.
    pub kind: PendingKind,
    /// Unix ms at which it was saved (becomes `latest:at`).
    pub at_ms: u64,
    /// Its file.
    pub path: PathBuf,
}

/// Parse a pending file name: `<epoch>-<ms>.rsnp`, `latest-<ms>.rsnp`, or
/// the older `<epoch>.rsnp` (saved at the start of its epoch second).
fn parse_pending_name(name: &str) -> Option<(PendingKind, u64)> {
    let stem = name.strip_suffix(".rsnp")?;
    let digits = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if let Some(ms) = stem.strip_prefix("latest-") {
        return Some((PendingKind::Latest, digits(ms)?));
    }
    match stem.split_once('-') {
        Some((epoch, ms)) => Some((
            PendingKind::Snapshot {
                epoch: digits(epoch)?,
            },
            digits(ms)?,
        )),
        None => {
            let epoch = digits(stem)?;
            Some((PendingKind::Snapshot { epoch }, epoch.saturating_mul(1000)))
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

    /// Queue a snapshot save of `epoch`, made at `at_ms` (Unix ms), for replay.
    pub fn push_snapshot(&self, epoch: u64, at_ms: u64, bytes: &[u8]) -> Result<()> {
        self.write_atomic(
            &self
                .dir
                .join("pending")
                .join(format!("{epoch:020}-{at_ms:020}.rsnp")),
            bytes,
        )
    }

    /// Queue a heartbeat's new `latest` (no history entry), made at `at_ms`,
    /// for replay. Older queued heartbeats are removed: replaying them could
    /// only be overwritten by this one.
    pub fn push_latest(&self, at_ms: u64, bytes: &[u8]) -> Result<()> {
        self.write_atomic(
            &self
                .dir
                .join("pending")
                .join(format!("latest-{at_ms:020}.rsnp")),
            bytes,
        )?;
        for e in self.pending()? {
            if e.kind == PendingKind::Latest && e.at_ms < at_ms {
                self.remove(&e.path)?;
            }
        }
        Ok(())
    }

    /// Queued saves, in the order they were made (by `at_ms`).
    pub fn pending(&self) -> Result<Vec<PendingEntry>> {
        let p = self.dir.join("pending");
        let mut out = Vec::new();
        let rd = fs::read_dir(&p).map_err(|e| io_err("listing", &p, e))?;
        for entry in rd.flatten() {
            let name = entry.file_name();
            if let Some((kind, at_ms)) = name.to_str().and_then(parse_pending_name) {
                out.push(PendingEntry {
                    kind,
                    at_ms,
                    path: entry.path(),
                });
            }
        }
        out.sort_by(|a, b| (a.at_ms, &a.path).cmp(&(b.at_ms, &b.path)));
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
    fn one_probe_per_cool_down() {
        let b = CircuitBreaker::new(1, Duration::from_millis(50));
        assert_eq!(b.admit(), Admission::Allow);
        b.on_failure();
        assert_eq!(b.admit(), Admission::Fallback);
        std::thread::sleep(Duration::from_millis(60));
        // One caller probes; the others use the fallback meanwhile.
        assert_eq!(b.admit(), Admission::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(), Admission::Fallback);
        assert!(!b.allow());
        // A probe that never reports does not block recovery: after another
        // cool-down, another probe.
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(), Admission::Probe);
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admission::Fallback);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(), Admission::Probe);
        b.on_success();
        assert_eq!(b.admit(), Admission::Allow);
    }

    #[test]
    fn fallback_files() {
        let d = tempfile::tempdir().unwrap();
        let f = LocalFallback::open(d.path(), "a/b{c}").unwrap();
        assert!(f.dir().starts_with(d.path()));
        assert_eq!(f.read_latest().unwrap(), None);
        f.write_latest(b"x").unwrap();
        assert_eq!(f.read_latest().unwrap(), Some(b"x".to_vec()));
        f.push_snapshot(20, 20_500, b"b").unwrap();
        f.push_snapshot(3, 3_000, b"a").unwrap();
        f.push_latest(21_000, b"c").unwrap();
        // A file of an earlier version: saved at the start of its epoch.
        fs::write(
            f.dir().join("pending").join(format!("{:020}.rsnp", 4)),
            b"d",
        )
        .unwrap();
        fs::write(f.dir().join("pending").join(".tmp-1-2"), b"x").unwrap();
        let p = f.pending().unwrap();
        let kinds: Vec<_> = p.iter().map(|x| (x.kind, x.at_ms)).collect();
        assert_eq!(
            kinds,
            vec![
                (PendingKind::Snapshot { epoch: 3 }, 3_000),
                (PendingKind::Snapshot { epoch: 4 }, 4_000),
                (PendingKind::Snapshot { epoch: 20 }, 20_500),
                (PendingKind::Latest, 21_000),
            ]
        );
        // A newer heartbeat replaces the queued one.
        f.push_latest(22_000, b"e").unwrap();
        let p = f.pending().unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[3].at_ms, 22_000);
        f.remove(&p[0].path).unwrap();
        assert_eq!(f.pending().unwrap().len(), 3);
        assert_eq!(file_safe(".."), "%2E.");
        assert_eq!(parse_pending_name("1-x.rsnp"), None);
        assert_eq!(parse_pending_name("latest-.rsnp"), None);
        assert_eq!(parse_pending_name("+1.rsnp"), None);
    }
}
