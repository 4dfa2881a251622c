//! Server configuration: directives named like redis-server's, settable by flag, by a
//! config file in redis.conf syntax, and at runtime with CONFIG SET (several at once,
//! all or nothing, as Redis's `configSetCommand`). CONFIG GET and CONFIG REWRITE
//! read the same table. Values are kept in the form CONFIG GET shows (memory in
//! bytes, enums by their first name), so that every value CONFIG GET returns is
//! accepted back by CONFIG SET.
//!
//! The table here holds the directives redsnap acts on and its own ones;
//! `redis_params.rs` holds the rest of Redis 7.0's, each with what redsnap does
//! with it (no effect by design, or only its default accepted).

mod redis_params;
mod rewrite;

pub use redis_params::NO_EFFECT_BY_DESIGN;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a number is written (Redis's numeric config flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fmt {
    Int,
    /// `1gb`, `64mb`, `100k` (shown in bytes).
    Mem,
    /// A memory value or a percentage (`10%`, kept negative as in Redis).
    MemPercent,
    Octal,
}

/// A numeric directive: bounds and format, as Redis's `createXConfig` rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Num {
    min: i128,
    max: i128,
    /// Bounds are checked on the unsigned value (Redis's unsigned types).
    unsigned: bool,
    fmt: Fmt,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Bool,
    Num(Num),
    /// Names and their values; several names may share a value (the first one is
    /// what CONFIG GET shows).
    Enum(&'static [(&'static str, u8)]),
    /// Several enum names at once, as bit flags (`shutdown-on-sigterm nosave now`);
    /// value 0 is the name shown when no flag is set.
    Flags(&'static [(&'static str, u8)]),
    Str,
    Save,
    /// Listening addresses (`bind`).
    Bind,
    /// `client-output-buffer-limit`: per client class hard, soft, soft seconds.
    ObufLimits,
    /// `oom-score-adj-values`: three integers.
    OomValues,
    /// `latency-tracking-info-percentiles`: doubles.
    Percentiles,
    /// Keyspace notification classes (`notify-keyspace-events`), stored exactly
    /// (`KEAn` keeps its `n`) and shown in Redis's rendering (`KA` reads back as `AK`).
    Events,
    /// `replicaof host port` ("" on a master).
    ReplicaOf,
}

const fn num(min: i128, max: i128, unsigned: bool, fmt: Fmt) -> Kind {
    Kind::Num(Num {
        min,
        max,
        unsigned,
        fmt,
    })
}
/// A signed integer directive.
pub(crate) const fn int(min: i128, max: i128) -> Kind {
    num(min, max, false, Fmt::Int)
}
/// An unsigned integer directive.
pub(crate) const fn uint(min: i128, max: i128) -> Kind {
    num(min, max, true, Fmt::Int)
}
/// A memory directive (signed type in Redis).
pub(crate) const fn mem(min: i128, max: i128) -> Kind {
    num(min, max, false, Fmt::Mem)
}
/// A memory directive of an unsigned type in Redis.
pub(crate) const fn umem(min: i128, max: i128) -> Kind {
    num(min, max, true, Fmt::Mem)
}

pub(crate) const INT_MAX: i128 = i32::MAX as i128;
pub(crate) const INT_MIN: i128 = i32::MIN as i128;
pub(crate) const UINT_MAX: i128 = u32::MAX as i128;
pub(crate) const LONG_MAX: i128 = i64::MAX as i128;
pub(crate) const ULLONG_MAX: i128 = u64::MAX as i128;

pub(crate) struct Directive {
    pub(crate) name: &'static str,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) kind: Kind,
    pub(crate) default: &'static str,
    /// Whether CONFIG SET may change it at runtime.
    pub(crate) mutable: bool,
    /// Left out of CONFIG GET patterns (only its exact name finds it), as Redis's
    /// HIDDEN_CONFIG.
    pub(crate) hidden: bool,
}

pub(crate) const fn d(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    mutable: bool,
) -> Directive {
    Directive {
        name,
        aliases: &[],
        kind,
        default,
        mutable,
        hidden: false,
    }
}

pub(crate) const fn da(
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
        hidden: false,
    }
}

pub(crate) const fn hidden(mut d: Directive) -> Directive {
    d.hidden = true;
    d
}

const FSYNC: &[(&str, u8)] = &[("everysec", 0), ("always", 1), ("no", 2)];
const POLICIES: &[(&str, u8)] = &[
    ("volatile-lru", 0),
    ("volatile-lfu", 1),
    ("volatile-random", 2),
    ("volatile-ttl", 3),
    ("allkeys-lru", 4),
    ("allkeys-lfu", 5),
    ("allkeys-random", 6),
    ("noeviction", 7),
];
const TLS_AUTH: &[(&str, u8)] = &[("no", 0), ("yes", 1), ("optional", 2)];
const LOGLEVEL: &[(&str, u8)] = &[
    ("debug", 0),
    ("verbose", 1),
    ("notice", 2),
    ("warning", 3),
    ("nothing", 4),
];
const LOG_FORMAT: &[(&str, u8)] = &[("text", 0), ("json", 1)];
const ACL_PUBSUB_DEFAULT: &[(&str, u8)] = &[("allchannels", 1), ("resetchannels", 0)];
pub(crate) const PROTECTED_ACTION: &[(&str, u8)] = &[("no", 0), ("yes", 1), ("local", 2)];

static DIRECTIVES: &[Directive] = &[
    d("bind", Kind::Bind, "127.0.0.1 -::1", true),
    d("port", int(0, 65535), "6379", true),
    d("requirepass", Kind::Str, "", true),
    d("acllog-max-len", uint(0, LONG_MAX), "128", true),
    d(
        "acl-pubsub-default",
        Kind::Enum(ACL_PUBSUB_DEFAULT),
        "resetchannels",
        true,
    ),
    d("dir", Kind::Str, "./data", false),
    d("maxclients", uint(1, 1_000_000), "10000", true),
    d("databases", int(1, 1024), "16", false),
    d("timeout", int(0, INT_MAX), "0", true),
    d("tcp-keepalive", int(0, INT_MAX), "300", true),
    d("tcp-backlog", int(0, INT_MAX), "511", false),
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
    d("auto-aof-rewrite-percentage", int(0, INT_MAX), "100", true),
    d("auto-aof-rewrite-min-size", mem(0, LONG_MAX), "64mb", true),
    d("stop-writes-on-bgsave-error", Kind::Bool, "yes", true),
    d("snapshot-interval", int(0, LONG_MAX), "300", true),
    d("snapshot-on-shutdown", Kind::Bool, "yes", true),
    // Read once, at startup (CONFIG SET cannot act on it: refused as immutable).
    d("restore-on-startup", Kind::Bool, "yes", false),
    // Write only what changed since the previous snapshot (falls back to a full one).
    d("snapshot-incremental", Kind::Bool, "yes", true),
    d("load-corrupt", Kind::Bool, "no", false),
    d("proto-max-bulk-len", mem(1 << 20, LONG_MAX), "512mb", true),
    d(
        "client-query-buffer-limit",
        umem(1 << 20, LONG_MAX),
        "1gb",
        true,
    ),
    d(
        "client-output-buffer-limit",
        Kind::ObufLimits,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        true,
    ),
    d("maxmemory", umem(0, ULLONG_MAX), "0", true),
    // redsnap's own: the most memory a Lua state may hold (0: no limit).
    d("lua-memory-limit", umem(0, ULLONG_MAX), "1gb", true),
    d("maxmemory-policy", Kind::Enum(POLICIES), "noeviction", true),
    d("maxmemory-samples", int(1, 64), "5", true),
    // Total memory of the clients; a negative value is a percentage of maxmemory
    // (`clientmem.rs`).
    d(
        "maxmemory-clients",
        num(-100, LONG_MAX, false, Fmt::MemPercent),
        "0",
        true,
    ),
    da(
        "busy-reply-threshold",
        &["lua-time-limit"],
        int(0, LONG_MAX),
        "5000",
        true,
    ),
    da(
        "hash-max-listpack-entries",
        &["hash-max-ziplist-entries"],
        uint(0, LONG_MAX),
        "512",
        true,
    ),
    da(
        "hash-max-listpack-value",
        &["hash-max-ziplist-value"],
        umem(0, LONG_MAX),
        "64",
        true,
    ),
    d("set-max-intset-entries", uint(0, LONG_MAX), "512", true),
    da(
        "zset-max-listpack-entries",
        &["zset-max-ziplist-entries"],
        uint(0, LONG_MAX),
        "128",
        true,
    ),
    da(
        "zset-max-listpack-value",
        &["zset-max-ziplist-value"],
        umem(0, LONG_MAX),
        "64",
        true,
    ),
    da(
        "list-max-listpack-size",
        &["list-max-ziplist-size"],
        int(INT_MIN, INT_MAX),
        "-2",
        true,
    ),
    d("list-compress-depth", int(0, INT_MAX), "0", true),
    d("stream-node-max-entries", int(0, LONG_MAX), "100", true),
    d("stream-node-max-bytes", umem(0, LONG_MAX), "4096", true),
    d("hll-sparse-max-bytes", umem(0, LONG_MAX), "3000", true),
    d("hz", int(1, 500), "10", true),
    d("notify-keyspace-events", Kind::Events, "", true),
    da("latency-tracking", &[], Kind::Bool, "yes", true),
    da(
        "tracking-table-max-keys",
        &[],
        uint(0, LONG_MAX),
        "1000000",
        true,
    ),
    da(
        "latency-tracking-info-percentiles",
        &[],
        Kind::Percentiles,
        "50 99 99.9",
        true,
    ),
    da(
        "repl-ping-replica-period",
        &["repl-ping-slave-period"],
        int(1, INT_MAX),
        "10",
        true,
    ),
    d("repl-backlog-size", mem(1, LONG_MAX), "1048576", true),
    d("repl-backlog-ttl", int(0, LONG_MAX), "3600", true),
    d("repl-timeout", int(1, INT_MAX), "60", true),
    d("repl-diskless-sync", Kind::Bool, "yes", true),
    // Redis's default is 5 s, there to let replicas share one fork; redsnap has no
    // fork to amortize and starts a lone replica's transfer at once (what it always
    // did). Set it to let replicas that ask together share one encoding.
    d("repl-diskless-sync-delay", int(0, INT_MAX), "0", true),
    d(
        "repl-diskless-sync-max-replicas",
        int(0, INT_MAX),
        "0",
        true,
    ),
    da(
        "min-replicas-to-write",
        &["min-slaves-to-write"],
        int(0, INT_MAX),
        "0",
        true,
    ),
    da(
        "min-replicas-max-lag",
        &["min-slaves-max-lag"],
        int(0, INT_MAX),
        "10",
        true,
    ),
    d("lazyfree-lazy-user-del", Kind::Bool, "no", true),
    d("lazyfree-lazy-user-flush", Kind::Bool, "no", true),
    d("slowlog-log-slower-than", int(-1, LONG_MAX), "10000", true),
    d("slowlog-max-len", uint(0, LONG_MAX), "128", true),
    d("latency-monitor-threshold", int(0, LONG_MAX), "0", true),
    d("tls-port", int(0, 65535), "0", false),
    d("tls-cert-file", Kind::Str, "", false),
    d("tls-key-file", Kind::Str, "", false),
    d("tls-ca-cert-file", Kind::Str, "", false),
    d("tls-auth-clients", Kind::Enum(TLS_AUTH), "yes", false),
    d("io-threads", int(1, 128), "1", false),
    d("appendfsync-no-rewrite", Kind::Bool, "no", true),
    da("no-appendfsync-on-rewrite", &[], Kind::Bool, "no", true),
    d("rdbcompression", Kind::Bool, "yes", false),
    d("rdbchecksum", Kind::Bool, "yes", false),
    // /health and /metrics over HTTP (`http.rs`), on the `bind` addresses; 0 = off.
    // `metrics-port` was its placeholder name.
    da("http-port", &["metrics-port"], int(0, 65535), "0", false),
    // Log lines as text or as one JSON object per line (read at startup by the
    // binary, which owns the logging subscriber, as for `logfile`).
    d("log-format", Kind::Enum(LOG_FORMAT), "text", false),
    // Redis defaults to "no"; redsnap allows DEBUG from loopback clients by default.
    d(
        "enable-debug-command",
        Kind::Enum(PROTECTED_ACTION),
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

/// Every directive whose feature is not built, with the reason: only its default
/// value is accepted.
pub fn not_built() -> impl Iterator<Item = (&'static str, &'static str)> {
    NOT_BUILT.iter().chain(redis_params::NOT_BUILT).copied()
}

/// Directives Redis changes at runtime that redsnap reads only at startup, and
/// redsnap's own startup directives: CONFIG SET to the value they have is a no-op
/// (tools that walk CONFIG GET * and set every value back keep working), a change
/// is refused as immutable.
pub const STARTUP_ONLY: &[&str] = &[
    "dir",
    "dbfilename",
    "rdbcompression",
    "restore-on-startup",
    "load-corrupt",
    "http-port",
    "log-format",
    "tls-port",
    "tls-cert-file",
    "tls-key-file",
    "tls-ca-cert-file",
    "tls-auth-clients",
];

/// Refuses a value other than the default for a directive whose feature is not built.
fn check_built(d: &Directive, value: &str) -> Result<(), String> {
    match not_built().find(|(n, _)| *n == d.name) {
        Some((_, why)) if value != canonical_default(d) => {
            Err(format!("{why} (only '{}' is accepted)", d.default))
        }
        _ => Ok(()),
    }
}

fn all_directives() -> impl Iterator<Item = &'static Directive> {
    DIRECTIVES.iter().chain(redis_params::DIRECTIVES)
}

/// A directive by name or alias (case-insensitive); the name it was found by.
fn find(name: &str) -> Option<(&'static Directive, &'static str)> {
    all_directives().find_map(|d| {
        if d.name.eq_ignore_ascii_case(name) {
            Some((d, d.name))
        } else {
            d.aliases
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))
                .map(|a| (d, *a))
        }
    })
}

/// The name of a directive given by name or alias (case-insensitive).
pub fn canonical_name(name: &str) -> Option<&'static str> {
    find(name).map(|(d, _)| d.name)
}

fn canonical_default(d: &Directive) -> String {
    validate(d, d.default, d.default).unwrap_or_else(|_| d.default.to_string())
}

/// Parses a memory amount like Redis's `memtoull`: `1gb`, `64mb`, `100k`, `512`.
pub fn parse_memory(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(|c| c.is_ascii_digit()).count();
    let (num, unit) = s.split_at(digits);
    let mul: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if num.is_empty() || num.len() >= 128 {
        return None;
    }
    // strtoull saturates; the product wraps (unsigned arithmetic in C).
    let v = num.parse::<u64>().unwrap_or(u64::MAX);
    Some(v.wrapping_mul(mul))
}

/// Redis's `string2ll`: an optional minus sign and digits, no leading zeros or
/// spaces, within 64 bits.
fn string2ll(s: &str) -> Option<i64> {
    redsnap_engine::num::parse_i64(s.as_bytes())
}

fn parse_num(n: &Num, value: &str) -> Result<i64, String> {
    if matches!(n.fmt, Fmt::Mem | Fmt::MemPercent) {
        if let Some(v) = parse_memory(value) {
            return Ok(v as i64);
        }
    }
    if n.fmt == Fmt::MemPercent && value.len() > 1 {
        if let Some(v) = value.strip_suffix('%').and_then(string2ll) {
            if v >= 0 {
                return Ok(-v);
            }
        }
    }
    if n.fmt == Fmt::Octal {
        if let Ok(v) = i64::from_str_radix(value, 8) {
            return Ok(v);
        }
    }
    if n.fmt == Fmt::Int {
        if let Some(v) = string2ll(value) {
            return Ok(v);
        }
    }
    Err(match n.fmt {
        Fmt::MemPercent => "argument must be a memory or percent value",
        Fmt::Mem => "argument must be a memory value",
        Fmt::Octal => "argument couldn't be parsed as an octal number",
        Fmt::Int => "argument couldn't be parsed into an integer",
    }
    .to_string())
}

/// Redis's `numericBoundaryCheck`, then the value as CONFIG GET shows it.
fn check_num(n: &Num, v: i64) -> Result<String, String> {
    if n.unsigned {
        let u = v as u64 as i128;
        if u < n.min || u > n.max {
            return Err(if n.fmt == Fmt::Octal {
                format!(
                    "argument must be between {:o} and {:o} inclusive",
                    n.min, n.max
                )
            } else {
                format!("argument must be between {} and {} inclusive", n.min, n.max)
            });
        }
    } else if n.fmt == Fmt::MemPercent && v < 0 {
        if (v as i128) < n.min {
            return Err(format!(
                "percentage argument must be less or equal to {}",
                -n.min
            ));
        }
    } else if (v as i128) < n.min || (v as i128) > n.max {
        return Err(format!(
            "argument must be between {} and {} inclusive",
            n.min, n.max
        ));
    }
    Ok(match n.fmt {
        Fmt::MemPercent if v < 0 => format!("{}%", -(v as i128)),
        Fmt::Mem | Fmt::MemPercent => (v as u64).to_string(),
        Fmt::Octal => format!("{v:o}"),
        Fmt::Int => v.to_string(),
    })
}

fn enum_error(opts: &[(&str, u8)]) -> String {
    let names: Vec<&str> = opts.iter().map(|(n, _)| *n).collect();
    format!(
        "argument(s) must be one of the following: {}",
        names.join(", ")
    )
}

/// Validates a value (as CONFIG SET gets it: one string, split at spaces for the
/// multi-word kinds) and returns it as CONFIG GET shows it. `current` is the value
/// it replaces (client-output-buffer-limit changes only the classes named).
fn validate(d: &Directive, value: &str, current: &str) -> Result<String, String> {
    match d.kind {
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Num(n) => check_num(&n, parse_num(&n, value)?),
        Kind::Enum(opts) => {
            let id = opts
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(value))
                .map(|(_, v)| *v)
                .ok_or_else(|| enum_error(opts))?;
            Ok(opts
                .iter()
                .find(|(_, v)| *v == id)
                .map_or(value, |(n, _)| n)
                .to_string())
        }
        Kind::Flags(opts) => {
            let mut bits = 0u8;
            for w in value.split(' ') {
                bits |= opts
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(w))
                    .map(|(_, v)| *v)
                    .ok_or_else(|| enum_error(opts))?;
            }
            // Redis's isValidShutdownOnSigFlags (the only directive of this kind).
            let (save, nosave) = (flag_bit(opts, "save"), flag_bit(opts, "nosave"));
            if save != 0 && bits & save != 0 && bits & nosave != 0 {
                return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
            }
            if bits == 0 {
                return Ok(opts
                    .iter()
                    .find(|(_, v)| *v == 0)
                    .map_or("", |(n, _)| n)
                    .to_string());
            }
            let names: Vec<&str> = opts
                .iter()
                .filter(|(_, v)| *v != 0 && bits & v == *v)
                .map(|(n, _)| *n)
                .collect();
            Ok(names.join(" "))
        }
        Kind::Str => Ok(value.to_string()),
        Kind::Events => redsnap_engine::notify::parse(value.as_bytes())
            .map(redsnap_engine::notify::render_exact)
            .ok_or_else(|| redsnap_engine::notify::ERR_INVALID_CLASS.to_string()),
        Kind::Save => validate_save(value),
        Kind::Bind => {
            let words: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
            if words.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            Ok(words.join(" "))
        }
        Kind::ObufLimits => obuf_limits(value, current),
        Kind::OomValues => {
            let words: Vec<&str> = value.split(' ').collect();
            if words.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut out = Vec::new();
            for w in words {
                match w.parse::<i64>() {
                    Ok(v) if (-2000..=2000).contains(&v) => out.push(v.to_string()),
                    _ => return Err(
                        "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
                            .into(),
                    ),
                }
            }
            Ok(out.join(" "))
        }
        Kind::Percentiles => {
            if value.is_empty() {
                return Ok(String::new());
            }
            let mut out = Vec::new();
            for w in value.split(' ') {
                let p = redsnap_engine::num::parse_f64(w.as_bytes())
                    .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                if !(0.0..=100.0).contains(&p) {
                    return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into());
                }
                // "%f" with trailing zeros (and a trailing dot) removed.
                let s = format!("{p:.6}");
                out.push(s.trim_end_matches('0').trim_end_matches('.').to_string());
            }
            Ok(out.join(" "))
        }
        Kind::ReplicaOf => {
            let words: Vec<&str> = value.split(' ').collect();
            match words.as_slice() {
                [""] => Ok(String::new()),
                [h, p] if h.eq_ignore_ascii_case("no") && p.eq_ignore_ascii_case("one") => {
                    Ok(String::new())
                }
                [h, p] => match p.parse::<i64>() {
                    Ok(port) if (0..=65535).contains(&port) => Ok(format!("{h} {port}")),
                    _ => Err("Invalid master port".into()),
                },
                _ => Err("wrong number of arguments".into()),
            }
        }
    }
}

fn flag_bit(opts: &[(&str, u8)], name: &str) -> u8 {
    opts.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
}

/// Redis's `setConfigSaveOption`: pairs of seconds (>= 1) and changes (>= 0).
fn validate_save(value: &str) -> Result<String, String> {
    let words: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
    if !words.len().is_multiple_of(2) {
        return Err("Invalid save parameters".into());
    }
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        match w.parse::<i64>() {
            Ok(v) if (i % 2 == 0 && v >= 1) || (i % 2 == 1 && v >= 0) => out.push(v.to_string()),
            _ => return Err("Invalid save parameters".into()),
        }
    }
    Ok(out.join(" "))
}

/// Redis's `updateClientOutputBufferLimit`: `<class> <hard> <soft> <seconds>`
/// groups; classes not named keep their current limits.
fn obuf_limits(value: &str, current: &str) -> Result<String, String> {
    const CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];
    let cur: Vec<&str> = current.split(' ').collect();
    let mut limits: Vec<[u64; 3]> = CLASSES
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let at = |k: usize| cur.get(i * 4 + k).and_then(|v| v.parse().ok()).unwrap_or(0);
            [at(1), at(2), at(3)]
        })
        .collect();
    let words: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut next = limits.clone();
    for g in words.chunks(4) {
        let class = match g[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let (hard, soft) = (parse_memory(g[1]), parse_memory(g[2]));
        let secs = g[3].parse::<i64>().ok().filter(|s| *s >= 0);
        match (hard, soft, secs) {
            (Some(h), Some(s), Some(t)) => next[class] = [h, s, t as u64],
            _ => {
                return Err(
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .into(),
                )
            }
        }
    }
    limits = next;
    Ok(CLASSES
        .iter()
        .zip(limits)
        .map(|(c, [h, s, t])| format!("{c} {h} {s} {t}"))
        .collect::<Vec<_>>()
        .join(" "))
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
    /// The config file the server was started with (absolute), for CONFIG REWRITE.
    file: Option<PathBuf>,
    /// `user` directives (ACL users defined in the config file), in order.
    users: Vec<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        let values = all_directives()
            .map(|d| (d.name, canonical_default(d)))
            .collect();
        Config {
            values,
            file: None,
            users: Vec::new(),
        }
    }
}

/// What a CONFIG SET changed: the directives whose value is new, in argument order.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) names: Vec<&'static str>,
}

impl Changes {
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.names.contains(&name)
    }
}

impl Config {
    /// Sets a directive from its words (`save 900 1 300 10`), validating the value
    /// (startup: flags and config file; immutable directives too).
    pub fn set(&mut self, name: &str, args: &[String]) -> Result<(), String> {
        if name.eq_ignore_ascii_case("user") {
            // Redis's `ACLAppendUserForLoading`.
            crate::acl::file::validate_directive(args)?;
            if self.users.iter().any(|u| u.first() == args.first()) {
                return Err(
                    "Duplicate user found. A user can only be defined once in config files".into(),
                );
            }
            self.users.push(args.to_vec());
            return Ok(());
        }
        let (d, _) = find(name)
            .ok_or_else(|| format!("Bad directive or wrong number of arguments ('{name}')"))?;
        let multi = matches!(
            d.kind,
            Kind::Save
                | Kind::Bind
                | Kind::ObufLimits
                | Kind::Flags(_)
                | Kind::OomValues
                | Kind::Percentiles
                | Kind::ReplicaOf
        );
        let value = if multi {
            args.join(" ")
        } else {
            if args.len() != 1 {
                return Err(format!("wrong number of arguments for '{}'", d.name));
            }
            args[0].clone()
        };
        let current = self.values.get(d.name).cloned().unwrap_or_default();
        let value = validate(d, &value, &current)?;
        check_built(d, &value)?;
        self.values.insert(d.name, value);
        Ok(())
    }

    /// CONFIG SET name value [name value ...], as Redis's `configSetCommand`: every
    /// name is looked up (unknown, immutable and duplicate names refuse the whole
    /// command), then every value is set; the first invalid one leaves the
    /// configuration as it was. Returns the errors' texts without "ERR ".
    pub(crate) fn set_many(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<Changes, String> {
        let mut found: Vec<(&'static Directive, &'static str)> = Vec::new();
        // The first problem found is the one reported, as in Redis.
        let mut error: Option<String> = None;
        for (name, _) in pairs {
            let text = String::from_utf8_lossy(name);
            let Some((d, by)) = find(&text) else {
                error.get_or_insert_with(|| {
                    format!("Unknown option or number of arguments for CONFIG SET - '{text}'")
                });
                continue;
            };
            if error.is_some() {
                continue;
            }
            if !d.mutable && !STARTUP_ONLY.contains(&d.name) {
                error = Some(format!(
                    "CONFIG SET failed (possibly related to argument '{text}') - can't set immutable config"
                ));
            } else if found.iter().any(|(_, b)| *b == by) {
                error = Some(format!(
                    "CONFIG SET failed (possibly related to argument '{text}') - duplicate parameter"
                ));
            }
            found.push((d, by));
        }
        if let Some(e) = error {
            return Err(e);
        }
        let mut next = self.clone();
        let mut changes = Changes::default();
        for ((d, by), (_, value)) in found.iter().zip(pairs) {
            let value = String::from_utf8_lossy(value);
            let failed = |e: String| {
                format!("CONFIG SET failed (possibly related to argument '{by}') - {e}")
            };
            let current = next.values.get(d.name).cloned().unwrap_or_default();
            let v = validate(d, &value, &current).map_err(failed)?;
            check_built(d, &v).map_err(failed)?;
            if v == current {
                continue;
            }
            if !d.mutable {
                return Err(failed("can't set immutable config".into()));
            }
            next.values.insert(d.name, v);
            if !changes.contains(d.name) {
                changes.names.push(d.name);
            }
        }
        *self = next;
        Ok(changes)
    }

    /// Runtime change of one directive (CONFIG SET name value).
    pub fn set_runtime(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.set_many(&[(name.as_bytes(), value.as_bytes())])
            .map(|_| ())
    }

    /// The `user` directives given at startup.
    pub fn users(&self) -> &[Vec<String>] {
        &self.users
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let (d, _) = find(name)?;
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

    /// The hard limit `client-output-buffer-limit` sets for a client class (`normal`,
    /// `pubsub`, `replica`), in bytes; None when the class is not listed.
    pub fn obuf_hard_limit(&self, class: &str) -> Option<u64> {
        let limits = self.str("client-output-buffer-limit");
        let words: Vec<&str> = limits.split_whitespace().collect();
        words
            .chunks(4)
            .find(|c| c.len() == 4 && c[0] == class)
            .and_then(|c| parse_memory(c[1]))
    }

    /// A list of percentiles (latency-tracking-info-percentiles).
    pub fn percentiles(&self, name: &str) -> Vec<f64> {
        self.get(name)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    /// The config file the server was started with (absolute path), if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
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

    /// CONFIG GET of one argument: the directive of that exact name (or alias,
    /// hidden ones too) when it has no glob characters, else every name and alias
    /// the pattern matches (not hidden ones), as Redis's `configGetCommand`.
    pub fn matching(&self, pattern: &[u8]) -> Vec<(String, String)> {
        let value = |d: &Directive| {
            let v = self.values.get(d.name).cloned().unwrap_or_default();
            if d.kind == Kind::Events {
                // CONFIG GET shows Redis's rendering (`AK` for `KA`, `A` hiding `n`).
                let flags = redsnap_engine::notify::parse(v.as_bytes()).unwrap_or(0);
                return redsnap_engine::notify::render(flags);
            }
            v
        };
        if !pattern.iter().any(|c| matches!(c, b'[' | b'*' | b'?')) {
            let name = String::from_utf8_lossy(pattern).into_owned();
            return match find(&name) {
                Some((d, _)) => vec![(name, value(d))],
                None => Vec::new(),
            };
        }
        let mut out = Vec::new();
        for d in all_directives().filter(|d| !d.hidden) {
            for n in std::iter::once(&d.name).chain(d.aliases) {
                if redsnap_engine::glob::glob_match(pattern, n.as_bytes(), true) {
                    out.push((n.to_string(), value(d)));
                }
            }
        }
        out
    }

    /// Reads directives from a redis.conf-style file, on top of the defaults, and
    /// remembers the file (CONFIG REWRITE writes it back). As in Redis, the first
    /// `save` line replaces the default save points and later ones add to them.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.display().to_string(),
            err,
        })?;
        let mut saves: Option<Vec<String>> = None;
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
            let kind = find(name).map(|(d, _)| d.kind);
            if args.is_empty() && !matches!(kind, Some(Kind::Save) | Some(Kind::Str)) {
                return Err(err(format!("wrong number of arguments for '{name}'")));
            }
            if kind == Some(Kind::Save) {
                let all = saves.get_or_insert_with(Vec::new);
                all.extend(args.iter().filter(|a| !a.is_empty()).cloned());
                if args.len() == 1 && args[0].is_empty() {
                    all.clear();
                }
                self.set(name, &[all.join(" ")]).map_err(err)?;
                continue;
            }
            self.set(name, args).map_err(err)?;
        }
        self.file = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(())
    }

    /// CONFIG REWRITE: writes this configuration into the file the server was
    /// started with (see `rewrite.rs`).
    /// `users`: the ACL users as `user` lines (None with an `aclfile`: the file's
    /// `user` lines are dropped, as Redis's `rewriteConfigUserOption`).
    pub(crate) fn rewrite(&self, users: Option<Vec<String>>) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Err("The server is running without a config file".into());
        };
        rewrite::rewrite(self, path, users).map_err(|e| format!("Rewriting config file: {e}"))
    }
}

#[cfg(test)]
mod tests;
