//! Server configuration: directives named like redis-server's, settable by flag, by a
//! config file in redis.conf syntax, and at runtime with CONFIG SET.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int(i64, i64),
    Memory,
    Enum(&'static [&'static str]),
    Str,
    Save,
    /// Several words kept verbatim (bind, client-output-buffer-limit).
    Words,
    /// Keyspace notification classes (`notify-keyspace-events`), kept in Redis's
    /// rendering (`KA` reads back as `AK`).
    Events,
    /// Percentiles between 0 and 100, separated by spaces
    /// (latency-tracking-info-percentiles).
    Percentiles,
}

struct Directive {
    name: &'static str,
    aliases: &'static [&'static str],
    kind: Kind,
    default: &'static str,
    /// Whether CONFIG SET may change it at runtime.
    mutable: bool,
}

const fn d(name: &'static str, kind: Kind, default: &'static str, mutable: bool) -> Directive {
    Directive {
        name,
        aliases: &[],
        kind,
        default,
        mutable,
    }
}

const fn da(
    name: &'static str,
    aliases: &'static [&'static str],
    kind: Kind,
    default: &'static str,
    mutable: bool,
) -> Directive {
    Directive {
        name,
        aliases,
        kind,
        default,
        mutable,
    }
}

const MAXI: i64 = i64::MAX;

const FSYNC: &[&str] = &["always", "everysec", "no"];
const POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
];
const TLS_AUTH: &[&str] = &["yes", "no", "optional"];
const LOGLEVEL: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];

static DIRECTIVES: &[Directive] = &[
    d("bind", Kind::Words, "127.0.0.1 -::1", false),
    d("port", Kind::Int(0, 65535), "6379", false),
    d("requirepass", Kind::Str, "", true),
    d("dir", Kind::Str, "./data", false),
    d("maxclients", Kind::Int(1, 1_000_000), "10000", true),
    d("databases", Kind::Int(1, 1024), "16", false),
    d("timeout", Kind::Int(0, i32::MAX as i64), "0", true),
    d("tcp-keepalive", Kind::Int(0, i32::MAX as i64), "300", true),
    d("tcp-backlog", Kind::Int(0, i32::MAX as i64), "511", false),
    d("protected-mode", Kind::Bool, "yes", true),
    d("daemonize", Kind::Bool, "no", false),
    d("loglevel", Kind::Enum(LOGLEVEL), "notice", true),
    d("logfile", Kind::Str, "", false),
    d("save", Kind::Save, "3600 1 300 100 60 10000", true),
    d("dbfilename", Kind::Str, "dump.rdb", false),
    d("appendonly", Kind::Bool, "yes", true),
    d("appendfsync", Kind::Enum(FSYNC), "everysec", true),
    d("appendfilename", Kind::Str, "appendonly.aof", false),
    d("appenddirname", Kind::Str, "appendonlydir", false),
    d("aof-load-truncated", Kind::Bool, "yes", true),
    d("aof-use-rdb-preamble", Kind::Bool, "yes", true),
    d(
        "auto-aof-rewrite-percentage",
        Kind::Int(0, i32::MAX as i64),
        "100",
        true,
    ),
    d("auto-aof-rewrite-min-size", Kind::Memory, "64mb", true),
    d("stop-writes-on-bgsave-error", Kind::Bool, "yes", true),
    d("snapshot-interval", Kind::Int(0, MAXI), "300", true),
    d("snapshot-on-shutdown", Kind::Bool, "yes", true),
    // Read once, at startup (CONFIG SET cannot act on it: refused as immutable).
    d("restore-on-startup", Kind::Bool, "yes", false),
    // Write only what changed since the previous snapshot (falls back to a full one).
    d("snapshot-incremental", Kind::Bool, "yes", true),
    d("load-corrupt", Kind::Bool, "no", false),
    d("proto-max-bulk-len", Kind::Memory, "512mb", true),
    d("client-query-buffer-limit", Kind::Memory, "1gb", true),
    d(
        "client-output-buffer-limit",
        Kind::Words,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        true,
    ),
    d("maxmemory", Kind::Memory, "0", true),
    d("maxmemory-policy", Kind::Enum(POLICIES), "noeviction", true),
    d("maxmemory-samples", Kind::Int(1, 64), "5", true),
    // redsnap has no replicas: with both set above 0, writes are refused (NOREPLICAS).
    da(
        "min-replicas-to-write",
        &["min-slaves-to-write"],
        Kind::Int(0, i32::MAX as i64),
        "0",
        true,
    ),
    da(
        "min-replicas-max-lag",
        &["min-slaves-max-lag"],
        Kind::Int(0, i32::MAX as i64),
        "10",
        true,
    ),
    da(
        "busy-reply-threshold",
        &["lua-time-limit"],
        Kind::Int(0, MAXI),
        "5000",
        true,
    ),
    da(
        "hash-max-listpack-entries",
        &["hash-max-ziplist-entries"],
        Kind::Int(0, MAXI),
        "128",
        true,
    ),
    da(
        "hash-max-listpack-value",
        &["hash-max-ziplist-value"],
        Kind::Int(0, MAXI),
        "64",
        true,
    ),
    d("set-max-intset-entries", Kind::Int(0, MAXI), "512", true),
    da(
        "zset-max-listpack-entries",
        &["zset-max-ziplist-entries"],
        Kind::Int(0, MAXI),
        "128",
        true,
    ),
    da(
        "zset-max-listpack-value",
        &["zset-max-ziplist-value"],
        Kind::Int(0, MAXI),
        "64",
        true,
    ),
    da(
        "list-max-listpack-size",
        &["list-max-ziplist-size"],
        Kind::Int(i64::MIN, MAXI),
        "-2",
        true,
    ),
    d("list-compress-depth", Kind::Int(0, MAXI), "0", true),
    d("hz", Kind::Int(1, 500), "10", true),
    da(
        "repl-ping-replica-period",
        &["repl-ping-slave-period"],
        Kind::Int(1, i32::MAX as i64),
        "10",
        true,
    ),
    d("notify-keyspace-events", Kind::Events, "", true),
    d("lazyfree-lazy-user-del", Kind::Bool, "no", true),
    d("lazyfree-lazy-user-flush", Kind::Bool, "no", true),
    d(
        "slowlog-log-slower-than",
        Kind::Int(-1, MAXI),
        "10000",
        true,
    ),
    d("slowlog-max-len", Kind::Int(0, MAXI), "128", true),
    d("latency-monitor-threshold", Kind::Int(0, MAXI), "0", true),
    d("latency-tracking", Kind::Bool, "yes", true),
    d(
        "latency-tracking-info-percentiles",
        Kind::Percentiles,
        "50 99 99.9",
        true,
    ),
    d("tls-port", Kind::Int(0, 65535), "0", false),
    d("tls-cert-file", Kind::Str, "", false),
    d("tls-key-file", Kind::Str, "", false),
    d("tls-ca-cert-file", Kind::Str, "", false),
    d("tls-auth-clients", Kind::Enum(TLS_AUTH), "yes", false),
    d("io-threads", Kind::Int(1, 128), "1", false),
    d("appendfsync-no-rewrite", Kind::Bool, "no", true),
    da("no-appendfsync-on-rewrite", &[], Kind::Bool, "no", true),
    d("rdbcompression", Kind::Bool, "yes", false),
    d("rdbchecksum", Kind::Bool, "yes", false),
    d("metrics-port", Kind::Int(0, 65535), "0", false),
    // Redis defaults to "no"; redsnap allows DEBUG from loopback clients by default.
    d(
        "enable-debug-command",
        Kind::Enum(&["yes", "no", "local"]),
        "local",
        false,
    ),
];

/// Directives whose feature is not built: only their default value is accepted (at
/// startup and by CONFIG SET), so that no setting answers OK and changes nothing.
const NOT_BUILT: &[(&str, &str)] = &[
    (
        "lazyfree-lazy-user-del",
        "redsnap frees deleted values on the calling thread; lazy freeing for DEL is not built",
    ),
    (
        "lazyfree-lazy-user-flush",
        "lazy freeing for FLUSHALL/FLUSHDB without ASYNC is not built",
    ),
];

/// Refuses a value other than the default for a directive whose feature is not built.
fn check_built(d: &Directive, value: &str) -> Result<(), String> {
    match NOT_BUILT.iter().find(|(n, _)| *n == d.name) {
        Some((_, why)) if value != d.default => {
            Err(format!("{why} (only '{}' is accepted)", d.default))
        }
        _ => Ok(()),
    }
}

/// Directives CONFIG SET accepts that have no effect in redsnap by design, with the
/// reason: each only tunes a memory representation redsnap does not have, and nothing
/// a client can observe depends on it. (Refusing them would break clients and test
/// suites that set them; see ARCHITECTURE.md, known deviations.)
pub const NO_EFFECT_BY_DESIGN: &[(&str, &str)] = &[
    (
        "list-compress-depth",
        "lists are not stored as compressed quicklist nodes",
    ),
    (
        "aof-use-rdb-preamble",
        "the append log has its own record format and always follows a snapshot",
    ),
];

fn find(name: &str) -> Option<&'static Directive> {
    let lower = name.to_ascii_lowercase();
    DIRECTIVES
        .iter()
        .find(|d| d.name == lower || d.aliases.contains(&lower.as_str()))
}

/// Parses a memory amount like Redis's `memtoull`: `1gb`, `64mb`, `100k`, `512`.
pub fn parse_memory(s: &str) -> Option<u64> {
    let l = s.to_ascii_lowercase();
    let (num, mul) = if let Some(n) = l.strip_suffix("gb") {
        (n, 1u64 << 30)
    } else if let Some(n) = l.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = l.strip_suffix("kb") {
        (n, 1 << 10)
    } else if let Some(n) = l.strip_suffix('g') {
        (n, 1_000_000_000)
    } else if let Some(n) = l.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = l.strip_suffix('k') {
        (n, 1000)
    } else if let Some(n) = l.strip_suffix('b') {
        (n, 1)
    } else {
        (l.as_str(), 1)
    };
    if num.is_empty() || !num.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// A configuration error, with the file line when it came from a file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}:{line}: {msg}\n>>> '{text}'")]
    File {
        path: String,
        line: usize,
        text: String,
        msg: String,
    },
    #[error("cannot read config file {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

/// The live configuration.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
}

impl Default for Config {
    fn default() -> Self {
        let values = DIRECTIVES
            .iter()
            .map(|d| {
                (
                    d.name,
                    Config::validate(d, d.default).unwrap_or_else(|_| d.default.to_string()),
                )
            })
            .collect();
        Config { values }
    }
}

impl Config {
    /// Sets a directive from its words (`save 900 1 300 10`), validating the value.
    pub fn set(&mut self, name: &str, args: &[String]) -> Result<(), String> {
        let d = find(name)
            .ok_or_else(|| format!("Bad directive or wrong number of arguments ('{name}')"))?;
        let value = match d.kind {
            Kind::Words | Kind::Save | Kind::Percentiles => args.join(" "),
            _ => {
                if args.len() != 1 {
                    return Err(format!("wrong number of arguments for '{}'", d.name));
                }
                args[0].clone()
            }
        };
        let value = Self::validate(d, &value)?;
        check_built(d, &value)?;
        self.values.insert(d.name, value);
        Ok(())
    }

    /// Runtime change (CONFIG SET): refuses immutable directives.
    pub fn set_runtime(&mut self, name: &str, value: &str) -> Result<(), String> {
        let d = find(name).ok_or_else(|| {
            format!("Unknown option or number of arguments for CONFIG SET - '{name}'")
        })?;
        if !d.mutable {
            return Err(format!("CONFIG SET failed (possibly related to argument '{}') - can't set immutable config", d.name));
        }
        let v = Self::validate(d, value)
            .and_then(|v| check_built(d, &v).map(|()| v))
            .map_err(|e| {
                format!(
                    "CONFIG SET failed (possibly related to argument '{}') - {e}",
                    d.name
                )
            })?;
        self.values.insert(d.name, v);
        Ok(())
    }

    fn validate(d: &Directive, value: &str) -> Result<String, String> {
        match d.kind {
            Kind::Bool => match value.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok("yes".into()),
                "no" | "false" => Ok("no".into()),
                _ => Err("argument must be 'yes' or 'no'".into()),
            },
            Kind::Int(min, max) => {
                let v: i64 = value
                    .parse()
                    .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
                if v < min || v > max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                Ok(v.to_string())
            }
            Kind::Memory => {
                let v = parse_memory(value)
                    .ok_or_else(|| "argument must be a memory value".to_string())?;
                Ok(v.to_string())
            }
            Kind::Enum(opts) => {
                let l = value.to_ascii_lowercase();
                if opts.contains(&l.as_str()) {
                    Ok(l)
                } else {
                    Err("argument(s) must be one of the following: ".to_string() + &opts.join(", "))
                }
            }
            Kind::Str | Kind::Words => Ok(value.to_string()),
            // Stored exactly (`KEAn` keeps its `n`); CONFIG GET shows Redis's
            // rendering (`AKE`): see `matching`.
            Kind::Events => redsnap_engine::notify::parse(value.as_bytes())
                .map(redsnap_engine::notify::render_exact)
                .ok_or_else(|| redsnap_engine::notify::ERR_INVALID_CLASS.to_string()),
            Kind::Percentiles => {
                let mut out = Vec::new();
                for w in value.split_whitespace() {
                    let p = redsnap_engine::num::parse_f64(w.as_bytes())
                        .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                    if !(0.0..=100.0).contains(&p) {
                        return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into());
                    }
                    out.push(crate::commands::info::percentile_text(p));
                }
                Ok(out.join(" "))
            }
            Kind::Save => {
                let words: Vec<&str> = value.split_whitespace().collect();
                if words.len() == 1 && words[0].is_empty() || words.is_empty() {
                    return Ok(String::new());
                }
                if !words.len().is_multiple_of(2) || words.iter().any(|w| w.parse::<u64>().is_err())
                {
                    return Err("Invalid save parameters".into());
                }
                Ok(words.join(" "))
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let d = find(name)?;
        self.values.get(d.name).map(|s| s.as_str())
    }

    pub fn str(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_string()
    }

    pub fn bool(&self, name: &str) -> bool {
        self.get(name) == Some("yes")
    }

    pub fn int(&self, name: &str) -> i64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    pub fn u64(&self, name: &str) -> u64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// A list of percentiles (latency-tracking-info-percentiles).
    pub fn percentiles(&self, name: &str) -> Vec<f64> {
        self.get(name)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    /// Redis-style save points: (seconds, changes) pairs.
    pub fn save_points(&self) -> Vec<(u64, u64)> {
        let v: Vec<u64> = self
            .str("save")
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        v.chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0], c[1]))
            .collect()
    }

    /// Directives whose name matches the glob pattern, for CONFIG GET.
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for d in DIRECTIVES {
            let matched = redsnap_engine::glob::glob_match(pattern, d.name.as_bytes(), true)
                || d.aliases.iter().any(|a| {
                    redsnap_engine::glob::glob_match(pattern, a.as_bytes(), true)
                        && !pattern.contains(&b'*')
                });
            if matched {
                let mut v = self.values.get(d.name).cloned().unwrap_or_default();
                if d.kind == Kind::Events {
                    let flags = redsnap_engine::notify::parse(v.as_bytes()).unwrap_or(0);
                    v = redsnap_engine::notify::render(flags);
                }
                out.push((d.name, v));
            }
        }
        out
    }

    /// Reads directives from a redis.conf-style file, on top of the defaults.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.display().to_string(),
            err,
        })?;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |msg: String| ConfigError::File {
                path: path.display().to_string(),
                line: i + 1,
                text: raw.to_string(),
                msg,
            };
            let words = crate::resp::split_args(line.as_bytes())
                .ok_or_else(|| err("Unbalanced quotes in configuration line".into()))?;
            let words: Vec<String> = words
                .into_iter()
                .map(|w| String::from_utf8_lossy(&w).into_owned())
                .collect();
            let Some((name, args)) = words.split_first() else {
                continue;
            };
            if args.is_empty()
                && !matches!(
                    find(name).map(|d| d.kind),
                    Some(Kind::Save) | Some(Kind::Str)
                )
            {
                return Err(err(format!("wrong number of arguments for '{name}'")));
            }
            self.set(name, args).map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("64mb"), Some(64 << 20));
        assert_eq!(parse_memory("1GB"), Some(1 << 30));
        assert_eq!(parse_memory("100k"), Some(100_000));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("x"), None);
        assert_eq!(parse_memory("-1"), None);
    }

    #[test]
    fn file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.conf");
        std::fs::write(
            &p,
            "port 7000\n# comment\nmaxclients 10\nbogus-directive 1\n",
        )
        .unwrap();
        let mut c = Config::default();
        let e = c.load_file(&p).unwrap_err().to_string();
        assert!(e.contains(":4:"), "{e}");
        assert!(e.contains("bogus-directive"), "{e}");
        assert_eq!(c.int("port"), 7000);
        std::fs::write(&p, "port notanumber\n").unwrap();
        let e = Config::default().load_file(&p).unwrap_err().to_string();
        assert!(e.contains(":1:") && e.contains("integer"), "{e}");
    }

    #[test]
    fn notify_keyspace_events() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.conf");
        std::fs::write(&p, "notify-keyspace-events \"KEA\"\n").unwrap();
        let mut c = Config::default();
        assert_eq!(c.str("notify-keyspace-events"), "");
        c.load_file(&p).unwrap();
        // CONFIG GET shows Redis's rendering.
        let shown = |c: &Config| c.matching(b"notify-keyspace-events")[0].1.clone();
        assert_eq!(shown(&c), "AKE");
        c.set_runtime("notify-keyspace-events", "Elg").unwrap();
        assert_eq!(shown(&c), "glE");
        // 'A' hides 'n' when shown, not in effect.
        c.set_runtime("notify-keyspace-events", "KAn").unwrap();
        assert_eq!(shown(&c), "AK");
        assert!(c.str("notify-keyspace-events").contains('n'));
        c.set_runtime("notify-keyspace-events", "Elg").unwrap();
        let e = c.set_runtime("notify-keyspace-events", "Kw").unwrap_err();
        assert_eq!(
            e,
            "CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        );
        assert_eq!(shown(&c), "glE");
        std::fs::write(&p, "notify-keyspace-events Kz9\n").unwrap();
        let e = Config::default().load_file(&p).unwrap_err().to_string();
        assert!(
            e.contains(":1:") && e.contains("Invalid event class"),
            "{e}"
        );
    }

    #[test]
    fn save_points_and_runtime() {
        let mut c = Config::default();
        c.set(
            "save",
            &["900".into(), "1".into(), "60".into(), "10000".into()],
        )
        .unwrap();
        assert_eq!(c.save_points(), vec![(900, 1), (60, 10000)]);
        c.set("save", &["".into()]).unwrap();
        assert!(c.save_points().is_empty());
        assert!(c.set_runtime("port", "1").is_err());
        c.set_runtime("maxmemory", "1mb").unwrap();
        assert_eq!(c.u64("maxmemory"), 1 << 20);
        assert_eq!(c.matching(b"maxmemory*").len(), 3);
    }
}
