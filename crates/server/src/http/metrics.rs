//! `GET /metrics`: the server's figures in the OpenMetrics text format (what
//! Prometheus scrapes), through prometheus-client with a collector that renders a
//! copy of the figures taken at scrape time. Nothing is recorded twice: the
//! per-command counters and latency histograms are INFO commandstats' and
//! latencystats' (`calls.rs`, `hdr.rs`), the rest is what INFO and the persistence
//! layer already keep.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `redsnap_command_calls_total` | counter | `command` (subcommands as `config\|set`) |
//! | `redsnap_command_failed_calls_total`, `redsnap_command_rejected_calls_total` | counter | `command` |
//! | `redsnap_command_duration_seconds_total` | counter | `command` (INFO's `usec`) |
//! | `redsnap_command_latency_seconds` | histogram | `command` (with `latency-tracking yes`) |
//! | `redsnap_commands_processed_total`, `redsnap_connections_received_total`, `redsnap_connections_rejected_total` | counter | |
//! | `redsnap_error_replies_total` | counter | `code` (`ERR`, `WRONGTYPE`, ...) |
//! | `redsnap_connected_clients`, `redsnap_blocked_clients` | gauge | |
//! | `redsnap_memory_used_bytes`, `redsnap_memory_rss_bytes`, `redsnap_memory_max_bytes` | gauge | |
//! | `redsnap_db_keys`, `redsnap_db_keys_expiring` | gauge | `db` |
//! | `redsnap_expired_keys_total`, `redsnap_evicted_keys_total`, `redsnap_keyspace_hits_total`, `redsnap_keyspace_misses_total` | counter | |
//! | `redsnap_snapshots_total`, `redsnap_snapshot_failures_total` | counter | |
//! | `redsnap_snapshot_duration_seconds` | histogram | |
//! | `redsnap_snapshot_last_duration_seconds`, `redsnap_snapshot_last_size_bytes`, `redsnap_snapshot_last_keys`, `redsnap_snapshot_age_seconds`, `redsnap_snapshot_last_ok`, `redsnap_snapshot_in_progress`, `redsnap_changes_since_last_snapshot` | gauge | |
//! | `redsnap_aof_enabled`, `redsnap_aof_size_bytes`, `redsnap_aof_last_write_ok`, `redsnap_aof_fsync_ok`, `redsnap_aof_fsync_lag_seconds` | gauge | |
//! | `redsnap_aof_fsyncs_total`, `redsnap_aof_write_errors_total` | counter | |
//! | `redsnap_writes_refused` | gauge | 1 while writes get MISCONF / NOREPLICAS |
//! | `redsnap_repl_offset_bytes`, `redsnap_connected_replicas` | gauge | |
//! | `redsnap_uptime_seconds` | gauge | |
//! | `redsnap_build_info` | info | `version`, `redis_version` |

use crate::state::{Inner, Shared};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
    NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use redsnap_engine::table;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The content type of the OpenMetrics text format (as the library's `/metrics`).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the command latency buckets (ns): 1, 2, 5 per decade from 1 µs
/// to 1 s (Redis's histograms stop at 1 s).
const LATENCY_BOUNDS_NS: [i64; 19] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
];

/// A histogram as rendered: counts per bucket (then +Inf), sum and count.
#[derive(Debug, Clone)]
struct Hist {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

#[derive(Debug)]
struct CommandFigures {
    name: &'static str,
    calls: u64,
    usec: u64,
    failed: u64,
    rejected: u64,
    latency: Option<Hist>,
}

#[derive(Debug)]
struct Persistence {
    snaps: redsnap_persist::snapshot::SnapshotStats,
    durations: crate::persist::SnapshotDurations,
    log: Option<redsnap_persist::aof::AofStats>,
}

/// Everything `/metrics` shows, copied under the server lock.
#[derive(Debug)]
struct Figures {
    uptime_secs: u64,
    connected_clients: usize,
    blocked_clients: usize,
    connections_received: u64,
    connections_rejected: u64,
    commands_processed: u64,
    used_memory: u64,
    max_memory: u64,
    rss: u64,
    expired_keys: u64,
    evicted_keys: u64,
    keyspace_hits: u64,
    keyspace_misses: u64,
    errors: Vec<(String, u64)>,
    /// (db, keys, keys with a TTL): every non-empty database, and db 0.
    dbs: Vec<(usize, u64, u64)>,
    commands: Vec<CommandFigures>,
    dirty: u64,
    persistence: Option<Persistence>,
    writes_refused: bool,
    replicas: usize,
    repl_offset: u64,
    now_ms: u64,
}

impl Figures {
    /// O(databases + commands): per command, one pass over its histogram's cells.
    fn take(shared: &Shared, inner: &Inner) -> Figures {
        let es = &inner.store.stats;
        let dbs = inner
            .store
            .dbs
            .iter()
            .enumerate()
            .filter(|(i, db)| *i == 0 || !db.is_empty())
            .map(|(i, db)| (i, db.len() as u64, db.volatile_len() as u64))
            .collect();
        let commands = table::numbered()
            .iter()
            .zip(inner.calls.cmds.iter())
            .filter(|(_, c)| c.calls > 0 || c.failed > 0 || c.rejected > 0)
            .map(|(spec, c)| CommandFigures {
                name: spec.name,
                calls: c.calls,
                usec: c.usec,
                failed: c.failed,
                rejected: c.rejected,
                latency: c
                    .hist
                    .as_ref()
                    .filter(|_| inner.tun.latency_tracking)
                    .map(|h| {
                        let mut counts = vec![0u64; LATENCY_BOUNDS_NS.len() + 1];
                        let sum_ns = h.bucket_counts(&LATENCY_BOUNDS_NS, &mut counts);
                        Hist {
                            bounds: LATENCY_BOUNDS_NS.iter().map(|b| *b as f64 / 1e9).collect(),
                            count: counts.iter().sum(),
                            counts,
                            sum: sum_ns / 1e9,
                        }
                    }),
            })
            .collect();
        let persistence = inner.persist.as_ref().map(|p| Persistence {
            snaps: p.durable.snapshots().stats(),
            durations: p.durations.clone(),
            log: p.durable.log().map(|l| l.stats()),
        });
        let (replicas, repl_offset) = crate::repl::replicas_and_offset(inner);
        // Clients postponed by CLIENT PAUSE count as blocked (INFO's
        // `blocked_clients`); they exist only during a pause.
        let blocked_clients = if shared.pause.kind() != 0 {
            crate::commands::client::blocked_count(inner)
        } else {
            inner.blocked.len()
        };
        Figures {
            uptime_secs: shared.started.elapsed().as_secs(),
            connected_clients: inner.clients.len(),
            blocked_clients,
            connections_received: inner.stats.total_connections,
            connections_rejected: shared.live.rejected_connections.load(Ordering::Relaxed),
            commands_processed: inner.stats.total_commands,
            used_memory: crate::used_memory(inner),
            max_memory: inner.tun.maxmemory,
            rss: 0,
            expired_keys: es.expired_keys,
            evicted_keys: es.evicted_keys,
            keyspace_hits: es.keyspace_hits,
            keyspace_misses: es.keyspace_misses,
            errors: inner
                .calls
                .errors
                .iter()
                .map(|(code, n)| (String::from_utf8_lossy(code).into_owned(), *n))
                .collect(),
            dbs,
            commands,
            dirty: inner.store.effects.dirty,
            persistence,
            writes_refused: crate::persist::write_refusal(inner).is_some(),
            replicas,
            repl_offset,
            now_ms: redsnap_engine::now_ms(),
        }
    }
}

pub(super) async fn handler(State(shared): State<Arc<Shared>>) -> Response {
    let taken = super::with_lock(&shared, |inner| Figures::take(&shared, inner)).await;
    let Some((mut figures, _)) = taken else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server lock was not free in time (a script or command is running)\n",
        )
            .into_response();
    };
    // Read outside the lock (a file in /proc).
    figures.rss = crate::commands::introspection::rss_bytes();
    match render(figures) {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

/// The figures as OpenMetrics text.
fn render(figures: Figures) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(FiguresCollector(figures)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct FiguresCollector(Figures);

type Labels<'a> = [(&'static str, &'a str); 1];

fn counter<V: EncodeCounterValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: V,
) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge<V: EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: V,
) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

fn counters<L: EncodeLabelSet, V: EncodeCounterValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl Iterator<Item = (L, V)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, v) in samples {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl Iterator<Item = (L, V)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn bool_gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: bool) -> std::fmt::Result {
    gauge(enc, name, help, None, v as i64)
}

impl Collector for FiguresCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let f = &self.0;
        let e = &mut enc;
        let secs = Unit::Seconds;
        let bytes = Unit::Bytes;
        commands(e, &f.commands)?;
        counter(
            e,
            "redsnap_commands_processed",
            "Commands run (INFO total_commands_processed).",
            None,
            f.commands_processed,
        )?;
        counters(
            e,
            "redsnap_error_replies",
            "Error replies by error code (INFO errorstats).",
            None,
            f.errors
                .iter()
                .map(|(code, n)| ([("code", code.as_str())], *n)),
        )?;
        counter(
            e,
            "redsnap_connections_received",
            "Connections accepted (INFO total_connections_received).",
            None,
            f.connections_received,
        )?;
        counter(
            e,
            "redsnap_connections_rejected",
            "Connections refused: maxclients, protected mode (INFO rejected_connections).",
            None,
            f.connections_rejected,
        )?;
        gauge(
            e,
            "redsnap_connected_clients",
            "Client connections.",
            None,
            f.connected_clients as i64,
        )?;
        gauge(
            e,
            "redsnap_blocked_clients",
            "Clients waiting in a blocking command or a CLIENT PAUSE.",
            None,
            f.blocked_clients as i64,
        )?;
        gauge(
            e,
            "redsnap_memory_used",
            "Memory allocated by the server (INFO used_memory; what maxmemory limits).",
            Some(&bytes),
            f.used_memory,
        )?;
        gauge(
            e,
            "redsnap_memory_rss",
            "Resident set size of the process.",
            Some(&bytes),
            f.rss,
        )?;
        gauge(
            e,
            "redsnap_memory_max",
            "maxmemory (0: no limit).",
            Some(&bytes),
            f.max_memory,
        )?;
        gauges(
            e,
            "redsnap_db_keys",
            "Keys per database (non-empty databases and db 0).",
            f.dbs
                .iter()
                .map(|(db, keys, _)| ([("db", db.to_string())], *keys as i64)),
        )?;
        gauges(
            e,
            "redsnap_db_keys_expiring",
            "Keys with a TTL per database.",
            f.dbs
                .iter()
                .map(|(db, _, exp)| ([("db", db.to_string())], *exp as i64)),
        )?;
        counter(
            e,
            "redsnap_expired_keys",
            "Keys deleted because their TTL passed.",
            None,
            f.expired_keys,
        )?;
        counter(
            e,
            "redsnap_evicted_keys",
            "Keys evicted under maxmemory.",
            None,
            f.evicted_keys,
        )?;
        counter(
            e,
            "redsnap_keyspace_hits",
            "Successful key lookups.",
            None,
            f.keyspace_hits,
        )?;
        counter(
            e,
            "redsnap_keyspace_misses",
            "Failed key lookups.",
            None,
            f.keyspace_misses,
        )?;
        persistence(e, f)?;
        bool_gauge(
            e,
            "redsnap_writes_refused",
            "1 while write commands are refused (MISCONF after a failed snapshot or log write, NOREPLICAS).",
            f.writes_refused,
        )?;
        gauge(
            e,
            "redsnap_repl_offset",
            "Bytes of replication stream produced (INFO master_repl_offset).",
            Some(&bytes),
            f.repl_offset,
        )?;
        gauge(
            e,
            "redsnap_connected_replicas",
            "Replicas attached (SYNC/PSYNC).",
            None,
            f.replicas as i64,
        )?;
        gauge(
            e,
            "redsnap_uptime",
            "Seconds since the server started.",
            Some(&secs),
            f.uptime_secs,
        )?;
        let mut m = e.encode_descriptor(
            "redsnap_build",
            "The redsnap version and the Redis version whose commands it follows.",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&[
            ("version", crate::REDSNAP_VERSION),
            ("redis_version", crate::REDIS_VERSION),
        ])?;
        Ok(())
    }
}

fn commands(e: &mut DescriptorEncoder, cmds: &[CommandFigures]) -> std::fmt::Result {
    let label = |c: &CommandFigures| -> Labels<'static> { [("command", c.name)] };
    counters(
        e,
        "redsnap_command_calls",
        "Calls per command (INFO commandstats calls).",
        None,
        cmds.iter().map(|c| (label(c), c.calls)),
    )?;
    counters(
        e,
        "redsnap_command_failed_calls",
        "Calls that failed (INFO commandstats failed_calls).",
        None,
        cmds.iter().map(|c| (label(c), c.failed)),
    )?;
    counters(
        e,
        "redsnap_command_rejected_calls",
        "Calls refused before running (INFO commandstats rejected_calls).",
        None,
        cmds.iter().map(|c| (label(c), c.rejected)),
    )?;
    counters(
        e,
        "redsnap_command_duration",
        "Time spent running each command (INFO commandstats usec).",
        Some(&Unit::Seconds),
        cmds.iter().map(|c| (label(c), c.usec as f64 / 1e6)),
    )?;
    let mut m = e.encode_descriptor(
        "redsnap_command_latency",
        "Command latency (the histograms of INFO latencystats; with latency-tracking yes).",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for c in cmds {
        if let Some(h) = &c.latency {
            m.encode_family(&label(c))?.encode_histogram::<NoLabelSet>(
                h.sum,
                h.count,
                &h.buckets(),
                None,
            )?;
        }
    }
    Ok(())
}

fn persistence(e: &mut DescriptorEncoder, f: &Figures) -> std::fmt::Result {
    let secs = Unit::Seconds;
    let bytes = Unit::Bytes;
    gauge(
        e,
        "redsnap_changes_since_last_snapshot",
        "Writes since the last snapshot (INFO rdb_changes_since_last_save).",
        None,
        f.dirty,
    )?;
    let Some(p) = &f.persistence else {
        return bool_gauge(
            e,
            "redsnap_aof_enabled",
            "1 when the append log is on.",
            false,
        );
    };
    let st = &p.snaps;
    counter(
        e,
        "redsnap_snapshots",
        "Snapshots written since start.",
        None,
        st.count,
    )?;
    counter(
        e,
        "redsnap_snapshot_failures",
        "Snapshots that failed since start.",
        None,
        st.failures,
    )?;
    let mut counts = p.durations.counts.to_vec();
    let hist = Hist {
        bounds: crate::persist::SNAPSHOT_BUCKETS.to_vec(),
        count: counts.iter().sum(),
        counts: std::mem::take(&mut counts),
        sum: p.durations.sum_secs,
    };
    let mut m = e.encode_descriptor(
        "redsnap_snapshot_duration",
        "Time to write each snapshot since start.",
        Some(&secs),
        MetricType::Histogram,
    )?;
    m.encode_histogram::<NoLabelSet>(hist.sum, hist.count, &hist.buckets(), None)?;
    bool_gauge(
        e,
        "redsnap_snapshot_in_progress",
        "1 while a snapshot is being written.",
        st.in_progress,
    )?;
    bool_gauge(
        e,
        "redsnap_snapshot_last_ok",
        "1 when the last snapshot attempt succeeded (INFO rdb_last_bgsave_status).",
        st.last_ok,
    )?;
    if let Some(d) = st.last_duration {
        gauge(
            e,
            "redsnap_snapshot_last_duration",
            "Duration of the last snapshot attempt.",
            Some(&secs),
            d.as_secs_f64(),
        )?;
    }
    gauge(
        e,
        "redsnap_snapshot_last_size",
        "On-disk size of the last snapshot written.",
        Some(&bytes),
        st.last_size_bytes,
    )?;
    gauge(
        e,
        "redsnap_snapshot_last_keys",
        "Keys in the last snapshot written.",
        None,
        st.last_keys,
    )?;
    if let Some(at) = st.last_save_ms {
        gauge(
            e,
            "redsnap_snapshot_age",
            "Seconds since the last successful snapshot.",
            Some(&secs),
            f.now_ms.saturating_sub(at) as f64 / 1000.0,
        )?;
    }
    bool_gauge(
        e,
        "redsnap_aof_enabled",
        "1 when the append log is on.",
        p.log.is_some(),
    )?;
    let Some(a) = &p.log else {
        return Ok(());
    };
    gauge(
        e,
        "redsnap_aof_size",
        "Bytes in the append log since the last snapshot (INFO aof_current_size).",
        Some(&bytes),
        a.size,
    )?;
    bool_gauge(
        e,
        "redsnap_aof_last_write_ok",
        "1 when the last write to the append log succeeded.",
        a.last_write_ok,
    )?;
    bool_gauge(
        e,
        "redsnap_aof_fsync_ok",
        "1 while every fsync of the append log succeeded.",
        a.last_fsync_ok,
    )?;
    counter(
        e,
        "redsnap_aof_fsyncs",
        "fsyncs of the append log.",
        None,
        a.fsyncs,
    )?;
    counter(
        e,
        "redsnap_aof_write_errors",
        "Failed writes to the append log.",
        None,
        a.write_errors,
    )?;
    // Under `appendfsync no` redsnap never fsyncs (the kernel writes back): no lag.
    if a.policy != redsnap_persist::FsyncPolicy::No {
        let lag = a
            .unsynced_since_ms
            .map_or(0.0, |t| f.now_ms.saturating_sub(t) as f64 / 1000.0);
        gauge(
            e,
            "redsnap_aof_fsync_lag",
            "Age of the oldest append log write not yet fsynced (0 when all are durable).",
            Some(&secs),
            lag,
        )?;
    }
    Ok(())
}
