//! Prometheus metrics (via `prometheus-client`), one [`Metrics`] registry per
//! [`RedisStore`](crate::RedisStore), shared by every [`Snapshots`](crate::Snapshots)
//! handle built on that store.
//!
//! Hot paths only touch pre-resolved atomics (counters) or one short mutex
//! (histograms); the age of the latest snapshot, the breaker state and the
//! fallback journal depth are computed when `/metrics` is scraped.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `redsnap_snapshot_saves_total` | counter | `namespace`, `outcome` = `saved` / `deferred` / `unchanged` |
//! | `redsnap_snapshot_loads_total` | counter | `namespace` |
//! | `redsnap_snapshot_failures_total` | counter | `namespace`, `op` = `save` / `load` |
//! | `redsnap_snapshot_save_duration_seconds` | histogram | `namespace` |
//! | `redsnap_snapshot_load_duration_seconds` | histogram | `namespace` |
//! | `redsnap_snapshot_raw_bytes_total` | counter | `namespace` (serialized bytes saved, before compression) |
//! | `redsnap_snapshot_stored_bytes_total` | counter | `namespace` (bytes written, envelope and compression included) |
//! | `redsnap_snapshot_last_raw_bytes`, `redsnap_snapshot_last_stored_bytes` | gauge | `namespace` |
//! | `redsnap_latest_snapshot_age_seconds` | gauge | `namespace` (only once a snapshot is known) |
//! | `redsnap_breaker_state` | gauge | `namespace` (0 closed, 1 half-open, 2 open) |
//! | `redsnap_fallback_journal_depth` | gauge | `namespace` (saves waiting locally for Redis) |
//! | `redsnap_reconnect_attempts_total` | counter | operations that failed to reach Redis |
//! | `redsnap_reconnects_total` | counter | recoveries: a success after one or more failures |
//! | `redsnap_connection_up` | gauge | 1 when the last operation reached Redis |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::keys::now_millis;
use crate::resilience::{BreakerState, CircuitBreaker, LocalFallback};

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NsLabel {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    namespace: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    namespace: String,
    op: &'static str,
}

fn duration_histogram() -> Histogram {
    // 100 µs .. ~26 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

type HistFamily = Family<NsLabel, Histogram, fn() -> Histogram>;

struct Families {
    saves: Family<OutcomeLabel, Counter>,
    loads: Family<NsLabel, Counter>,
    failures: Family<OpLabel, Counter>,
    save_seconds: HistFamily,
    load_seconds: HistFamily,
    raw_bytes: Family<NsLabel, Counter>,
    stored_bytes: Family<NsLabel, Counter>,
}

/// Per-namespace metric handles, resolved once when a `Snapshots` handle is
/// built, plus what the scrape-time collector needs.
pub(crate) struct NsProbe {
    ns: String,
    pub(crate) saved: Counter,
    pub(crate) deferred: Counter,
    pub(crate) unchanged: Counter,
    pub(crate) loads: Counter,
    pub(crate) save_failures: Counter,
    pub(crate) load_failures: Counter,
    pub(crate) save_seconds: Histogram,
    pub(crate) load_seconds: Histogram,
    pub(crate) raw_bytes: Counter,
    pub(crate) stored_bytes: Counter,
    last_raw: AtomicU64,
    last_stored: AtomicU64,
    /// Unix ms at which the newest known state was written (0: unknown).
    latest_at_ms: AtomicU64,
    breaker: Arc<CircuitBreaker>,
    fallback: Option<LocalFallback>,
}

impl NsProbe {
    /// Record the sizes of a snapshot written to Redis or the fallback.
    pub(crate) fn record_bytes(&self, raw: usize, stored: usize) {
        self.raw_bytes.inc_by(raw as u64);
        self.stored_bytes.inc_by(stored as u64);
        self.last_raw.store(raw as u64, Ordering::Relaxed);
        self.last_stored.store(stored as u64, Ordering::Relaxed);
    }

    /// The newest state known to this handle was written at `ms` (Unix ms).
    pub(crate) fn note_latest_at(&self, ms: u64) {
        self.latest_at_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn fallback_depth(&self) -> u64 {
        self.fallback
            .as_ref()
            .and_then(|f| f.pending().ok())
            .map(|p| p.len() as u64)
            .unwrap_or(0)
    }
}

/// Namespace status as shown by `/health`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    /// The namespace.
    pub namespace: String,
    /// Its circuit breaker.
    pub breaker: BreakerState,
    /// Saves waiting in its local fallback.
    pub fallback_depth: u64,
}

#[derive(Default)]
struct Probes {
    // Newest handle last; dead ones are pruned on scrape.
    by_ns: BTreeMap<String, Vec<Weak<NsProbe>>>,
}

impl Probes {
    fn live(&mut self) -> Vec<Arc<NsProbe>> {
        let mut out = Vec::new();
        self.by_ns.retain(|_, v| {
            v.retain(|w| w.strong_count() > 0);
            // One series per namespace: the newest live handle.
            if let Some(p) = v.iter().rev().find_map(Weak::upgrade) {
                out.push(p);
            }
            !v.is_empty()
        });
        out
    }
}

struct Shared {
    probes: Mutex<Probes>,
    state: Arc<StoreGauges>,
}

/// Store-level connection metrics, updated by [`crate::RedisStore`].
#[derive(Default)]
pub(crate) struct StoreGauges {
    pub(crate) reconnect_attempts: Counter,
    pub(crate) reconnects: Counter,
    /// 1 connected, otherwise 0 (mirrors the store's connection state).
    pub(crate) up: AtomicU8,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish()
    }
}

#[derive(Debug)]
struct ScrapeCollector(Arc<Shared>);

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(String, N)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (ns, v) in samples {
        let label = NsLabel {
            namespace: ns.clone(),
        };
        ConstGauge::new(*v).encode(m.encode_family(&label)?)?;
    }
    Ok(())
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let probes = self
            .0
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .live();
        let now = now_millis();
        let ages: Vec<(String, f64)> = probes
            .iter()
            .filter_map(|p| match p.latest_at_ms.load(Ordering::Relaxed) {
                0 => None,
                at => Some((p.ns.clone(), now.saturating_sub(at) as f64 / 1000.0)),
            })
            .collect();
        gauge(
            &mut enc,
            "redsnap_latest_snapshot_age_seconds",
            "Age of the newest snapshot written or restored by this process, computed at scrape time.",
            &ages,
        )?;
        let breaker: Vec<(String, i64)> = probes
            .iter()
            .map(|p| {
                let v = match p.breaker.state() {
                    BreakerState::Closed => 0,
                    BreakerState::HalfOpen => 1,
                    BreakerState::Open => 2,
                };
                (p.ns.clone(), v)
            })
            .collect();
        gauge(
            &mut enc,
            "redsnap_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            &breaker,
        )?;
        let depth: Vec<(String, i64)> = probes
            .iter()
            .map(|p| (p.ns.clone(), p.fallback_depth() as i64))
            .collect();
        gauge(
            &mut enc,
            "redsnap_fallback_journal_depth",
            "Saves waiting in the local fallback journal for Redis to return.",
            &depth,
        )?;
        let raw: Vec<(String, i64)> = probes
            .iter()
            .map(|p| (p.ns.clone(), p.last_raw.load(Ordering::Relaxed) as i64))
            .collect();
        gauge(
            &mut enc,
            "redsnap_snapshot_last_raw_bytes",
            "Serialized size of the last snapshot saved, before compression.",
            &raw,
        )?;
        let stored: Vec<(String, i64)> = probes
            .iter()
            .map(|p| (p.ns.clone(), p.last_stored.load(Ordering::Relaxed) as i64))
            .collect();
        gauge(
            &mut enc,
            "redsnap_snapshot_last_stored_bytes",
            "Stored size of the last snapshot saved (envelope, compressed when it pays).",
            &stored,
        )?;
        let up = self.0.state.up.load(Ordering::Relaxed) as i64;
        let m = enc.encode_descriptor(
            "redsnap_connection_up",
            "1 when the last Redis operation reached the server, else 0.",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        ConstGauge::new(up).encode(m)?;
        Ok(())
    }
}

/// A Prometheus registry with redsnap's metrics. Cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    families: Arc<Families>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every redsnap metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let families = Families {
            saves: Family::default(),
            loads: Family::default(),
            failures: Family::default(),
            save_seconds: Family::new_with_constructor(duration_histogram),
            load_seconds: Family::new_with_constructor(duration_histogram),
            raw_bytes: Family::default(),
            stored_bytes: Family::default(),
        };
        let state = Arc::new(StoreGauges::default());
        registry.register(
            "redsnap_snapshot_saves",
            "Snapshot saves by outcome (saved to Redis, deferred to the local fallback, skipped as unchanged).",
            families.saves.clone(),
        );
        registry.register(
            "redsnap_snapshot_loads",
            "Snapshots read (latest, restore, get).",
            families.loads.clone(),
        );
        registry.register(
            "redsnap_snapshot_failures",
            "Snapshot operations that returned an error.",
            families.failures.clone(),
        );
        registry.register(
            "redsnap_snapshot_save_duration_seconds",
            "Duration of snapshot saves (encode, Redis or fallback write).",
            families.save_seconds.clone(),
        );
        registry.register(
            "redsnap_snapshot_load_duration_seconds",
            "Duration of snapshot loads (read and decode).",
            families.load_seconds.clone(),
        );
        registry.register(
            "redsnap_snapshot_raw_bytes",
            "Serialized bytes of saved snapshots, before compression.",
            families.raw_bytes.clone(),
        );
        registry.register(
            "redsnap_snapshot_stored_bytes",
            "Bytes of saved snapshots as stored (envelope, compressed when it pays).",
            families.stored_bytes.clone(),
        );
        registry.register(
            "redsnap_reconnect_attempts",
            "Redis operations that failed to reach the server (each one is followed by a reconnection attempt).",
            state.reconnect_attempts.clone(),
        );
        registry.register(
            "redsnap_reconnects",
            "Recoveries: an operation reached Redis after one or more failed ones.",
            state.reconnects.clone(),
        );
        let shared = Arc::new(Shared {
            probes: Mutex::new(Probes::default()),
            state,
        });
        registry.register_collector(Box::new(ScrapeCollector(shared.clone())));
        Self {
            registry: Arc::new(registry),
            families: Arc::new(families),
            shared,
        }
    }

    pub(crate) fn store_gauges(&self) -> &StoreGauges {
        &self.shared.state
    }

    /// Resolve the handles of namespace `ns` and register it for scrape-time
    /// gauges (deregistered when the returned probe is dropped).
    pub(crate) fn probe(
        &self,
        ns: &str,
        breaker: Arc<CircuitBreaker>,
        fallback: Option<LocalFallback>,
    ) -> Arc<NsProbe> {
        let f = &self.families;
        let l = NsLabel {
            namespace: ns.to_string(),
        };
        let outcome = |o: &'static str| {
            f.saves.get_or_create_owned(&OutcomeLabel {
                namespace: ns.to_string(),
                outcome: o,
            })
        };
        let op = |o: &'static str| {
            f.failures.get_or_create_owned(&OpLabel {
                namespace: ns.to_string(),
                op: o,
            })
        };
        let p = Arc::new(NsProbe {
            ns: ns.to_string(),
            saved: outcome("saved"),
            deferred: outcome("deferred"),
            unchanged: outcome("unchanged"),
            loads: f.loads.get_or_create_owned(&l),
            save_failures: op("save"),
            load_failures: op("load"),
            save_seconds: f.save_seconds.get_or_create_owned(&l),
            load_seconds: f.load_seconds.get_or_create_owned(&l),
            raw_bytes: f.raw_bytes.get_or_create_owned(&l),
            stored_bytes: f.stored_bytes.get_or_create_owned(&l),
            last_raw: AtomicU64::new(0),
            last_stored: AtomicU64::new(0),
            latest_at_ms: AtomicU64::new(0),
            breaker,
            fallback,
        });
        self.shared
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_ns
            .entry(ns.to_string())
            .or_default()
            .push(Arc::downgrade(&p));
        p
    }

    /// Breaker state and fallback depth of every namespace with a live
    /// `Snapshots` handle on this store.
    pub fn namespaces(&self) -> Vec<NamespaceStatus> {
        self.shared
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .live()
            .iter()
            .map(|p| NamespaceStatus {
                namespace: p.ns.clone(),
                breaker: p.breaker.state(),
                fallback_depth: p.fallback_depth(),
            })
            .collect()
    }

    /// The registry (to encode it yourself, e.g. together with your own).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Encode every metric in the OpenMetrics text format (served with
    /// [`CONTENT_TYPE`]; Prometheus scrapes it as is), `# EOF` included.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn encodes_families_and_scrape_gauges() {
        let m = Metrics::new();
        let b = Arc::new(CircuitBreaker::new(1, Duration::from_secs(5)));
        let p = m.probe("ns1", b.clone(), None);
        p.saved.inc();
        p.record_bytes(100, 40);
        p.save_seconds.observe(0.002);
        p.note_latest_at(now_millis() - 1500);
        b.on_failure();
        m.store_gauges().reconnect_attempts.inc();
        let text = m.encode();
        assert!(
            text.contains("redsnap_snapshot_saves_total{namespace=\"ns1\",outcome=\"saved\"} 1"),
            "{text}"
        );
        assert!(text.contains("redsnap_breaker_state{namespace=\"ns1\"} 2"));
        assert!(text.contains("redsnap_snapshot_stored_bytes_total{namespace=\"ns1\"} 40"));
        assert!(text.contains("redsnap_reconnect_attempts_total 1"));
        assert!(text.contains("redsnap_latest_snapshot_age_seconds{namespace=\"ns1\"} 1."));
        assert!(text.ends_with("# EOF\n"));
        // A second handle on the same namespace: still one series.
        let p2 = m.probe("ns1", b, None);
        let text = m.encode();
        assert_eq!(
            text.matches("redsnap_breaker_state{namespace=\"ns1\"}")
                .count(),
            1
        );
        drop(p);
        drop(p2);
        assert!(m.namespaces().is_empty());
    }
}
