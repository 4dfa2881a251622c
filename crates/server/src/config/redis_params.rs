//! The Redis 7.0 directives redsnap does not act on, with what it does with each:
//! * no effect by design ([`NO_EFFECT_BY_DESIGN`]): the directive tunes something
//!   redsnap does not have (replication links, cluster mode, an encoding or
//!   allocator of Redis's); any valid value is kept and shown, as Redis itself keeps
//!   them where they do not apply (a master without replicas, a server without
//!   cluster mode);
//! * not built ([`NOT_BUILT`]): the feature could matter to a client and is not
//!   there; only Redis's default is accepted, so that no setting answers OK and
//!   changes nothing;
//! * immutable ones (Redis reads them at startup only) that are in neither list keep
//!   their default here (no effect).
//!
//! Each row follows Redis's `src/config.c` table: name, aliases, type and bounds,
//! default (as CONFIG GET shows it), whether CONFIG SET may change it, hidden.

use super::{da, hidden, int, num, uint, umem, Directive, Fmt, Kind, PROTECTED_ACTION};
use super::{INT_MAX, INT_MIN, LONG_MAX, UINT_MAX, ULLONG_MAX};

const SUPERVISED: &[(&str, u8)] = &[("upstart", 0), ("systemd", 1), ("auto", 2), ("no", 3)];
const SYSLOG_FACILITY: &[(&str, u8)] = &[
    ("user", 0),
    ("local0", 1),
    ("local1", 2),
    ("local2", 3),
    ("local3", 4),
    ("local4", 5),
    ("local5", 6),
    ("local6", 7),
    ("local7", 8),
];
const REPL_DISKLESS_LOAD: &[(&str, u8)] = &[("disabled", 0), ("on-empty-db", 1), ("swapdb", 2)];
const OOM_SCORE_ADJ: &[(&str, u8)] = &[("no", 0), ("yes", 1), ("relative", 1), ("absolute", 2)];
const SANITIZE_DUMP: &[(&str, u8)] = &[("no", 0), ("yes", 1), ("clients", 2)];
const ENDPOINT_TYPE: &[(&str, u8)] = &[("ip", 0), ("hostname", 1), ("unknown-endpoint", 2)];
const PROPAGATION_ERROR: &[(&str, u8)] = &[("ignore", 0), ("panic", 1), ("panic-on-replicas", 2)];
pub(super) const SHUTDOWN_ON_SIG: &[(&str, u8)] = &[
    ("default", 0),
    ("save", 1),
    ("nosave", 2),
    ("now", 4),
    ("force", 8),
];

pub(super) static DIRECTIVES: &[Directive] = &[
    da("io-threads-do-reads", &[], Kind::Bool, "no", false),
    da("always-show-logo", &[], Kind::Bool, "no", false),
    da("rdb-del-sync-files", &[], Kind::Bool, "no", true),
    da("activerehashing", &[], Kind::Bool, "yes", true),
    da("set-proc-title", &[], Kind::Bool, "yes", false),
    da("dynamic-hz", &[], Kind::Bool, "yes", true),
    da("lazyfree-lazy-eviction", &[], Kind::Bool, "no", true),
    da("lazyfree-lazy-expire", &[], Kind::Bool, "no", true),
    da("lazyfree-lazy-server-del", &[], Kind::Bool, "no", true),
    da("repl-disable-tcp-nodelay", &[], Kind::Bool, "no", true),
    da(
        "aof-rewrite-incremental-fsync",
        &[],
        Kind::Bool,
        "yes",
        true,
    ),
    da(
        "cluster-require-full-coverage",
        &[],
        Kind::Bool,
        "yes",
        true,
    ),
    da("rdb-save-incremental-fsync", &[], Kind::Bool, "yes", true),
    da("aof-use-rdb-preamble", &[], Kind::Bool, "yes", true),
    da("aof-timestamp-enabled", &[], Kind::Bool, "no", true),
    da(
        "cluster-replica-no-failover",
        &["cluster-slave-no-failover"],
        Kind::Bool,
        "no",
        true,
    ),
    da(
        "replica-lazy-flush",
        &["slave-lazy-flush"],
        Kind::Bool,
        "no",
        true,
    ),
    da(
        "replica-serve-stale-data",
        &["slave-serve-stale-data"],
        Kind::Bool,
        "yes",
        true,
    ),
    da(
        "replica-read-only",
        &["slave-read-only"],
        Kind::Bool,
        "yes",
        true,
    ),
    da(
        "replica-ignore-maxmemory",
        &["slave-ignore-maxmemory"],
        Kind::Bool,
        "yes",
        true,
    ),
    da("jemalloc-bg-thread", &[], Kind::Bool, "yes", true),
    da("activedefrag", &[], Kind::Bool, "no", true),
    da("syslog-enabled", &[], Kind::Bool, "no", false),
    da("cluster-enabled", &[], Kind::Bool, "no", false),
    da("cluster-allow-reads-when-down", &[], Kind::Bool, "no", true),
    da(
        "cluster-allow-pubsubshard-when-down",
        &[],
        Kind::Bool,
        "yes",
        true,
    ),
    da("crash-log-enabled", &[], Kind::Bool, "yes", true),
    da("crash-memcheck-enabled", &[], Kind::Bool, "yes", true),
    hidden(da("use-exit-on-panic", &[], Kind::Bool, "no", true)),
    da("disable-thp", &[], Kind::Bool, "yes", false),
    da(
        "cluster-allow-replica-migration",
        &[],
        Kind::Bool,
        "yes",
        true,
    ),
    da("replica-announced", &[], Kind::Bool, "yes", true),
    da("aof-disable-auto-gc", &[], Kind::Bool, "no", true),
    da(
        "replica-ignore-disk-write-errors",
        &[],
        Kind::Bool,
        "no",
        true,
    ),
    da("aclfile", &[], Kind::Str, "", false),
    da("unixsocket", &[], Kind::Str, "", false),
    da("pidfile", &[], Kind::Str, "", false),
    da(
        "replica-announce-ip",
        &["slave-announce-ip"],
        Kind::Str,
        "",
        true,
    ),
    da("masteruser", &[], Kind::Str, "", true),
    da("cluster-announce-ip", &[], Kind::Str, "", true),
    da("cluster-config-file", &[], Kind::Str, "nodes.conf", false),
    da("cluster-announce-hostname", &[], Kind::Str, "", true),
    da("syslog-ident", &[], Kind::Str, "redis", false),
    da("server_cpulist", &[], Kind::Str, "", false),
    da("bio_cpulist", &[], Kind::Str, "", false),
    da("aof_rewrite_cpulist", &[], Kind::Str, "", false),
    da("bgsave_cpulist", &[], Kind::Str, "", false),
    da("ignore-warnings", &[], Kind::Str, "", true),
    da(
        "proc-title-template",
        &[],
        Kind::Str,
        "{title} {listen-addr} {server-mode}",
        true,
    ),
    da("bind-source-addr", &[], Kind::Str, "", true),
    da("masterauth", &[], Kind::Str, "", true),
    da("supervised", &[], Kind::Enum(SUPERVISED), "no", false),
    da(
        "syslog-facility",
        &[],
        Kind::Enum(SYSLOG_FACILITY),
        "local0",
        false,
    ),
    da(
        "repl-diskless-load",
        &[],
        Kind::Enum(REPL_DISKLESS_LOAD),
        "disabled",
        true,
    ),
    da("oom-score-adj", &[], Kind::Enum(OOM_SCORE_ADJ), "no", true),
    da(
        "sanitize-dump-payload",
        &[],
        Kind::Enum(SANITIZE_DUMP),
        "no",
        true,
    ),
    da(
        "enable-protected-configs",
        &[],
        Kind::Enum(PROTECTED_ACTION),
        "no",
        false,
    ),
    da(
        "enable-module-command",
        &[],
        Kind::Enum(PROTECTED_ACTION),
        "no",
        false,
    ),
    da(
        "cluster-preferred-endpoint-type",
        &[],
        Kind::Enum(ENDPOINT_TYPE),
        "ip",
        true,
    ),
    da(
        "propagation-error-behavior",
        &[],
        Kind::Enum(PROPAGATION_ERROR),
        "ignore",
        true,
    ),
    da(
        "shutdown-on-sigint",
        &[],
        Kind::Flags(SHUTDOWN_ON_SIG),
        "default",
        true,
    ),
    da(
        "shutdown-on-sigterm",
        &[],
        Kind::Flags(SHUTDOWN_ON_SIG),
        "default",
        true,
    ),
    da(
        "cluster-replica-validity-factor",
        &["cluster-slave-validity-factor"],
        int(0, INT_MAX),
        "10",
        true,
    ),
    da("cluster-migration-barrier", &[], int(0, INT_MAX), "1", true),
    da("active-defrag-cycle-min", &[], int(1, 99), "1", true),
    da("active-defrag-cycle-max", &[], int(1, 99), "25", true),
    da(
        "active-defrag-threshold-lower",
        &[],
        int(0, 1000),
        "10",
        true,
    ),
    da(
        "active-defrag-threshold-upper",
        &[],
        int(0, 1000),
        "100",
        true,
    ),
    da("lfu-log-factor", &[], int(0, INT_MAX), "10", true),
    da("lfu-decay-time", &[], int(0, INT_MAX), "1", true),
    da(
        "replica-priority",
        &["slave-priority"],
        int(0, INT_MAX),
        "100",
        true,
    ),
    da("maxmemory-eviction-tenacity", &[], int(0, 100), "10", true),
    da(
        "replica-announce-port",
        &["slave-announce-port"],
        int(0, 65535),
        "0",
        true,
    ),
    da("cluster-port", &[], int(0, 65535), "0", false),
    da("cluster-announce-bus-port", &[], int(0, 65535), "0", true),
    da("cluster-announce-port", &[], int(0, 65535), "0", true),
    da("cluster-announce-tls-port", &[], int(0, 65535), "0", true),
    hidden(da(
        "rdb-key-save-delay",
        &[],
        int(INT_MIN, INT_MAX),
        "0",
        true,
    )),
    hidden(da("key-load-delay", &[], int(INT_MIN, INT_MAX), "0", true)),
    da("active-expire-effort", &[], int(1, 10), "1", true),
    hidden(da("watchdog-period", &[], int(0, INT_MAX), "0", true)),
    da("shutdown-timeout", &[], int(0, INT_MAX), "10", true),
    da(
        "unixsocketperm",
        &[],
        num(0, 0o777, true, Fmt::Octal),
        "0",
        false,
    ),
    da("socket-mark-id", &[], uint(0, UINT_MAX), "0", false),
    da(
        "active-defrag-max-scan-fields",
        &[],
        uint(1, LONG_MAX),
        "1000",
        true,
    ),
    da("cluster-node-timeout", &[], int(0, LONG_MAX), "15000", true),
    da(
        "cluster-link-sendbuf-limit",
        &[],
        umem(0, ULLONG_MAX),
        "0",
        true,
    ),
    da(
        "active-defrag-ignore-bytes",
        &[],
        umem(1, LONG_MAX),
        "104857600",
        true,
    ),
    hidden(da(
        "loading-process-events-interval-bytes",
        &[],
        int(1024, INT_MAX),
        "2097152",
        true,
    )),
    da(
        "tls-session-cache-size",
        &[],
        int(0, INT_MAX),
        "20480",
        true,
    ),
    da(
        "tls-session-cache-timeout",
        &[],
        int(0, INT_MAX),
        "300",
        true,
    ),
    da("tls-cluster", &[], Kind::Bool, "no", true),
    da("tls-replication", &[], Kind::Bool, "no", true),
    da("tls-prefer-server-ciphers", &[], Kind::Bool, "no", true),
    da("tls-session-caching", &[], Kind::Bool, "yes", true),
    da("tls-key-file-pass", &[], Kind::Str, "", true),
    da("tls-client-cert-file", &[], Kind::Str, "", true),
    da("tls-client-key-file", &[], Kind::Str, "", true),
    da("tls-client-key-file-pass", &[], Kind::Str, "", true),
    da("tls-dh-params-file", &[], Kind::Str, "", true),
    da("tls-ca-cert-dir", &[], Kind::Str, "", true),
    da("tls-protocols", &[], Kind::Str, "", true),
    da("tls-ciphers", &[], Kind::Str, "", true),
    da("tls-ciphersuites", &[], Kind::Str, "", true),
    da(
        "oom-score-adj-values",
        &[],
        Kind::OomValues,
        "0 200 800",
        true,
    ),
    da("replicaof", &["slaveof"], Kind::ReplicaOf, "", false),
];

const REPL: &str = "it tunes a part of Redis's replica link that redsnap's replica does not have (see repl/replica.rs)";
const REPL_FORK: &str = "it tunes Redis's forked RDB transfer to replicas; redsnap encodes replicas' files on a thread of its own from a point-in-time copy and writes no file";
const CLUSTER: &str =
    "redsnap does not run in cluster mode (cluster-enabled no), where Redis too ignores it";
const DEFRAG: &str =
    "it tunes jemalloc's active defragmentation, which redsnap does not have (activedefrag no)";

/// Directives of this table that redsnap acts on (with where): the replica side of
/// replication (`repl/replica.rs`).
#[cfg_attr(not(test), allow(dead_code))]
pub const ACTED_ON: &[(&str, &str)] = &[
    (
        "replica-serve-stale-data",
        "MASTERDOWN on a replica whose link is down",
    ),
    ("replica-read-only", "READONLY on a replica"),
    ("replica-announced", "INFO replication on a replica"),
    ("replica-priority", "INFO replication on a replica"),
    ("masteruser", "AUTH on the link to the master"),
    ("masterauth", "AUTH on the link to the master"),
];

/// Accepted with any valid value, and no effect by design (with the reason).
pub const NO_EFFECT_BY_DESIGN: &[(&str, &str)] = &[
    (
        "aof-use-rdb-preamble",
        "the append log holds commands only and always follows a snapshot",
    ),
    (
        "list-compress-depth",
        "lists are not stored as compressed quicklist nodes",
    ),
    ("rdb-del-sync-files", REPL_FORK),
    ("repl-disable-tcp-nodelay", REPL_FORK),
    ("replica-lazy-flush", REPL),
    ("replica-ignore-maxmemory", REPL),
    ("replica-ignore-disk-write-errors", REPL),
    ("replica-announce-ip", REPL),
    ("bind-source-addr", REPL),
    ("repl-diskless-load", REPL),
    ("propagation-error-behavior", REPL),
    ("replica-announce-port", REPL),
    (
        "shutdown-timeout",
        "it bounds the wait for replicas to catch up at shutdown; redsnap does not wait for them",
    ),
    ("tls-replication", REPL),
    ("cluster-require-full-coverage", CLUSTER),
    ("cluster-replica-no-failover", CLUSTER),
    ("cluster-allow-reads-when-down", CLUSTER),
    ("cluster-allow-pubsubshard-when-down", CLUSTER),
    ("cluster-allow-replica-migration", CLUSTER),
    ("cluster-announce-ip", CLUSTER),
    ("cluster-announce-hostname", CLUSTER),
    ("cluster-preferred-endpoint-type", CLUSTER),
    ("cluster-replica-validity-factor", CLUSTER),
    ("cluster-migration-barrier", CLUSTER),
    ("cluster-announce-bus-port", CLUSTER),
    ("cluster-announce-port", CLUSTER),
    ("cluster-announce-tls-port", CLUSTER),
    ("cluster-node-timeout", CLUSTER),
    ("cluster-link-sendbuf-limit", CLUSTER),
    ("tls-cluster", CLUSTER),
    ("active-defrag-cycle-min", DEFRAG),
    ("active-defrag-cycle-max", DEFRAG),
    ("active-defrag-threshold-lower", DEFRAG),
    ("active-defrag-threshold-upper", DEFRAG),
    ("active-defrag-max-scan-fields", DEFRAG),
    ("active-defrag-ignore-bytes", DEFRAG),
    ("jemalloc-bg-thread", "redsnap does not use jemalloc"),
    (
        "activerehashing",
        "the keyspace is a hash trie, which never rehashes",
    ),
    (
        "aof-rewrite-incremental-fsync",
        "snapshots are written by redsnap's snapshot store, which chooses its own fsyncs",
    ),
    (
        "rdb-save-incremental-fsync",
        "snapshots are written by redsnap's snapshot store, which chooses its own fsyncs",
    ),
    (
        "aof-disable-auto-gc",
        "redsnap removes the log generations a snapshot covers itself",
    ),
    ("crash-log-enabled", "redsnap writes no crash report"),
    ("crash-memcheck-enabled", "redsnap writes no crash report"),
    ("use-exit-on-panic", "redsnap writes no crash report"),
    (
        "ignore-warnings",
        "redsnap emits none of Redis's startup warnings",
    ),
];

const STARTUP: &str = "not built in redsnap";

/// Only Redis's default is accepted: the feature is not built (with the reason).
pub(super) const NOT_BUILT: &[(&str, &str)] = &[
    ("dynamic-hz", "the cron runs at a fixed hz"),
    (
        "lazyfree-lazy-eviction",
        "values are freed on the thread that removes them",
    ),
    (
        "lazyfree-lazy-expire",
        "values are freed on the thread that removes them",
    ),
    (
        "lazyfree-lazy-server-del",
        "values are freed on the thread that removes them",
    ),
    (
        "aof-timestamp-enabled",
        "the append log has no timestamp annotations",
    ),
    ("activedefrag", "active defragmentation is not built"),
    (
        "proc-title-template",
        "redsnap does not set its process title",
    ),
    (
        "sanitize-dump-payload",
        "RESTORE payloads are always decoded in full",
    ),
    ("oom-score-adj", "redsnap does not adjust its OOM score"),
    (
        "oom-score-adj-values",
        "redsnap does not adjust its OOM score",
    ),
    (
        "lfu-log-factor",
        "the LFU counter uses Redis's default factor",
    ),
    (
        "lfu-decay-time",
        "the LFU counter uses Redis's default decay time",
    ),
    (
        "maxmemory-eviction-tenacity",
        "eviction runs until memory is under the limit",
    ),
    (
        "active-expire-effort",
        "the active expiry cycle has a fixed effort",
    ),
    (
        "shutdown-on-sigint",
        "signals shut down with the configured snapshot",
    ),
    (
        "shutdown-on-sigterm",
        "signals shut down with the configured snapshot",
    ),
    (
        "rdb-key-save-delay",
        "a debugging delay redsnap does not have",
    ),
    ("key-load-delay", "a debugging delay redsnap does not have"),
    ("watchdog-period", "the software watchdog is not built"),
    (
        "loading-process-events-interval-bytes",
        "loading does not serve clients meanwhile",
    ),
    (
        "tls-session-cache-size",
        "TLS is configured at startup only",
    ),
    (
        "tls-session-cache-timeout",
        "TLS is configured at startup only",
    ),
    (
        "tls-prefer-server-ciphers",
        "TLS is configured at startup only",
    ),
    ("tls-session-caching", "TLS is configured at startup only"),
    ("tls-key-file-pass", "TLS is configured at startup only"),
    ("tls-client-cert-file", "TLS is configured at startup only"),
    ("tls-client-key-file", "TLS is configured at startup only"),
    (
        "tls-client-key-file-pass",
        "TLS is configured at startup only",
    ),
    ("tls-dh-params-file", "TLS is configured at startup only"),
    ("tls-ca-cert-dir", "TLS is configured at startup only"),
    ("tls-protocols", "TLS is configured at startup only"),
    ("tls-ciphers", "TLS is configured at startup only"),
    ("tls-ciphersuites", "TLS is configured at startup only"),
    ("syslog-enabled", STARTUP),
    ("syslog-ident", STARTUP),
    ("syslog-facility", STARTUP),
    ("cluster-enabled", STARTUP),
    ("unixsocket", STARTUP),
    ("pidfile", STARTUP),
    ("supervised", STARTUP),
    ("server_cpulist", STARTUP),
    ("bio_cpulist", STARTUP),
    ("aof_rewrite_cpulist", STARTUP),
    ("bgsave_cpulist", STARTUP),
    ("socket-mark-id", STARTUP),
    ("enable-protected-configs", STARTUP),
    (
        "disable-thp",
        "redsnap's allocator never uses transparent huge pages",
    ),
];
