//! [`InProcessConfig`]: in memory or in a data directory, from a `redsnap://` URL
//! or built in code, with `redsnap serve`'s persistence settings.

use std::path::PathBuf;
use std::time::Duration;

use redsnap_persist::{DurableConfig, FsyncPolicy};

use crate::error::{Error, Result};

/// How the in-process backend keeps its data: in memory only, or in a data
/// directory with `redsnap serve`'s persistence settings.
///
/// ```
/// use redsnap::inproc::{FsyncPolicy, InProcessConfig};
/// let cfg = InProcessConfig::dir("./data").appendfsync(FsyncPolicy::Always);
/// assert_eq!(cfg, InProcessConfig::from_url("redsnap:///./data?appendfsync=always").unwrap());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProcessConfig {
    /// The persistence settings; `None` keeps everything in memory (`redsnap://`).
    pub durable: Option<DurableConfig>,
}

impl InProcessConfig {
    /// Memory only: the data lives as long as the store.
    pub fn memory() -> Self {
        InProcessConfig { durable: None }
    }

    /// Durable, in `dir`, with `redsnap serve`'s defaults.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        InProcessConfig {
            durable: Some(DurableConfig::new(dir)),
        }
    }

    /// Set `appendfsync` (no effect in memory).
    pub fn appendfsync(mut self, p: FsyncPolicy) -> Self {
        if let Some(d) = &mut self.durable {
            d.appendfsync = p;
        }
        self
    }

    /// Turn the append log on or off (`appendonly`; no effect in memory).
    pub fn appendonly(mut self, on: bool) -> Self {
        if let Some(d) = &mut self.durable {
            d.appendonly = on;
        }
        self
    }

    /// Set the save points `(seconds, changes)` (`save`; no effect in memory).
    pub fn save_points(mut self, points: Vec<(u64, u64)>) -> Self {
        if let Some(d) = &mut self.durable {
            d.save_points = points;
        }
        self
    }

    /// Set `snapshot-interval` (zero: off; no effect in memory).
    pub fn snapshot_interval(mut self, every: Duration) -> Self {
        if let Some(d) = &mut self.durable {
            d.snapshot_interval_secs = every.as_secs();
        }
        self
    }

    /// Take (or not) a final snapshot at shutdown (`snapshot-on-shutdown`).
    pub fn snapshot_on_shutdown(mut self, on: bool) -> Self {
        if let Some(d) = &mut self.durable {
            d.snapshot_on_shutdown = on;
        }
        self
    }

    /// Parse `redsnap://` (memory) or `redsnap:///path/to/dir` (durable; an absolute
    /// path, or `redsnap:///./rel` and `redsnap://./rel` for one relative to the
    /// working directory), with `redsnap serve`'s setting names as query parameters:
    /// `appendonly`, `appendfsync`, `save` (`save=900+1+300+10`, `save=` for none),
    /// `snapshot-interval`, `snapshot-on-shutdown`, `restore-on-startup`,
    /// `snapshot-incremental`, `aof-load-truncated`, `load-corrupt`,
    /// `auto-aof-rewrite-percentage`, `auto-aof-rewrite-min-size`,
    /// `stop-writes-on-bgsave-error`.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |why: String| Error::Config(format!("{url:?}: {why}"));
        let rest = url
            .trim()
            .strip_prefix("redsnap:")
            .ok_or_else(|| bad("expected redsnap:// or redsnap:///path".into()))?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let path = decode(path).map_err(bad)?;
        let path = if path.starts_with("/./") || path.starts_with("/../") {
            path[1..].to_string()
        } else {
            path
        };
        let mut cfg = if path.is_empty() || path == "/" {
            InProcessConfig::memory()
        } else if path.starts_with('/') || path.starts_with('.') {
            InProcessConfig::dir(path)
        } else {
            return Err(bad(
                "a host is not allowed: use redsnap:///absolute/path or redsnap:///./relative/path"
                    .into(),
            ));
        };
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k).map_err(&bad)?, decode(v).map_err(&bad)?);
            let Some(d) = cfg.durable.as_mut() else {
                return Err(bad(format!(
                    "{k}: persistence settings need a data directory (redsnap:///path)"
                )));
            };
            set(d, &k, v.trim()).map_err(&bad)?;
        }
        Ok(cfg)
    }

    /// The URL naming this configuration's target (no settings), for logs.
    pub(crate) fn target(&self) -> String {
        match &self.durable {
            None => "redsnap:// (in memory)".into(),
            Some(d) => format!("redsnap://{}", d.dir.display()),
        }
    }
}

/// Percent-decoding (`+` is a space, as in a query string).
fn decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

fn yes_no(k: &str, v: &str) -> std::result::Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(format!("{k} must be yes or no, got {v:?}")),
    }
}

fn number(k: &str, v: &str) -> std::result::Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{k} must be a non-negative integer, got {v:?}"))
}

/// A size in bytes with Redis's suffixes (`64mb`, `1gb`, `100k`).
fn bytes_size(k: &str, v: &str) -> std::result::Result<u64, String> {
    let l = v.to_ascii_lowercase();
    let (digits, mult) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(s, m)| l.strip_suffix(s).map(|d| (d.to_string(), *m)))
    .unwrap_or((l.clone(), 1));
    number(k, &digits)?
        .checked_mul(mult)
        .ok_or_else(|| format!("{k} is too large: {v:?}"))
}

fn set(d: &mut DurableConfig, k: &str, v: &str) -> std::result::Result<(), String> {
    match k {
        "appendonly" => d.appendonly = yes_no(k, v)?,
        "appendfsync" => {
            d.appendfsync = FsyncPolicy::parse(v)
                .ok_or_else(|| format!("appendfsync must be always, everysec or no, got {v:?}"))?
        }
        "save" => {
            let nums: Vec<&str> = v.split_whitespace().collect();
            if !nums.len().is_multiple_of(2) {
                return Err(format!(
                    "save takes pairs of seconds and changes, got {v:?}"
                ));
            }
            d.save_points = nums
                .chunks(2)
                .map(|p| Ok((number(k, p[0])?, number(k, p[1])?)))
                .collect::<std::result::Result<_, String>>()?;
        }
        "snapshot-interval" => d.snapshot_interval_secs = number(k, v)?,
        "snapshot-on-shutdown" => d.snapshot_on_shutdown = yes_no(k, v)?,
        "restore-on-startup" => d.restore_on_startup = yes_no(k, v)?,
        "snapshot-incremental" => d.snapshot_incremental = yes_no(k, v)?,
        "aof-load-truncated" => d.aof_load_truncated = yes_no(k, v)?,
        "load-corrupt" => d.load_corrupt = yes_no(k, v)?,
        "auto-aof-rewrite-percentage" => d.auto_aof_rewrite_percentage = number(k, v)?,
        "auto-aof-rewrite-min-size" => d.auto_aof_rewrite_min_size = bytes_size(k, v)?,
        "stop-writes-on-bgsave-error" => d.stop_writes_on_bgsave_error = yes_no(k, v)?,
        _ => return Err(format!("unknown setting {k:?}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_of(url: &str) -> PathBuf {
        InProcessConfig::from_url(url).unwrap().durable.unwrap().dir
    }

    #[test]
    fn urls() {
        assert_eq!(
            InProcessConfig::from_url("redsnap://").unwrap(),
            InProcessConfig::memory()
        );
        assert_eq!(
            InProcessConfig::from_url("redsnap:").unwrap(),
            InProcessConfig::memory()
        );
        assert_eq!(
            dir_of("redsnap:///var/lib/agent"),
            PathBuf::from("/var/lib/agent")
        );
        assert_eq!(dir_of("redsnap:///./data"), PathBuf::from("./data"));
        assert_eq!(dir_of("redsnap://./data"), PathBuf::from("./data"));
        assert_eq!(dir_of("redsnap:///../up"), PathBuf::from("../up"));
        assert_eq!(dir_of("redsnap:///a%20b"), PathBuf::from("/a b"));
        let d = InProcessConfig::from_url(
            "redsnap:///d?appendfsync=always&save=900+1+300+10&snapshot-interval=60&auto-aof-rewrite-min-size=1mb&snapshot-on-shutdown=no&appendonly=no",
        )
        .unwrap()
        .durable
        .unwrap();
        assert_eq!(d.appendfsync, FsyncPolicy::Always);
        assert_eq!(d.save_points, vec![(900, 1), (300, 10)]);
        assert_eq!(d.snapshot_interval_secs, 60);
        assert_eq!(d.auto_aof_rewrite_min_size, 1 << 20);
        assert!(!d.snapshot_on_shutdown);
        assert!(!d.appendonly);
        let none = InProcessConfig::from_url("redsnap:///d?save=").unwrap();
        assert!(none.durable.unwrap().save_points.is_empty());
        // The server's defaults.
        let def = DurableConfig::new("/d");
        assert_eq!(
            InProcessConfig::from_url("redsnap:///d").unwrap().durable,
            Some(def.clone())
        );
        assert_eq!(def.appendfsync, FsyncPolicy::EverySec);
        assert!(def.appendonly && def.snapshot_on_shutdown && def.restore_on_startup);
        for bad in [
            "redis://x",
            "redsnap://?save=1+1",
            "redsnap:///d?appendfsync=never",
            "redsnap:///d?bogus=1",
            "redsnap:///d?save=1",
            "redsnap:///d?snapshot-interval=-1",
            "redsnap:///d%zz",
            "redsnap://host/path",
        ] {
            assert!(
                matches!(InProcessConfig::from_url(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }
}
