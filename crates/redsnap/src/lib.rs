//! # redsnap
//!
//! Persist a service's state to any Redis (standalone, TLS, AUTH, Redis
//! Cluster, Valkey), to a `redsnap serve` server, or with no server at all: the
//! redsnap engine and its persistence in this process ([`inproc`]). One handle,
//! [`RedisStore`], whatever the backend; the URL picks it:
//!
//! | URL | backend |
//! |---|---|
//! | `redis://h:p/db`, `rediss://h:p` | a Redis or `redsnap serve` (TLS with `rediss`) |
//! | `redis+cluster://h1:p1,h2:p2` | a Redis Cluster |
//! | `redsnap:///path/to/dir?appendfsync=always` | in process, durable (`redsnap serve`'s persistence and defaults) |
//! | `redsnap://` | in process, in memory |
//!
//! Features:
//!
//! * [`Snapshots`]: whole-state snapshots (`<ns>:snapshot:<epoch>` with a
//!   TTL, `<ns>:latest` without), list/get/prune and a thinning
//!   [`RetentionPolicy`]; [`Snapshotter`] runs them in the background.
//! * [`Checkpointer`]: thread checkpoints, with [`RedisCheckpointer`] and
//!   [`MemoryCheckpointer`].
//! * [`Memory`]: `governance:<tenant>:<type>:<id>` JSON values with TTL and
//!   SCAN-based cleanup.
//! * [`HashMapState`], [`Document`], [`History`]: structured state.
//! * [`RedisStore::health`]: `{healthy, connectionState, reconnectAttempts, latencyMs}`.
//! * [`Metrics`]: Prometheus metrics per store; with the default `http`
//!   feature, [`http::router`] serves `/metrics`, `/health` and `/health/memory`.
//!
//! Values are stored in a small versioned envelope (see [`codec`]) so other
//! languages can read them.
//!
//! ```no_run
//! # async fn demo() -> redsnap::Result<()> {
//! use redsnap::{RedisStore, Snapshots};
//! let store = RedisStore::from_env()?; // REDIS_URL, REDIS_PASSWORD, ...
//! let snaps: Snapshots<Vec<u32>> = Snapshots::new(store.clone(), "meta");
//! snaps.save(&vec![1, 2, 3]).await?;
//! let latest = snaps.latest().await?.map(|s| s.state);
//! store.shutdown().await?; // in process: final snapshot, directory unlocked
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod codec;
pub mod config;
pub mod coord;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod inproc;
pub mod keys;
pub mod memory;
pub mod metrics;
pub mod resilience;
pub mod snapshot;
pub mod store;
pub mod structured;

pub use checkpoint::{
    new_checkpoint_id, Checkpoint, Checkpointer, ListOptions, MemoryCheckpointer, RedisCheckpointer,
};
pub use codec::{Codec, Format};
pub use config::{RedisConfig, TlsConfig, Topology};
pub use coord::{changes_channel, Lock, Watch};
pub use error::{DecodeError, Error, Result};
pub use inproc::InProcessConfig;
pub use memory::Memory;
pub use metrics::{Metrics, NamespaceStatus};
pub use resilience::{BreakerState, CircuitBreaker, LocalFallback};
pub use snapshot::{
    RetentionPolicy, SaveEvent, SaveOutcome, Snapshot, SnapshotMetrics, Snapshots, Snapshotter,
    SnapshotterConfig, Tier,
};
pub use store::{ConnectionState, Health, RedisStore};
pub use structured::{DiffStats, Document, HashMapState, History};
